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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
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

from mediavault.agent.cli.options import (
    AsOfOption,
    DbOption,
    HomeOption,
    ModelOption,
    ReviewOption,
    section_rule,
    wide_console,
)
from mediavault.agent.mail.sample_inbox import SAMPLE_INBOX, sample_inbox_business_date
from mediavault.graph.context import ConfigurationError, Context

if TYPE_CHECKING:
    from mediavault.agent.api import TriageResult
    from mediavault.agent.mail.mailboxes import InboxItem, InboxProblem, ReadOptions
    from mediavault.agent.ops.demonstration import DemoStory

#: The sample inbox ships inside the package, so the demo works from any folder.
DEFAULT_INBOX = SAMPLE_INBOX
#: Larger batches print the summary only; ``--json`` lists every outcome.
MAX_OUTCOME_ROWS = 100
#: Input flags worth a note on stderr: text was lost or replaced while reading.
NOTED_FLAGS = ("non_utf8", "truncated")

err_console = Console(stderr=True)


def _stdout() -> Console:
    # Made per use: whether stdout is a terminal decides the width (see wide_console).
    return wide_console()


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


def authserv_ids(values: list[str] | None) -> tuple[str, ...]:
    """The trusted receiving servers from ``--authserv-id`` (repeated or comma-separated)."""
    return tuple(name.strip() for value in values or () for name in value.split(",")
                 if name.strip())


def ensure_demo_database(context: Context, *, as_of: date | None = None) -> bool:
    """Build the demo database when the configured one is the (missing) demo file.

    It is built for ``context.today`` when set, else for ``as_of`` (else the calendar date).
    """
    if context.db is not None or context.db_path.exists():
        return False
    from mediavault.agent.stores.state_files import prepare_home
    from mediavault.tools.business_db.demo_database import build_demo_database

    prepare_home(context)
    build_demo_database(context.db_path, as_of=context.today or as_of)
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
    style = {"skipped": "yellow", "in progress": "magenta"}.get(label, "cyan")
    err_console.print(Text.assemble((label, style), " ", _printable(text)), soft_wrap=True,
                      highlight=False)


def _check_services(context: Context) -> None:
    """Fail once, before any email is touched, when the model or database cannot work."""
    from mediavault.agent.stores.state_files import check_state_paths
    from mediavault.agent.wiring import services_for
    from mediavault.tools.business_db.sessions import BusinessDatabaseError

    services = services_for(context)
    try:
        check_state_paths(context)  # a FIFO or device would hang or flood the run
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
    tally: _Tally | None = None,
    report: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """Triage every email in the given inboxes, print the outcomes; returns the exit status.

    ``tally``, when given, receives what was read and every result (the demo reads it);
    ``report`` receives the ``--json`` document instead of stdout.
    """
    from mediavault.agent.mail.mailboxes import ReadOptions
    from mediavault.agent.ops.batch import run_triage_batch

    missing = [str(path) for path in paths if not path.exists()]
    if missing:  # refused before anything is read or written
        raise _fail(f"no such file or folder: {', '.join(missing)}")
    _check_services(context)
    tally = tally if tally is not None else _Tally()
    emails = _read(paths, read_options or ReadOptions(), tally)
    started = time.perf_counter()
    progress = Progress(
        TextColumn("[bold]triage[/bold]"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.description}"), TimeElapsedColumn(),
        console=err_console, disable=not err_console.is_terminal, transient=True,
    )
    # With --limit, at most that many new runs: the total grows only by recorded emails.
    total = len(emails) if limit is None else min(len(emails), limit)
    task = progress.add_task(tally.progress_text(), total=total)

    def on_result(result: TriageResult) -> None:
        nonlocal total
        tally.add(result)
        if limit is not None and result.already_recorded and total < len(emails):
            total += 1
            progress.update(task, total=total)
        if result.status == "failed" and not result.already_recorded:
            source = tally.items[result.email_id].source if result.email_id in tally.items else ""
            _note("failed", f"{source}: triage_failed: {result.error or 'no outcome'}")
        progress.update(task, advance=1, description=tally.progress_text())

    def on_in_progress(email_id: str) -> None:
        source = tally.items[email_id].source if email_id in tally.items else email_id
        _note("in progress", f"{source}: another process is triaging this email; its outcome "
                             "is reported when that run ends")

    try:
        with progress:
            # Results arrive in completion order; the batch returns them in input order.
            if emails:  # with nothing readable, not even the checkpoint file is created
                tally.results = run_triage_batch(emails, context=context, limit=limit,
                                                 concurrency=concurrency, processes=processes,
                                                 on_result=on_result,
                                                 on_in_progress=on_in_progress)
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
        document = _as_json(tally, elapsed, not_reached)
        if report is not None:
            report(document)
        else:
            typer.echo(json.dumps(document, indent=2))
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
        _stdout().print(f"{len(tally.results)} outcomes (use --json to list every one)")
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
    _stdout().print(table)


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
    console = _stdout()
    console.print(table)
    summary = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(statuses.items()))
    if recorded:
        summary = ", ".join(part for part in (summary, f"{recorded} already recorded") if part)
    problems = len(tally.problems)
    skipped = f"; {problems} not readable" if problems else ""
    console.print(f"{len(tally.results)} emails in {elapsed:.1f}s: {summary or 'none'}{skipped}")




def demo_command(
    inbox: Annotated[
        Path | None,
        typer.Option("--inbox", help="An inbox CSV to use instead of the sample inbox that "
                     "ships with the package."),
    ] = None,
    home: HomeOption = None,
    model: ModelOption = None,
    as_of: AsOfOption = None,
    review: ReviewOption = None,
    story: Annotated[
        bool,
        typer.Option("--trace/--no-trace",
                     help="After the outcomes, show the first email's trace and the "
                          "demonstration run."),
    ] = True,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the outcomes, both traces and the closing counts "
                                    "as one JSON document."),
    ] = False,
) -> None:
    """Build the demo database if missing, triage the sample inbox, print the outcomes.

    Then the trace of the inbox's first email (the legal threat), step by step, and the same
    email once more with a demonstration model that tries to reply to it: the approval gate
    refuses and the email goes to the legal team. The demo database is built for the sample
    inbox's business date (the day after its emails arrived) unless ``--as-of`` says otherwise.
    """
    context = _context(home, None, model, as_of, review)
    inbox_path = inbox or DEFAULT_INBOX
    if not inbox_path.exists():
        raise _fail(f"no such file: {inbox_path}")
    inbox_date = sample_inbox_business_date(inbox_path)
    if ensure_demo_database(context, as_of=inbox_date):
        built = (f"Built the demo database at {context.db_path} "
                 f"(business date {context.today or inbox_date})")
        if as_json:
            _note("note", built)
        else:
            _stdout().print(built)
    else:
        _note_date_mismatch(context, inbox_date)
    tally = _Tally()
    documents: list[dict[str, Any]] = []
    status = triage_inbox([inbox_path], context, tally=tally, as_json=as_json,
                          report=documents.append)
    told = _story(context, tally) if story else None
    if as_json:
        document = documents[0] if documents else {}
        if told is not None:
            document.update(told.as_dict())
        typer.echo(json.dumps(document, indent=2))
    elif told is not None:
        _tell_the_story(told)
    raise typer.Exit(status)


def _note_date_mismatch(context: Context, inbox_date: date | None) -> None:
    """Warn when an existing demo database was built for another day than the inbox's."""
    if inbox_date is None or context.today is not None or context.db is not None:
        return
    from mediavault.agent.wiring import services_for

    try:
        stamped = services_for(context).business_date()
    except Exception:  # an unreadable database is reported by the triage itself
        return
    if stamped != inbox_date:
        _note("note", f"the demo database's business date is {stamped}, but the inbox is "
                      f"worked on {inbox_date}: dates in replies will not match the emails; "
                      f"delete {context.db_path} to rebuild it")


def _story(context: Context, tally: _Tally) -> DemoStory | None:
    from mediavault.agent.ops.demonstration import tell_demo_story

    first = tally.items.get(tally.results[0].email_id) if tally.results else None
    return tell_demo_story(context, tally.results, first.email) if first else None


def _tell_the_story(story: DemoStory) -> None:
    """The first email's trace, the demonstration run's trace and the closing line."""
    from mediavault.agent.cli.cases import print_case_trace
    from mediavault.agent.models.demonstration_model import DEMONSTRATION_MODEL_LABEL

    console = _stdout()
    console.print()
    section_rule(console, f"What the agent did with {story.trace.email_id}, step by step")
    print_case_trace(story.trace, console)
    console.print()
    section_rule(console, "The same email with an overconfident model")
    console.print(Text(
        f"A {DEMONSTRATION_MODEL_LABEL}: it investigates like the rules model, then tries "
        f"to reply itself. Recorded apart from the real outcomes, in "
        f"{story.demonstration_home}.", style="italic"), soft_wrap=True)
    if story.demonstration_trace is not None:
        print_case_trace(story.demonstration_trace, console)
    else:
        _note("failed", f"the demonstration run: {story.demonstration_problem}")
    console.print()
    console.print(Text(story.closing, style="bold"), soft_wrap=True)


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
        typer.Option("--authserv-id", envvar="MEDIAVAULT_AUTHSERV_ID",
                     help="Your receiving server's authserv-id: only its Authentication-Results "
                          "headers are believed (repeatable; MEDIAVAULT_AUTHSERV_ID, "
                          "comma-separated). Without one, raw-mail senders are unverified."),
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
                          authserv_ids=authserv_ids(authserv_id))
    raise typer.Exit(triage_inbox(paths, context, limit=limit, concurrency=concurrency,
                                  processes=processes, read_options=options, as_json=as_json))
