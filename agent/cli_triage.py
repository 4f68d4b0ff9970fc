"""`mediavault demo` and `mediavault triage`: run the Email Triage graph over an inbox."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agent.context import ConfigurationError, Context

DEFAULT_INBOX = Path("examples/inbox.csv")

console = Console()
err_console = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _context(home: Path | None, db: Path | None, model: str | None, as_of: str | None,
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
    from tools.demo_database import build_demo_database

    context.home.mkdir(parents=True, exist_ok=True)
    build_demo_database(context.db_path, as_of=context.today)
    return True


def triage_inbox(paths: list[Path], context: Context, *, limit: int | None = None) -> int:
    """Triage every email in the given CSV inboxes and print a table of outcomes."""
    from agent.api import triage_email
    from agent.inbox import read_inbox_csv

    table = Table(title="Triage outcomes")
    for column in ("email id", "subject", "route", "reason code", "gate denials", "status"):
        table.add_column(column, overflow="fold")
    counts: dict[str, int] = {}
    failures = 0
    started = time.perf_counter()
    processed = 0
    for path in paths:
        if not path.exists():
            raise _fail(f"inbox {path} does not exist")
        inbox = read_inbox_csv(path)
        for error in inbox.errors:
            err_console.print(f"[yellow]skipped[/yellow] {path}:{error.row_number}: {error.reason}",
                              highlight=False)
            failures += 1
        for email in inbox.emails:
            if limit is not None and processed >= limit:
                break
            processed += 1
            result = triage_email(email, context=context)
            status = result.status
            if status == "escalated" and result.queue:
                shown = f"escalated to {result.queue}"
            elif status == "awaiting_review":
                shown = "awaiting review"
            else:
                shown = status + (f" ({result.error})" if result.error else "")
            if result.already_recorded:
                shown += " (recorded earlier)"
            counts[status] = counts.get(status, 0) + 1
            table.add_row(email.email_id, email.subject[:60], result.route or "-",
                          result.reason_code or "-", str(result.gate_denials), shown)
    console.print(table)
    summary = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(counts.items()))
    elapsed = time.perf_counter() - started
    skipped = f"; {failures} rows skipped" if failures else ""
    console.print(f"{processed} emails in {elapsed:.1f}s: {summary or 'none'}{skipped}")
    return 1 if counts.get("failed") else 0


HomeOption = Annotated[
    Path | None, typer.Option("--home", help="State directory (MEDIAVAULT_HOME).")
]
DbOption = Annotated[Path | None, typer.Option("--db", help="Business database (MEDIAVAULT_DB).")]
ModelOption = Annotated[str | None, typer.Option("--model", help="`rules` or `openai:<model>`.")]
AsOfOption = Annotated[str | None, typer.Option("--as-of", help="Business date (YYYY-MM-DD).")]
ReviewOption = Annotated[
    str | None, typer.Option("--review", help="all, none, or reason codes that need review.")
]


def demo_command(
    inbox: Annotated[Path, typer.Option("--inbox", help="The sample inbox CSV.")] = DEFAULT_INBOX,
    home: HomeOption = None,
    model: ModelOption = None,
    review: ReviewOption = None,
) -> None:
    """Build the demo database if missing, triage the sample inbox, print the outcomes."""
    context = _context(home, None, model, None, review)
    if ensure_demo_database(context):
        console.print(f"Built the demo database at {context.db_path}")
    raise typer.Exit(triage_inbox([inbox], context))


def triage_command(
    paths: Annotated[list[Path], typer.Argument(help="Inbox files (CSV).")],
    home: HomeOption = None,
    db: DbOption = None,
    model: ModelOption = None,
    as_of: AsOfOption = None,
    review: ReviewOption = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Triage at most N emails.")
    ] = None,
) -> None:
    """Triage the emails in PATHS; emails that already have an outcome are not run again."""
    context = _context(home, db, model, as_of, review)
    if context.db is None and not context.db_path.exists():
        raise _fail(f"no business database at {context.db_path}; run `mediavault db init`")
    raise typer.Exit(triage_inbox(paths, context, limit=limit))
