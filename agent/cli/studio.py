"""`mediavault studio`: serve the Email Triage graph to LangGraph Studio with `langgraph dev`.

The server comes from langgraph-cli (the dev extra). It loads ``langgraph.json``, which
exports the graph compiled without a checkpointer; the server brings its own persistence.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from mediavault.agent.cli.errors import context_for, fail

#: langgraph dev's own default port, used when it is free.
PREFERRED_PORT = 2024
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "langgraph.json"
STUDIO_URL = "https://smith.langchain.com/studio/?baseUrl={base}"
NOT_INSTALLED = (
    "LangGraph Studio needs langgraph-cli, which is not installed: "
    "pip install -e '.[dev]' (or pip install 'langgraph-cli[inmem]')"
)


def find_langgraph_cli() -> str | None:
    """The `langgraph` executable: beside this interpreter (the venv) first, then on PATH."""
    beside = Path(sys.executable).parent / "langgraph"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("langgraph")


def free_port(host: str, preferred: int = PREFERRED_PORT) -> int:
    """``preferred`` when nothing listens on it, else a port the system says is free."""
    for candidate in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, candidate))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise OSError(f"no free port on {host}")


def studio_command_line(
    langgraph: str, *, config: Path, host: str, port: int, allow_blocking: bool = False
) -> list[str]:
    """The `langgraph dev` command that serves the graph: no browser, the given port."""
    command = [langgraph, "dev", "--no-browser", "--config", str(config), "--host", host,
               "--port", str(port)]
    if allow_blocking:
        command.append("--allow-blocking")
    return command


def studio_command(
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535,
                     help=f"Port to serve on (default: {PREFERRED_PORT} if free, else any free)."),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind; keep 127.0.0.1 unless you must.")
    ] = "127.0.0.1",
    config: Annotated[
        Path, typer.Option("--config", help="The langgraph.json to serve.")
    ] = DEFAULT_CONFIG,
    allow_blocking: Annotated[
        bool,
        typer.Option("--allow-blocking", help="Pass --allow-blocking to langgraph dev."),
    ] = False,
    home: Annotated[
        Path | None, typer.Option("--home", help="State directory (MEDIAVAULT_HOME).")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Business database: a SQLite file or a postgresql:// DSN."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="`rules` or `openai:<model>`.")
    ] = None,
) -> None:
    """Serve the graph to LangGraph Studio with `langgraph dev` (no browser, a free port).

    Needs langgraph-cli from the dev extra; stop it with Ctrl+C.
    """
    langgraph = find_langgraph_cli()
    if langgraph is None:
        fail(NOT_INSTALLED)
    if not config.is_file():
        fail(f"no langgraph.json at {config}; run from a checkout or pass --config")
    context = context_for(home, db=str(db) if db else None, model=model)
    try:
        chosen = port or free_port(host)
    except OSError as problem:
        fail(str(problem))
    environment = dict(os.environ)
    # The server runs in the config's folder: pass the settings as absolute values.
    environment["MEDIAVAULT_HOME"] = str(context.home.resolve())
    if context.db:
        environment["MEDIAVAULT_DB"] = str(Path(context.db).resolve())
    environment["MEDIAVAULT_MODEL"] = context.model
    command = studio_command_line(langgraph, config=config.resolve(), host=host, port=chosen,
                                  allow_blocking=allow_blocking)
    console = Console(highlight=False, soft_wrap=True)
    base = f"http://{host}:{chosen}"
    console.print(Text(f"Serving the Email Triage graph at {base} (Ctrl+C stops it)"))
    console.print(Text(f"Open LangGraph Studio: {STUDIO_URL.format(base=base)}"))
    try:
        completed = subprocess.run(command, cwd=config.resolve().parent, env=environment,
                                   check=False)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except OSError as problem:
        fail(f"cannot start {langgraph}: {problem.strerror or problem}")
    raise typer.Exit(completed.returncode)
