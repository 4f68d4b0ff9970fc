"""`mediavault db init --postgres`: the command-line side of provisioning a Postgres database."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mediavault.agent.cli.options import wide_console

#: Optional password for the agent's login role; never passed on the command line, where it
#: would land in shell history and process listings.
AGENT_PASSWORD_VARIABLE = "MEDIAVAULT_PG_AGENT_PASSWORD"


def _fail(message: str, code: int) -> NoReturn:
    Console(stderr=True, soft_wrap=True, highlight=False).print(
        Text(f"error: {message}", style="bold red")
    )
    raise typer.Exit(code)


def init_postgres(
    admin_dsn: str, *, from_sqlite: Path | None, seed: int, as_of: date | None, force: bool
) -> None:
    """Provision the database ``admin_dsn`` names and print what was done."""
    from mediavault.tools.business_db.postgres_loader import (
        PostgresProvisioningError,
        init_postgres_database,
    )
    from mediavault.tools.business_db.scope_token import SCOPE_KEY_ENV

    if "://" not in admin_dsn and "=" not in admin_dsn:
        _fail("--postgres takes a DSN such as postgresql://admin@db-host/mediavault", 2)
    password = os.environ.get(AGENT_PASSWORD_VARIABLE) or None
    # The key the agent signs each session's customer scope with: kept when already set (a
    # reload with --force), else generated and printed once below.
    scope_key = os.environ.get(SCOPE_KEY_ENV, "").strip() or None
    try:
        summary = init_postgres_database(
            admin_dsn,
            sqlite_path=from_sqlite,
            seed=seed,
            as_of=as_of,
            agent_password=password,
            replace=force,
            scope_key=scope_key,
        )
    except PostgresProvisioningError as error:
        _fail(str(error), 1)
    console = wide_console()
    console.print(Text(f"Provisioned Postgres database {summary.database} from {summary.source}"))
    table = Table(show_edge=False)
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in summary.row_counts.items():
        table.add_row(name, f"{count:,}")
    console.print(table)
    business = summary.business_date.isoformat() if summary.business_date else "not stamped"
    console.print(f"business date {business}, done in {summary.seconds:.2f} s")
    for warning in summary.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))
    hint = "" if password else f" (set its password first, or use {AGENT_PASSWORD_VARIABLE})"
    console.print(Text(f"Agent role {summary.agent_role}{hint}; point the agent at it with:"))
    console.print(Text(f"  MEDIAVAULT_DB='{summary.agent_dsn}'"))
    if scope_key is None:
        console.print(
            Text(
                f"  {SCOPE_KEY_ENV}='{summary.scope_key}'  (new secret: keep it with the agent's "
                "configuration, never with the database role)"
            )
        )
    else:
        console.print(Text(f"  {SCOPE_KEY_ENV} as set in this environment"))
