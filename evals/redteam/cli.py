"""`mediavault redteam`: replace the model with an attacker and show that every attack fails.

Runs the red-team suite of :mod:`evals.redteam` in a scratch directory (never the operator's
home or database) and prints attacker goals x outcomes. Exit status 0 when no attack
succeeded, 1 when any did, 2 for bad input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from mediavault.agent.cli.errors import fail

#: Exit status when at least one attack achieved its goal.
EXIT_ATTACK_SUCCEEDED = 1
EXIT_BAD_INPUT = 2


def redteam_command(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON instead of tables.")
    ] = False,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="A representative slice of the injected-email matrix "
            "(every goal, template and placement) instead of all of it.",
        ),
    ] = False,
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir",
            help="Keep the scratch databases, cases and audit logs here "
            "(default: a temporary directory, removed afterwards).",
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print every run as it finishes.")
    ] = False,
) -> None:
    """Run the red-team suite: a compromised model attacks the real graph (writes, other
    customers' data, exfiltration through replies, skipped escalations, resource exhaustion,
    malformed output), and injected emails are triaged with the rules and compromised models."""
    from mediavault.evals.redteam import run_redteam

    err = Console(stderr=True, soft_wrap=True, highlight=False)
    if workdir is not None and workdir.exists() and any(workdir.iterdir()):
        fail(f"{workdir} is not empty; give a new or empty directory", EXIT_BAD_INPUT)

    def progress(line: str) -> None:
        if verbose:
            err.print(Text(line, style="dim"))

    report = run_redteam(workdir, full=not quick, progress=progress)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        Console(highlight=False).print(report.render())
    if not report.ok:
        raise typer.Exit(EXIT_ATTACK_SUCCEEDED)
