"""`mediavault db init --postgres`: the command-line side of provisioning a Postgres database."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from rich.table import Table
from rich.text import Text

from mediavault.agent.cli.errors import fail
from mediavault.agent.cli.options import wide_console
from mediavault.graph.context import ConfigurationError
from mediavault.graph.settings import Settings, load_settings

#: Optional password for the agent's login role; never passed on the command line, where it
#: would land in shell history and process listings.
AGENT_PASSWORD_VARIABLE = Settings.variable("pg_agent_password")


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
        fail("--postgres takes a DSN such as postgresql://admin@db-host/mediavault", 2)
    try:
        settings = load_settings()
    except ConfigurationError as problem:
        fail(str(problem), 2)
    secret = settings.pg_agent_password
    password = secret.get_secret_value() if secret is not None else None
    # The key the agent signs each session's customer scope with: kept when already set (a
    # reload with --force), else generated and printed once below.
    scope_key = settings.scope_key.get_secret_value() if settings.scope_key else None
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
        fail(str(error), 1)
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
