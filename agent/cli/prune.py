"""`mediavault prune` and `mediavault checkpoints repair`: keep the checkpoint store small
and usable.

``prune`` applies the retention policy to emails finished before this version applied it by
itself (or under another policy); ``checkpoints repair`` moves a damaged checkpoint file aside.
Exit codes: 0 done (or nothing to do); 2 bad input or a store that cannot be opened.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from mediavault.agent.cli.errors import context_for, fail, printable
from mediavault.agent.cli.options import HomeOption

checkpoints_app = typer.Typer(help="Look after the checkpoint store.", no_args_is_help=True)

StateDbOption = Annotated[
    str | None,
    typer.Option("--state-db", help="postgresql:// DSN of shared state (MEDIAVAULT_STATE_DB)."),
]


def _size(count: int | None) -> str:
    if count is None:
        return "?"
    if count < 1024:
        return f"{count} bytes"
    value = float(count)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


def prune_command(
    older_than: Annotated[
        str,
        typer.Option("--older-than",
                     help="Only emails finished longer ago than this (30d, 12h, 90m, 2w, 0)."),
    ] = "0",
    keep: Annotated[
        str | None,
        typer.Option("--keep", help="last or none (default: MEDIAVAULT_CHECKPOINT_RETENTION)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say how much would be freed; change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    home: HomeOption = None,
    state_db: StateDbOption = None,
) -> None:
    """Delete the checkpoints finished emails no longer need, then compact the file.

    Emails waiting for review, still running or failed are never touched. `--keep last`
    keeps each finished email's final state; `--keep none` deletes all of it (the case store
    and the audit log keep the outcome). Safe to run while triage runs.
    """
    from mediavault.agent.stores.checkpoint_retention import parse_age, prune_checkpoints
    from mediavault.graph.context import ConfigurationError

    context = context_for(home, state_db=state_db)
    try:
        age = parse_age(older_than)
    except ValueError as problem:
        fail(str(problem))
    try:
        report = prune_checkpoints(context, policy=keep, older_than=age, dry_run=dry_run)
    except ConfigurationError as problem:
        fail(str(problem))
    if as_json:
        typer.echo(json.dumps(asdict(report), indent=2))
        return
    console = Console(highlight=False, soft_wrap=True)
    if report.policy == "all":
        console.print("the retention policy is `all`: nothing to prune "
                      "(pass --keep last or --keep none)")
        return
    if report.threads == 0:
        console.print("no checkpoints: nothing to prune")
        return
    verb = "would prune" if dry_run else "pruned"
    freed = "would free" if dry_run else "freed"
    console.print(Text(
        f"{verb} {report.pruned} of {report.threads} emails (keep {report.policy}, finished "
        f"more than {older_than} ago): {freed} {_size(report.bytes_freed)} of checkpoint data; "
        f"{report.kept} left as they are (waiting for review, running, failed, recent or "
        "already pruned)"))
    if not dry_run and report.file_bytes_before is not None:
        console.print(Text(f"{context.checkpoint_path}: {_size(report.file_bytes_before)} -> "
                           f"{_size(report.file_bytes_after)}"))


@checkpoints_app.command("repair")
def repair_command(
    force: Annotated[
        bool, typer.Option("--force", help="Move the file aside even if it checks out fine.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Move a damaged checkpoint file aside, keep the runs that still read, and continue.

    Recorded outcomes stay (they are in the case store); runs that could not be read start
    again when their email is triaged again. Stop triage and workers on this home first.
    """
    from mediavault.agent.stores.checkpoint_repair import repair_checkpoint_file
    from mediavault.graph.context import ConfigurationError

    context = context_for(home)
    try:
        report = repair_checkpoint_file(context, force=force)
    except (ConfigurationError, OSError) as problem:
        fail(str(problem))
    if as_json:
        data = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(report).items()}
        data["lost_reviews"] = list(report.lost_reviews)
        typer.echo(json.dumps(data, indent=2))
        return
    console = Console(highlight=False, soft_wrap=True)
    if report.moved_to is None:
        console.print(Text(f"{report.path}: " + (
            "no checkpoint file" if not report.path.exists() else "intact, nothing to repair")))
        return
    console.print(Text(printable(
        f"moved {report.path} aside to {report.moved_to} ({report.problem or 'forced'}); "
        f"salvaged {report.salvaged_threads} runs, lost "
        f"{'all' if report.lost_threads is None else report.lost_threads}. Recorded "
        "outcomes are kept in the case store; triage continues."), style="green"))
    if report.lost_reviews:
        console.print(Text(
            f"{len(report.lost_reviews)} reviews lost their run and are drafted again when "
            "their email is triaged again: " + ", ".join(printable(e) for e in
                                                          report.lost_reviews),
            style="yellow"))
