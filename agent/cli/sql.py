"""`mediavault sql`: run a query exactly as the agent would, for a given sender.

The query goes through the same SQL guard, sender scoping, time budget and row caps as the
agent's own database tool, so an operator sees precisely what the agent would see (or why
it would be refused).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mediavault.agent.cli.errors import fail
from mediavault.graph.context import ConfigurationError, Context
from mediavault.graph.settings import load_settings
from mediavault.tools.business_db.sessions import (
    BusinessDatabaseError,
    DataAccessRefused,
    QueryResult,
    open_business_db,
)

#: Exit code for a refused query or an unusable database (as for usage errors).
EXIT_REFUSED = 2


def _warn(message: str) -> None:
    Console(stderr=True, soft_wrap=True, highlight=False).print(Text(message, style="yellow"))


def _print_table(result: QueryResult) -> None:
    table = Table(show_header=True, header_style="bold", show_lines=False)
    for column in result.columns:
        table.add_column(column, overflow="fold")
    for row in result.rows:
        table.add_row(*("NULL" if row[c] is None else str(row[c]) for c in result.columns))
    console = Console(highlight=False)
    console.print(table)
    summary = f"{result.row_count} row{'s' if result.row_count != 1 else ''}"
    if result.truncated:
        summary += f" (truncated: {result.truncation_note})"
    console.print(Text(f"{summary}, {result.elapsed_ms:.1f} ms", style="dim"))


def sql_command(
    query: Annotated[
        str | None,
        typer.Argument(help="One SELECT statement (SQLite dialect). Omit it with --schema."),
    ] = None,
    sender: Annotated[
        str | None,
        typer.Option(
            "--sender",
            help="Sender address to scope the query to; without it only catalog data is readable.",
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Sakila SQLite file (default: MEDIAVAULT_DB, else the demo database)."
        ),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option("--home", help="State directory (default: MEDIAVAULT_HOME or ./.mediavault)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    schema: Annotated[
        bool,
        typer.Option("--schema", help="Print the tables this sender may query, not a query."),
    ] = False,
) -> None:
    """Run QUERY through the agent's SQL guard and sender scoping; exit 2 if it is refused."""
    if (query is None) == (not schema):
        fail("give either a SELECT query or --schema", EXIT_REFUSED)
    try:
        context = Context().with_overrides(home=home, db=db)
    except ConfigurationError as error:
        fail(str(error), EXIT_REFUSED)
    try:
        database = open_business_db(
            # A server URL is passed on as text so that it gets a clear "not supported" error.
            context.db if context.db and "://" in context.db else context.db_path,
            time_budget_seconds=context.sql_time_budget_seconds,
            max_rows=context.sql_max_rows,
            scope_key=load_settings().scope_key_bytes(),
        )
    except (BusinessDatabaseError, ConfigurationError) as error:
        fail(str(error), EXIT_REFUSED)
    with database:
        customer = None
        if sender is not None:
            customer = database.resolve_sender(sender)
            if customer is None:
                _warn(
                    f"sender {sender!r} is not a customer on file: account data is unavailable, "
                    "catalog tables only"
                )
        try:
            with database.session(customer) as session:
                if schema:
                    description = session.describe_schema()
                    typer.echo(
                        description.model_dump_json(indent=2) if as_json else description.as_text()
                    )
                    return
                assert query is not None
                result = session.run_query(query)
        except DataAccessRefused as refusal:
            # A refusal is a verdict, not a usage error: printed as the guard words it.
            fail(str(refusal), EXIT_REFUSED, prefix="")
    if as_json:
        typer.echo(json.dumps(result.model_dump(mode="json"), indent=2, ensure_ascii=False))
    else:
        _print_table(result)
