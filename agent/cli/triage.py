"""`mediavault demo` and `mediavault triage`: run the Email Triage graph over inboxes.

Inboxes are CSV exports, ``.eml`` files, mbox files and Maildir folders (``agent.mail.mailboxes``).
Every input problem is one line on stderr and one count in the summary; the emails that read
cleanly are triaged, several at once with ``--concurrency`` (:mod:`agent.ops.batch`). Exit status:
0 all went well, 1 some emails could not be read or triaged, 2 a bad invocation or path.
"""

from __future__ import annotations

import json
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from mediavault.agent.cli.options import AsOfOption, DbOption, HomeOption, ModelOption, ReviewOption
from mediavault.graph.context import ConfigurationError, Context

if TYPE_CHECKING:
    from mediavault.agent.api import TriageResult
    from mediavault.agent.mail.mailboxes import InboxItem, InboxProblem, ReadOptions

DEFAULT_INBOX = Path("examples/inbox.csv")
#: Larger batches print the summary only; ``--json`` lists every outcome.
MAX_OUTCOME_ROWS = 100
#: Input flags worth a note on stderr: text was lost or replaced while reading.
NOTED_FLAGS = ("non_utf8", "truncated")

console = Console()
err_console = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(Text.assemble(("error:", "red"), " ", _printable(message)), soft_wrap=True)
    return typer.Exit(code)


def _printable(text: str) -> str:
    """Text safe for a terminal: control and bidi/format characters are shown as '?'."""
    return "".join("?" if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in text)


def _context(home: Path | None, db: str | None, model: str | None, as_of: str | None,
             review: str | None) -> Context:
    try:
        return Context().with_overrides(home=home, db=str(db) if db else None, model=model,
                                        today=as_of, review=review)
    except ConfigurationError as problem:
        raise _fail(str(problem)) from None


def ensure_demo_database(context: Context) -> bool:
    """Build the demo database when the configured one is the (missing) demo file."""
    if context.db is not None or context.db_path.exists():
        return False
    from mediavault.tools.business_db.demo_database import build_demo_database

    context.home.mkdir(parents=True, exist_ok=True)
    build_demo_database(context.db_path, as_of=context.today)
    return True


@dataclass
class _Tally:
    """What a triage command saw, for the progress line, the summary and ``--json``."""

    items: dict[str, InboxItem] = field(default_factory=dict)
    problems: list[InboxProblem] = field(default_factory=list)
    results: list[TriageResult] = field(default_factory=list)
    routes: Counter[str] = field(default_factory=Counter)

    def add(self, result: TriageResult) -> None:
        self.results.append(result)
        if result.already_recorded:
            self.routes["recorded earlier"] += 1
        elif result.status == "failed":
            self.routes["failed"] += 1
        else:
            self.routes[result.route or "no route"] += 1

    def progress_text(self) -> str:
        return " · ".join(f"{name} {n}" for name, n in sorted(self.routes.items())) or "starting"

    def failure_counts(self) -> Counter[str]:
        counts: Counter[str] = Counter(problem.kind for problem in self.problems)
        failed = sum(1 for r in self.results if r.status == "failed" and not r.already_recorded)
        if failed:
            counts["triage_failed"] += failed
        return counts

    def status_counts(self) -> Counter[str]:
        return Counter(r.status for r in self.results if not r.already_recorded)


def _read(paths: list[Path], options: ReadOptions, tally: _Tally) -> list[Any]:
    from mediavault.agent.mail.mailboxes import InboxItem, InboxPathError, read_inboxes

    emails = []
    try:
        for item in read_inboxes(paths, options):
            if isinstance(item, InboxItem):
                tally.items[item.email.email_id] = item
                emails.append(item.email)
                noted = [flag for flag in item.email.input_flags if flag in NOTED_FLAGS]
                if noted:
                    _note("note", f"{item.source}: {', '.join(noted)}")
            else:
                tally.problems.append(item)
                _note("skipped", item.line())
    except InboxPathError as problem:
        raise _fail(str(problem)) from None
    return emails


def _note(label: str, text: str) -> None:
    style = "yellow" if label == "skipped" else "cyan"
    err_console.print(Text.assemble((label, style), " ", _printable(text)), soft_wrap=True,
                      highlight=False)


def _check_services(context: Context) -> None:
    """Fail once, before any email is touched, when the model or database cannot work."""
    from mediavault.agent.wiring import services_for
    from mediavault.tools.business_db.sessions import BusinessDatabaseError

    services = services_for(context)
    try:
        services.chat_model  # noqa: B018 - building it is the check
        services.business_db  # noqa: B018
    except (ConfigurationError, BusinessDatabaseError) as problem:
        raise _fail(str(problem)) from None


def triage_inbox(
    paths: list[Path],
    context: Context,
    *,
    limit: int | None = None,
    concurrency: int = 1,
    processes: int = 1,
    read_options: ReadOptions | None = None,
    as_json: bool = False,
) -> int:
    """Triage every email in the given inboxes, print the outcomes; returns the exit status."""
    from mediavault.agent.mail.mailboxes import ReadOptions
    from mediavault.agent.ops.batch import run_triage_batch

    missing = [str(path) for path in paths if not path.exists()]
    if missing:  # refused before anything is read or written
        raise _fail(f"no such file or folder: {', '.join(missing)}")
    _check_services(context)
    tally = _Tally()
    emails = _read(paths, read_options or ReadOptions(), tally)
    started = time.perf_counter()
    progress = Progress(
        TextColumn("[bold]triage[/bold]"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.description}"), TimeElapsedColumn(),
        console=err_console, disable=not err_console.is_terminal, transient=True,
    )
    task = progress.add_task(tally.progress_text(), total=len(emails))

    def on_result(result: TriageResult) -> None:
        tally.add(result)
        if result.status == "failed" and not result.already_recorded:
            source = tally.items[result.email_id].source if result.email_id in tally.items else ""
            _note("failed", f"{source}: triage_failed: {result.error or 'no outcome'}")
        progress.update(task, advance=1, description=tally.progress_text())

    try:
        with progress:
            # Results arrive in completion order; the batch returns them in input order.
            if emails:  # with nothing readable, not even the checkpoint file is created
                tally.results = run_triage_batch(emails, context=context, limit=limit,
                                                 concurrency=concurrency, processes=processes,
                                                 on_result=on_result)
    except KeyboardInterrupt:
        raise _fail(f"interrupted after {len(tally.results)} emails; run the same command "
                    "again to continue where it stopped", 130) from None
    except ConfigurationError as problem:
        raise _fail(str(problem)) from None
    except Exception as problem:  # a broken audit log or store: stop with one clear line
        raise _fail(f"triage stopped after {len(tally.results)} emails: "
                    f"{type(problem).__name__}: {problem}", 1) from None
    elapsed = time.perf_counter() - started
    not_reached = len(emails) - len(tally.results)
    if as_json:
        typer.echo(json.dumps(_as_json(tally, elapsed, not_reached), indent=2))
    else:
        _print_outcomes(tally)
        _print_summary(tally, elapsed, not_reached)
    failed = tally.failure_counts()
    return 1 if failed or any(r.status == "failed" for r in tally.results) else 0


def _as_json(tally: _Tally, elapsed: float, not_reached: int) -> dict[str, Any]:
    emails = []
    for result in tally.results:
        item = tally.items.get(result.email_id)
        emails.append({
            "email_id": result.email_id,
            "source": item.source if item else None,
            "subject": item.email.subject if item else None,
            "sender_verified": item.email.sender_verified if item else None,
            "input_flags": list(item.email.input_flags) if item else [],
            "status": result.status,
            "route": result.route,
            "reason_code": result.reason_code,
            "queue": result.queue,
            "gate_denials": result.gate_denials,
            "already_recorded": result.already_recorded,
            "error": result.error,
        })
    return {
        "emails": emails,
        "failures": [{"source": p.source, "kind": p.kind, "message": p.message}
                     for p in tally.problems],
        "summary": {
            "read": len(tally.items),
            "triaged": sum(1 for r in tally.results if not r.already_recorded),
            "already_recorded": sum(1 for r in tally.results if r.already_recorded),
            "not_reached": not_reached,
            "statuses": dict(sorted(tally.status_counts().items())),
            "failures": dict(sorted(tally.failure_counts().items())),
            "elapsed_seconds": round(elapsed, 3),
        },
    }


def _shown_status(result: TriageResult) -> str:
    if result.status == "escalated" and result.queue:
        shown = f"escalated to {result.queue}"
    elif result.status == "awaiting_review":
        shown = "awaiting review"
    else:
        shown = result.status + (f" ({result.error})" if result.error else "")
    return shown + (" (recorded earlier)" if result.already_recorded else "")


def _print_outcomes(tally: _Tally) -> None:
    if not tally.results:
        return
    if len(tally.results) > MAX_OUTCOME_ROWS:
        console.print(f"{len(tally.results)} outcomes (use --json to list every one)")
        return
    table = Table(title="Triage outcomes")
    for column in ("email id", "subject", "route", "reason code", "gate denials", "status"):
        table.add_column(column, overflow="fold")
    for result in tally.results:
        item = tally.items.get(result.email_id)
        subject = item.email.subject[:60] if item else ""
        # Text cells: an email's own words are never read as rich markup.
        table.add_row(Text(_printable(result.email_id)), Text(_printable(subject)),
                      result.route or "-", result.reason_code or "-", str(result.gate_denials),
                      Text(_printable(_shown_status(result))))
    console.print(table)


def _print_summary(tally: _Tally, elapsed: float, not_reached: int) -> None:
    from mediavault.agent.mail.mailboxes import FAILURE_KINDS

    statuses = tally.status_counts()
    recorded = sum(1 for r in tally.results if r.already_recorded)
    failures = tally.failure_counts()
    table = Table(title="Summary")
    table.add_column("")
    table.add_column("emails", justify="right")
    for status, count in sorted(statuses.items()):
        table.add_row(status.replace("_", " "), str(count))
    if recorded:
        table.add_row("already recorded", str(recorded))
    if not_reached:
        table.add_row("not triaged (--limit reached)", str(not_reached))
    read = [tally.items[r.email_id].email for r in tally.results if r.email_id in tally.items]
    unverified = sum(1 for email in read if not email.sender_verified)
    if unverified:
        table.add_row("sender not verified (catalog answers only)", str(unverified))
    for kind in FAILURE_KINDS:
        if failures.get(kind):
            table.add_row(Text(f"failed: {kind}", style="red"), str(failures[kind]))
    console.print(table)
    summary = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(statuses.items()))
    if recorded:
        summary = ", ".join(part for part in (summary, f"{recorded} already recorded") if part)
    problems = len(tally.problems)
    skipped = f"; {problems} not readable" if problems else ""
    console.print(f"{len(tally.results)} emails in {elapsed:.1f}s: {summary or 'none'}{skipped}")




def demo_command(
    inbox: Annotated[Path, typer.Option("--inbox", help="The sample inbox CSV.")] = DEFAULT_INBOX,
    home: HomeOption = None,
    model: ModelOption = None,
    as_of: AsOfOption = None,
    review: ReviewOption = None,
) -> None:
    """Build the demo database if missing, triage the sample inbox, print the outcomes.

    The demo always uses the demo database in the home directory; ``--as-of`` sets the
    business date it is built for (default today).
    """
    context = _context(home, None, model, as_of, review)
    if ensure_demo_database(context):
        console.print(f"Built the demo database at {context.db_path}")
    raise typer.Exit(triage_inbox([inbox], context))


def triage_command(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Inboxes: CSV exports, .eml files, mbox files, Maildir folders."),
    ],
    home: HomeOption = None,
    db: DbOption = None,
    model: ModelOption = None,
    as_of: AsOfOption = None,
    review: ReviewOption = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=0,
                     help="Start at most N new runs (recorded emails are skipped, not counted)."),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", min=1, max=64,
                     help="Emails triaged at once; model calls overlap (for hosted models)."),
    ] = 1,
    processes: Annotated[
        int,
        typer.Option("--processes", min=1, max=16,
                     help="Worker processes sharing the concurrency (use the machine's cores)."),
    ] = 1,
    trust_csv_senders: Annotated[
        bool,
        typer.Option("--trust-csv-senders/--no-trust-csv-senders",
                     help="Treat CSV senders as verified (the help desk vouches for them)."),
    ] = True,
    require_dmarc: Annotated[
        bool,
        typer.Option("--require-dmarc/--no-require-dmarc",
                     help="Raw mail senders count as verified only with dmarc=pass."),
    ] = True,
    authserv_id: Annotated[
        list[str] | None,
        typer.Option("--authserv-id",
                     help="Only trust Authentication-Results added by this receiving server "
                          "(repeatable); default: the topmost header."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the outcomes and summary as JSON.")
    ] = False,
) -> None:
    """Triage the emails in PATHS; emails that already have an outcome are not run again."""
    from mediavault.agent.mail.mailboxes import ReadOptions

    context = _context(home, db, model, as_of, review)
    if context.db is None and not context.db_path.exists():
        raise _fail(f"no business database at {context.db_path}; run `mediavault db init`")
    options = ReadOptions(trust_csv_senders=trust_csv_senders, require_dmarc=require_dmarc,
                          authserv_ids=tuple(authserv_id or ()))
    raise typer.Exit(triage_inbox(paths, context, limit=limit, concurrency=concurrency,
                                  processes=processes, read_options=options, as_json=as_json))
