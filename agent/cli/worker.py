"""`mediavault worker`: one of several processes triaging a shared inbox through Postgres.

Start the same command on as many machines as you like: each enqueues the inboxes it is given
(idempotently), then claims and triages emails one at a time until every email is finished.
Checkpoints, cases and the queue live in ``MEDIAVAULT_STATE_DB``; the business data in
``MEDIAVAULT_DB`` (SQLite or Postgres). Exit status: 0 all done, 1 some emails failed or could
not be read, 2 a bad invocation or configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from mediavault.agent.cli.triage import authserv_ids
from mediavault.graph.context import ConfigurationError, Context
from mediavault.graph.inbound_email import InboundEmail

console = Console(highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 2) -> NoReturn:
    Console(stderr=True, soft_wrap=True, highlight=False).print(
        Text(f"error: {message}", style="bold red")
    )
    raise typer.Exit(code)


def worker_command(
    inboxes: Annotated[
        list[Path] | None,
        typer.Argument(help="Inboxes to enqueue first (CSV, .eml, mbox, Maildir); optional."),
    ] = None,
    state_db: Annotated[
        str | None,
        typer.Option(
            "--state-db",
            metavar="DSN",
            help="Postgres DSN for the shared queue, checkpoints and cases (MEDIAVAULT_STATE_DB).",
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Business database: SQLite file or DSN (MEDIAVAULT_DB)."),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option("--home", help="Local state: audit log and outbox (MEDIAVAULT_HOME)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="`rules` or `openai:<model>`.")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Business date (YYYY-MM-DD).")
    ] = None,
    review: Annotated[
        str | None,
        typer.Option("--review", help="all, none, or reason codes that need review."),
    ] = None,
    lease: Annotated[
        float,
        typer.Option(
            "--lease",
            min=1.0,
            help="Seconds a claim lasts without a heartbeat: how soon a dead worker's email "
            "is taken over.",
        ),
    ] = 60.0,
    keep_running: Annotated[
        bool,
        typer.Option("--keep-running", help="Wait for new emails instead of exiting when done."),
    ] = False,
    max_emails: Annotated[
        int | None, typer.Option("--max-emails", min=1, help="Stop after this many emails.")
    ] = None,
    authserv_id: Annotated[
        list[str] | None,
        typer.Option("--authserv-id", envvar="MEDIAVAULT_AUTHSERV_ID",
                     help="Your receiving server's authserv-id: only its Authentication-Results "
                          "headers verify a raw-mail sender (repeatable; MEDIAVAULT_AUTHSERV_ID)."),
    ] = None,
    worker_id: Annotated[
        str | None,
        typer.Option("--worker-id", help="Name in the queue table (default: host:pid:random)."),
    ] = None,
) -> None:
    """Claim and triage emails from the shared Postgres inbox queue until it is finished."""
    from mediavault.agent.ops.worker_queue import (
        QueueUnavailableError,
        WorkerReport,
        queue_for,
        run_worker,
    )

    try:
        context = Context().with_overrides(
            state_db=state_db, db=db, home=home, model=model, today=as_of, review=review
        )
        queue = queue_for(context, lease_seconds=lease)
    except ConfigurationError as problem:
        _fail(str(problem))
    unreadable = 0
    try:
        if inboxes:
            emails, unreadable = _read(inboxes, authserv_ids(authserv_id))
            added = queue.enqueue(emails)
            console.print(f"queued {added} new of {len(emails)} emails")

        def show(email_id: str, status: str) -> None:
            console.print(Text(f"{email_id}: {status.replace('_', ' ')}"))

        report: WorkerReport = run_worker(
            context, queue, worker_id=worker_id, until_empty=not keep_running,
            max_emails=max_emails, on_result=show,
        )  # fmt: skip
    except ConfigurationError as problem:
        _fail(str(problem))
    except QueueUnavailableError as problem:
        # Claims this worker held are taken over by others once their leases run out.
        _fail(str(problem), code=1)
    failed = report.count("failed") + len(report.given_up)
    console.print(
        f"worker {report.worker_id}: {len(report.processed)} triaged, {failed} failed, "
        f"{len(report.lost_leases)} taken over by another worker"
    )
    raise typer.Exit(1 if failed or unreadable else 0)


def _read(paths: list[Path], servers: tuple[str, ...]) -> tuple[list[InboundEmail], int]:
    from mediavault.agent.mail.mailboxes import (
        InboxItem,
        InboxPathError,
        ReadOptions,
        read_inboxes,
    )

    emails: list[InboundEmail] = []
    problems = 0
    try:
        for item in read_inboxes(paths, ReadOptions(authserv_ids=servers)):
            if isinstance(item, InboxItem):
                emails.append(item.email)
            else:
                problems += 1
                Console(stderr=True, soft_wrap=True, highlight=False).print(
                    Text(f"skipped {item.line()}", style="yellow")
                )
    except InboxPathError as problem:
        _fail(str(problem))
    return emails, problems
