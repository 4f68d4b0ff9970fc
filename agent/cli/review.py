"""`mediavault review ...`: the review queue at the command line, over :mod:`agent.ops.review_desk`.

Exit codes: 0 the decision was applied; 1 it was not (the case was already decided, the draft
changed since it was read, or an edit failed validation and the review stays open); 2 bad
input (unknown case id, unknown queue or reason, unreadable file, bad settings).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import click
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mediavault.agent.cli.cases import context_for, print_case_file, printable
from mediavault.agent.cli.options import DbOption, HomeOption, wide_console
from mediavault.graph.context import Context

if TYPE_CHECKING:
    from mediavault.agent.ops.review_desk import ReviewOutcome

#: The decision was not applied: already decided, the draft changed, or the edit was refused.
EXIT_NOT_APPLIED = 1
#: The command could not be understood: unknown case, bad option value, unreadable file.
EXIT_BAD_INPUT = 2

review_app = typer.Typer(
    help="Work the review queue: list drafts, show one, approve, edit, reject or escalate.",
    no_args_is_help=True,
)

ModelOption = Annotated[
    str | None,
    typer.Option("--model", help="Model for a revision after a rejection (MEDIAVAULT_MODEL)."),
]
ReviewerOption = Annotated[
    str | None,
    typer.Option("--reviewer", help="Who decides (default: the operating-system user)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
VersionOption = Annotated[
    int | None,
    typer.Option("--draft-version", min=1,
                 help="Refuse unless the draft is still this version (the one you read)."),
]
EmailIdArgument = Annotated[str, typer.Argument(help="The email id of the case.")]


def _fail(message: str, code: int) -> NoReturn:
    Console(stderr=True, soft_wrap=True, highlight=False).print(
        Text(f"error: {printable(message)}", style="bold red"))
    raise typer.Exit(code)


def _decision_context(home: Path | None, db: str | None, model: str | None) -> Context:
    return context_for(home, db=str(db) if db else None, model=model)


def _report(decide: Callable[[], ReviewOutcome], as_json: bool) -> None:
    """Apply one decision and report it; every refusal is one error line and an exit code."""
    from mediavault.agent.ops import review_desk as desk
    from mediavault.agent.stores.audit import AuditLogError
    from mediavault.agent.stores.case_store import CaseStoreBusyError

    try:
        outcome = decide()
    except (desk.CaseNotFound, desk.InvalidDecision) as problem:
        _fail(str(problem), EXIT_BAD_INPUT)
    except (desk.NoReviewWaiting, desk.EditRefused, desk.DraftChanged) as problem:
        _fail(str(problem), EXIT_NOT_APPLIED)
    except (CaseStoreBusyError, AuditLogError) as problem:
        # The graph stops before recording a decision when its stores refuse to write.
        _fail(str(problem), EXIT_NOT_APPLIED)
    if as_json:
        typer.echo(json.dumps(outcome.model_dump(mode="json"), indent=2))
    else:
        wide_console().print(Text(printable(outcome.summary)))


@review_app.command("list")
def list_command(as_json: JsonOption = False, home: HomeOption = None) -> None:
    """List the drafts waiting for a reviewer, oldest first."""
    from mediavault.agent.ops.review_desk import list_pending_reviews

    pending = list_pending_reviews(context_for(home))
    if as_json:
        typer.echo(json.dumps([item.model_dump(mode="json") for item in pending], indent=2))
        return
    console = wide_console()
    if not pending:
        console.print("No drafts wait for review.")
        return
    table = Table(show_edge=False)
    table.add_column("email id", no_wrap=True)
    table.add_column("received (UTC)", no_wrap=True)
    for column in ("sender", "reason code", "subject", "draft", "reviews"):
        table.add_column(column, overflow="fold")
    for item in pending:
        table.add_row(
            Text(printable(item.email_id)),
            item.received_at.astimezone(UTC).strftime("%m-%d %H:%M"),
            Text(printable(item.sender)), item.reason_code or "-",
            Text(printable(item.subject[:60])),
            f"v{item.draft_version}" if item.draft_version else "-", str(item.previous_reviews),
        )
    console.print(table)
    console.print(f"{len(pending)} waiting; decide with `mediavault review approve|edit|reject|"
                  "escalate ID`")


@review_app.command("show")
def show_command(
    email_id: EmailIdArgument, as_json: JsonOption = False, home: HomeOption = None
) -> None:
    """Show everything needed to judge a draft.

    The email, the customer, the evidence (queries with row counts, policy citations), the
    gate's verdicts, the draft and its history, and the audit trail.
    """
    from mediavault.agent.ops.review_desk import CaseNotFound, show_case

    try:
        case = show_case(email_id, context_for(home))
    except CaseNotFound as problem:
        _fail(str(problem), EXIT_BAD_INPUT)
    if as_json:
        typer.echo(json.dumps(case.model_dump(mode="json"), indent=2))
    else:
        print_case_file(case)


@review_app.command("approve")
def approve_command(
    email_id: EmailIdArgument,
    reviewer: ReviewerOption = None,
    draft_version: VersionOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Approve the draft as it stands; the reply is written to the outbox."""
    from mediavault.agent.ops.review_desk import approve_draft

    context = _decision_context(home, db, None)
    _report(lambda: approve_draft(email_id, reviewer=reviewer,
                                   draft_version=draft_version, context=context), as_json)


def _read_text_file(path: Path) -> str:
    try:
        data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as problem:
        _fail(f"cannot read {path}: {problem.strerror or problem}", EXIT_BAD_INPUT)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        _fail(f"{path} is not UTF-8 text", EXIT_BAD_INPUT)


def _text_from_editor(email_id: str, context: Context) -> str:
    from mediavault.agent.ops.review_desk import CaseNotFound, NoReviewWaiting, current_draft

    try:
        draft = current_draft(email_id, context)
    except CaseNotFound as problem:
        _fail(str(problem), EXIT_BAD_INPUT)
    except NoReviewWaiting as problem:
        _fail(str(problem), EXIT_NOT_APPLIED)
    if not (os.environ.get("VISUAL") or os.environ.get("EDITOR")) and not sys.stdin.isatty():
        # click would fall back to vi, which waits forever without a terminal.
        _fail("no editor: set $EDITOR, or pass --text or --file", EXIT_BAD_INPUT)
    try:
        edited = click.edit(draft.text, extension=".txt", require_save=True)
    except click.ClickException as problem:
        _fail(f"cannot start the editor ($VISUAL/$EDITOR): {problem.message}", EXIT_BAD_INPUT)
    if edited is None:
        _fail("the editor closed without saving; the draft was not changed", EXIT_NOT_APPLIED)
    return edited


@review_app.command("edit")
def edit_command(
    email_id: EmailIdArgument,
    text: Annotated[
        str | None, typer.Option("--text", help="The whole new reply text.")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Read the new reply from this UTF-8 file ('-' for stdin)."),
    ] = None,
    reviewer: ReviewerOption = None,
    draft_version: VersionOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Replace the draft and approve it. Without --text or --file the draft opens in $EDITOR.

    The new text passes validation and DLP again; when it fails, the reasons are printed, the
    review stays open and the exit status is 1.
    """
    if text is not None and file is not None:
        _fail("give either --text or --file, not both", EXIT_BAD_INPUT)
    context = _decision_context(home, db, None)
    if text is None:
        text = _read_text_file(file) if file is not None else _text_from_editor(email_id, context)
    from mediavault.agent.ops.review_desk import edit_draft

    new_text = text
    _report(lambda: edit_draft(email_id, new_text, reviewer=reviewer,
                                draft_version=draft_version, context=context), as_json)


@review_app.command("reject")
def reject_command(
    email_id: EmailIdArgument,
    reason: Annotated[
        str, typer.Option("--reason", help="What is wrong: tone, factual, policy or other.")
    ],
    message: Annotated[
        str, typer.Option("--message", help="What to change; the model revises the draft once.")
    ],
    reviewer: ReviewerOption = None,
    draft_version: VersionOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
    model: ModelOption = None,
) -> None:
    """Reject the draft with a reason and a message; the model revises it once.

    The revision waits for review again; a second rejection closes the case as rejected.
    """
    from mediavault.agent.ops.review_desk import reject_draft

    context = _decision_context(home, db, model)
    _report(lambda: reject_draft(email_id, reason=reason, message=message, reviewer=reviewer,
                                 draft_version=draft_version, context=context), as_json)


@review_app.command("escalate")
def escalate_command(
    email_id: EmailIdArgument,
    queue: Annotated[
        str, typer.Option("--queue", help="The human team's queue, e.g. billing or privacy.")
    ],
    message: Annotated[
        str | None, typer.Option("--message", help="Why, for the team that takes it over.")
    ] = None,
    reviewer: ReviewerOption = None,
    draft_version: VersionOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
    model: ModelOption = None,
) -> None:
    """Escalate the case to a human team instead of replying; a ticket is filed."""
    from mediavault.agent.ops.review_desk import escalate_case

    context = _decision_context(home, db, model)
    _report(lambda: escalate_case(email_id, queue=queue, message=message, reviewer=reviewer,
                                  draft_version=draft_version, context=context), as_json)
