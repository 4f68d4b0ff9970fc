"""The operator commands of the application layer (triage, review, cases, audit, serve...).

The complete `mediavault` command, with the eval and red-team commands that sit above this
layer, is assembled in :mod:`mediavault.cli`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import typer

from mediavault.agent.cli.audit import audit_app
from mediavault.agent.cli.cases import cases_app
from mediavault.agent.cli.db import db_app
from mediavault.agent.cli.errors import fail
from mediavault.agent.cli.local_model import local_model_command
from mediavault.agent.cli.mail import mail_app
from mediavault.agent.cli.metrics import metrics_command
from mediavault.agent.cli.prune import checkpoints_app, prune_command
from mediavault.agent.cli.review import review_app
from mediavault.agent.cli.serve import reviewers_app, serve_command
from mediavault.agent.cli.sql import sql_command
from mediavault.agent.cli.studio import studio_command
from mediavault.agent.cli.triage import demo_command, triage_command
from mediavault.agent.cli.worker import worker_command
from mediavault.graph.context import ConfigurationError
from mediavault.graph.settings import load_settings

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
app.add_typer(review_app, name="review")
app.add_typer(mail_app, name="mail")
app.add_typer(cases_app, name="cases")
app.command(name="metrics")(metrics_command)
app.add_typer(audit_app, name="audit")
app.command(name="prune")(prune_command)
app.add_typer(checkpoints_app, name="checkpoints")
app.command(name="studio")(studio_command)
app.command(name="local-model")(local_model_command)
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
    # Every environment variable is checked before any command runs: a bad value is one line
    # naming the variable, never a traceback halfway through a batch.
    try:
        load_settings()
    except ConfigurationError as problem:
        fail(str(problem))
