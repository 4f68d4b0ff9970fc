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

#: Exit status when at least one attack achieved its goal.
EXIT_ATTACK_SUCCEEDED = 1
EXIT_BAD_INPUT = 2
#: Without a terminal (a CI log), one progress line per this many runs.
PROGRESS_EVERY = 25


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
    draft_payloads: Annotated[
        list[Path] | None,
        typer.Option(
            "--draft-payloads",
            help="Score draft payload files (JSON Lines: id, class, field, text) instead of "
            "the attack suite: per class, how many ended in a valid draft, then an end-to-end "
            "run with a compromised model and review off. Repeat for several files.",
        ),
    ] = None,
    end_to_end: Annotated[
        bool,
        typer.Option("--end-to-end/--no-end-to-end",
                     help="With --draft-payloads: also run every payload through the graph."),
    ] = True,
    honest_drafts: Annotated[
        list[Path] | None,
        typer.Option(
            "--honest-drafts",
            help="With --draft-payloads: also run this labelled eval set (demo database) and "
            "count the honest drafts the output checks refused. Repeat for several.",
        ),
    ] = None,
    honest_db: Annotated[
        str | None,
        typer.Option("--honest-db", help="Database for --honest-drafts (default: a demo "
                     "database); with --as-of for the original Sakila."),
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Business date for --honest-db (YYYY-MM-DD).")
    ] = None,
) -> None:
    """Run the red-team suite: a compromised model attacks the real graph (writes, other
    customers' data, exfiltration through replies, skipped escalations, resource exhaustion,
    malformed output), and injected emails are triaged with the rules and compromised models."""
    from mediavault.evals.redteam import run_redteam

    err = Console(stderr=True, soft_wrap=True, highlight=False)
    if workdir is not None and workdir.exists() and any(workdir.iterdir()):
        err.print(
            Text(f"error: {workdir} is not empty; give a new or empty directory", style="bold red")
        )
        raise typer.Exit(EXIT_BAD_INPUT)

    done = [0]
    status = err.status("red team: starting", spinner="dots") if err.is_terminal else None

    def progress(line: str) -> None:
        # The full run takes minutes: never silent. A terminal gets a live line; a log file
        # gets a line every PROGRESS_EVERY runs (every run with --verbose).
        done[0] += 1
        if verbose:
            err.print(Text(line, style="dim"))
        elif status is not None:
            status.update(f"red team: {done[0]} runs done · last: {line}")
        elif done[0] % PROGRESS_EVERY == 0:
            err.print(Text(f"red team: {done[0]} runs done", style="dim"))

    if draft_payloads:
        from mediavault.evals.redteam.payload_report import run_payload_report

        code = run_payload_report(
            draft_payloads, end_to_end=end_to_end, honest=honest_drafts or [],
            honest_db=honest_db, as_of=as_of, workdir=workdir, as_json=as_json,
            progress=progress)
        raise typer.Exit(code)
    if status is not None:
        with status:
            report = run_redteam(workdir, full=not quick, progress=progress)
    else:
        report = run_redteam(workdir, full=not quick, progress=progress)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        Console(highlight=False).print(report.render())
    if not report.ok:
        raise typer.Exit(EXIT_ATTACK_SUCCEEDED)
