"""The `mediavault` operator CLI: a thin typer + rich layer over the Python API."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import typer

from agent.cli_audit import audit_app
from agent.cli_cases import cases_app
from agent.cli_db import db_app
from agent.cli_eval import eval_command
from agent.cli_metrics import metrics_command
from agent.cli_redteam import redteam_command
from agent.cli_review import review_app
from agent.cli_serve import reviewers_app, serve_command
from agent.cli_sql import sql_command
from agent.cli_studio import studio_command
from agent.cli_triage import demo_command, triage_command
from agent.cli_worker import worker_command

app = typer.Typer(
    name="mediavault",
    help="MediaVault support agent: triage support email safely, review drafts, audit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(db_app, name="db")
app.command(name="sql")(sql_command)
app.command(name="redteam")(redteam_command)
app.command(name="demo")(demo_command)
app.command(name="triage")(triage_command)
app.command(name="eval")(eval_command)
app.add_typer(review_app, name="review")
app.add_typer(cases_app, name="cases")
app.command(name="metrics")(metrics_command)
app.add_typer(audit_app, name="audit")
app.command(name="studio")(studio_command)
app.command(name="serve")(serve_command)
app.add_typer(reviewers_app, name="reviewers")
app.command(name="worker")(worker_command)


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
