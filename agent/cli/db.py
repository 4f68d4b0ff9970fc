"""`mediavault db ...`: build and describe the business database."""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from datetime import date
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mediavault.agent.cli.options import wide_console
from mediavault.graph.context import ConfigurationError, Context, parse_business_date
from mediavault.tools.business_db.business_date import BusinessDateError, stamped_business_date
from mediavault.tools.business_db.demo_database import (
    DEMO_APPLICATION_ID,
    SAKILA_TABLES,
    build_demo_database,
)

db_app = typer.Typer(help="Build and inspect the business database.", no_args_is_help=True)

_HOME_HELP = "State directory (default: MEDIAVAULT_HOME or ./.mediavault)."


def _fail(message: str, code: int = 2) -> NoReturn:
    # One red line, never a traceback: soft_wrap keeps a long path on a single line.
    Console(stderr=True, soft_wrap=True, highlight=False).print(
        Text(f"error: {message}", style="bold red")
    )
    raise typer.Exit(code)


def _context(home: Path | None) -> Context:
    try:
        return Context().with_overrides(home=home)
    except ConfigurationError as error:
        _fail(str(error))


def _as_of(value: str | None, flag: str) -> date | None:
    try:
        return parse_business_date(value)
    except ConfigurationError as error:
        _fail(f"{flag}: {error}")


def _read_only(path: Path) -> closing[sqlite3.Connection]:
    return closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True))


def _is_demo_database(path: Path) -> bool:
    try:
        with _read_only(path) as connection:
            (application_id,) = connection.execute("PRAGMA application_id").fetchone()
    except sqlite3.DatabaseError:
        return False
    return bool(application_id == DEMO_APPLICATION_ID)


HomeOption = Annotated[Path | None, typer.Option("--home", help=_HOME_HELP)]
AsOfOption = Annotated[str | None, typer.Option("--as-of", help="Business date YYYY-MM-DD.")]


@db_app.command("init")
def init_command(
    path: Annotated[
        Path | None,
        typer.Option("--path", help="Where to write it (default: the context's db_path)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same data.")] = 42,
    as_of: AsOfOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing demo database.")
    ] = False,
    home: HomeOption = None,
    postgres: Annotated[
        str | None,
        typer.Option(
            "--postgres",
            metavar="DSN",
            help="Provision this PostgreSQL database instead (an administrator's DSN): schema, "
            "data, the SELECT-only mediavault_agent role, row-level security, timeouts.",
        ),
    ] = None,
    from_sqlite: Annotated[
        Path | None,
        typer.Option(
            "--from-sqlite", help="With --postgres: load this Sakila SQLite file, not demo data."
        ),
    ] = None,
    plant_film_description: Annotated[
        str | None,
        typer.Option("--plant-film-description", metavar="TEXT",
                     help="Red-team data: put TEXT in every scenario film's description."),
    ] = None,
    plant_address2: Annotated[
        str | None,
        typer.Option("--plant-address2", metavar="TEXT",
                     help="Red-team data: put TEXT in every scenario customer's address2."),
    ] = None,
) -> None:
    """Generate the demo Sakila database and stamp its business date (default: MEDIAVAULT_TODAY,
    else today). The same seed always gives the same customers, films and history."""
    context = _context(home)
    business_date = _as_of(as_of, "--as-of") or context.today
    if postgres is not None:
        from mediavault.agent.cli.postgres import init_postgres

        init_postgres(postgres, from_sqlite=from_sqlite, seed=seed, as_of=business_date,
                      force=force)  # fmt: skip
        return
    if from_sqlite is not None:
        _fail("--from-sqlite loads a file into Postgres; use it with --postgres DSN")
    if path is None and context.db_is_server:
        _fail("MEDIAVAULT_DB names a database server; provision it with "
              "`mediavault db init --postgres ADMIN_DSN`")  # fmt: skip
    target = path or context.db_path
    if path is None:  # the demo database lives in the (private) state folder
        from mediavault.agent.stores.state_files import prepare_home

        try:
            prepare_home(context)
        except ConfigurationError as error:
            _fail(str(error))
    if target.exists():
        if not force:
            _fail(f"{target} already exists; pass --force to replace it", code=1)
        if not _is_demo_database(target):
            # --force replaces what `db init` made, never a database the user pointed us at.
            _fail(
                f"{target} is not a MediaVault demo database; refusing to replace it "
                "(delete it yourself if you really mean to)",
                code=1,
            )
    try:
        plant = {key: text for key, text in (("film_description", plant_film_description),
                                              ("address2", plant_address2)) if text is not None}
        summary = build_demo_database(target, seed=seed, as_of=business_date, overwrite=force,
                                      plant=plant or None)
    except (OSError, ValueError) as error:
        _fail(f"cannot build {target}: {error}", code=1)

    console = wide_console()
    console.print(Text(f"Built {summary.path}"))
    console.print(_counts_table(summary.row_counts))
    console.print(
        f"seed {summary.seed}, business date {summary.as_of.isoformat()}, "
        f"built in {summary.seconds:.2f} s"
    )


def _counts_table(counts: dict[str, int]) -> Table:
    table = Table(show_edge=False)
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    return table


@db_app.command("info")
def info_command(
    db: Annotated[
        Path | None,
        typer.Option("--db", help="A Sakila SQLite file (default: MEDIAVAULT_DB, else the demo)."),
    ] = None,
    home: HomeOption = None,
    as_of: AsOfOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Say which database the agent uses, its row counts and the business date."""
    context = _context(home)
    override = _as_of(as_of, "--as-of")
    if db is not None:
        path, source = db, "--db"
    elif context.db_is_server:
        _fail("db info reads Sakila SQLite files; for the Postgres database in MEDIAVAULT_DB "
              "run `mediavault sql --schema`")  # fmt: skip
    elif context.db is not None:
        path, source = context.db_path, "MEDIAVAULT_DB"
    else:
        path, source = context.db_path, "demo database in MEDIAVAULT_HOME"
    if not path.is_file():
        hint = " (run `mediavault db init`)" if source.startswith("demo") else ""
        _fail(f"database {path} does not exist{hint}")
    counts = _row_counts(path)

    try:
        stamped = stamped_business_date(path)
    except BusinessDateError as error:
        _fail(str(error))
    if override is not None:
        business, date_source = override, "--as-of"
    elif context.today is not None:
        business, date_source = context.today, "MEDIAVAULT_TODAY"
    elif stamped is not None:
        business, date_source = stamped, "stamped in the database by `mediavault db init`"
    else:
        business, date_source = date.today(), "calendar date (the database carries no stamp)"

    if as_json:
        typer.echo(
            json.dumps(
                {
                    "database": os.fspath(path),
                    "database_source": source,
                    "demo_database": _is_demo_database(path),
                    "business_date": business.isoformat(),
                    "business_date_source": date_source,
                    "row_counts": counts,
                },
                indent=2,
            )
        )
        return
    console = wide_console()
    console.print(Text(f"database: {path} ({source})"))
    console.print(Text(f"business date: {business.isoformat()} ({date_source})"))
    console.print(_counts_table(counts))


def _row_counts(path: Path) -> dict[str, int]:
    """Rows per Sakila table; a clear error when the file is not a Sakila SQLite database."""
    try:
        with _read_only(path) as connection:
            present = {
                name
                for (name,) in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            }
            missing = [name for name in SAKILA_TABLES if name not in present]
            if missing:
                _fail(f"{path} is not a Sakila database: missing table(s) {', '.join(missing)}")
            return {
                name: connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
                for name in SAKILA_TABLES
            }
    except sqlite3.DatabaseError as error:
        _fail(f"cannot read {path}: {error}")
