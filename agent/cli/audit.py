"""`mediavault audit verify`: check the audit log's hash chain.

Exit codes: 0 the chain holds; 1 it is broken (the first broken line is printed); 2 the
check could not run (no log, a bad ``MEDIAVAULT_AUDIT_KEY``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from mediavault.agent.cli.cases import context_for, printable
from mediavault.agent.cli.options import wide_console

audit_app = typer.Typer(help="Check the tamper-evident audit log.", no_args_is_help=True)

#: How much of a broken line is shown: enough to find it, not a whole payload.
SHOWN_LINE_CHARS = 300


def _fail(message: str, code: int = 2) -> NoReturn:
    Console(stderr=True, soft_wrap=True, highlight=False).print(
        Text(f"error: {printable(message)}", style="bold red"))
    raise typer.Exit(code)


def _line(path: Path, number: int) -> str | None:
    """Line ``number`` (1-based) of the log, cut to :data:`SHOWN_LINE_CHARS`."""
    try:
        with path.open("rb") as log:
            for index, raw in enumerate(log, start=1):
                if index == number:
                    text = raw.rstrip(b"\n").decode("utf-8", errors="replace")
                    if len(text) > SHOWN_LINE_CHARS:
                        text = text[:SHOWN_LINE_CHARS] + "..."
                    return text
    except OSError:
        return None
    return None


@audit_app.command("verify")
def verify_command(
    log: Annotated[
        Path | None,
        typer.Option("--log", help="The audit log (default: audit.jsonl in MEDIAVAULT_HOME)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
    home: Annotated[
        Path | None, typer.Option("--home", help="State directory (MEDIAVAULT_HOME).")
    ] = None,
) -> None:
    """Verify the audit log's hash chain; exit 1 and print the first broken line if broken.

    With MEDIAVAULT_AUDIT_KEY set the chain is checked as an HMAC chain, which also detects a
    recomputed chain and a truncated tail.
    """
    from mediavault.agent.stores.audit import audit_key_from_env, verify_audit_log
    from mediavault.graph.context import ConfigurationError

    path = log or context_for(home).audit_path
    try:
        key = audit_key_from_env()
    except ConfigurationError as problem:
        _fail(str(problem))
    head = path.with_name(path.name + ".head")
    if not path.exists() and not head.exists():
        _fail(f"no audit log at {path}")
    if path.exists() and not path.is_file():
        _fail(f"{path} is not a file")
    verdict = verify_audit_log(path, key=key)
    broken_line = (
        _line(path, verdict.first_broken_line) if verdict.first_broken_line else None
    )
    if as_json:
        typer.echo(json.dumps({
            "log": str(path), "ok": verdict.ok, "lines_checked": verdict.lines_checked,
            "first_broken_line": verdict.first_broken_line, "broken_line_text": broken_line,
            "problem": verdict.problem, "keyed": verdict.keyed,
            "torn_tail": verdict.torn_tail, "recovered": list(verdict.recovered),
            "warnings": list(verdict.warnings)}, indent=2))
    else:
        console = wide_console()
        console.print(Text(printable(verdict.summary), style="green" if verdict.ok else "bold red"))
        if broken_line is not None:
            console.print(Text(f"line {verdict.first_broken_line}: {printable(broken_line)}"))
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        for warning in verdict.warnings:
            err.print(Text(f"warning: {warning}", style="yellow"))
    if not verdict.ok:
        raise typer.Exit(1)
