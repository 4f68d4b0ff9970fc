"""The `mediavault` operator CLI: a thin typer + rich layer over the Python API."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import typer

from agent.cli_db import db_app
from agent.cli_sql import sql_command
from agent.cli_triage import demo_command, triage_command

app = typer.Typer(
    name="mediavault",
    help="MediaVault support agent: triage support email safely, review drafts, audit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(db_app, name="db")
app.command(name="sql")(sql_command)
app.command(name="demo")(demo_command)
app.command(name="triage")(triage_command)


def _package_version() -> str:
    try:
        return version("mediavault-agent")
    except PackageNotFoundError:  # running from a checkout without installing
        return "0+unknown"


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"mediavault {_package_version()}")
        raise typer.Exit()


@app.callback()
def main(
    version_: bool = typer.Option(
        False,
        "--version",
        callback=_version_callback,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """MediaVault support agent: triage support email safely, review drafts, audit."""


if __name__ == "__main__":  # pragma: no cover
    app()
