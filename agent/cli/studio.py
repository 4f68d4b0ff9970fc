"""`mediavault studio`: serve the Email Triage graph to LangGraph Studio with `langgraph dev`.

The server comes from langgraph-cli (the dev extra). It loads ``langgraph.json``, which
exports the graph compiled without a checkpointer; the server brings its own persistence.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from mediavault.agent.cli.cases import context_for

#: langgraph dev's own default port, used when it is free.
PREFERRED_PORT = 2024
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "langgraph.json"
STUDIO_URL = "https://smith.langchain.com/studio/?baseUrl={base}"
NOT_INSTALLED = (
    "LangGraph Studio needs langgraph-cli, which is not installed: "
    "pip install -e '.[dev]' (or pip install 'langgraph-cli[inmem]')"
)


def _fail(message: str, code: int = 2) -> NoReturn:
    Console(stderr=True, soft_wrap=True, highlight=False).print(
        Text(f"error: {message}", style="bold red"))
    raise typer.Exit(code)


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
        _fail(NOT_INSTALLED)
    if not config.is_file():
        _fail(f"no langgraph.json at {config}; run from a checkout or pass --config")
    context = context_for(home, db=str(db) if db else None, model=model)
    try:
        chosen = port or free_port(host)
    except OSError as problem:
        _fail(str(problem))
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
        code = serve_until_stopped(command, cwd=config.resolve().parent, env=environment)
    except OSError as problem:
        _fail(f"cannot start {langgraph}: {problem.strerror or problem}")
    raise typer.Exit(code)


#: Seconds the server gets to stop after SIGTERM before its process group is killed.
STOP_GRACE_SECONDS = 10.0


def serve_until_stopped(command: list[str], *, cwd: Path, env: dict[str, str]) -> int:
    """Run the server until it exits or this process is told to stop (SIGTERM, SIGINT).

    The server runs in a process group of its own, so stopping this process stops the server
    and every process it started (``langgraph dev`` runs workers of its own), instead of
    leaving them serving. Returns the server's exit status, or 0 when stopped by a signal.
    """
    process = subprocess.Popen(command, cwd=cwd, env=env, start_new_session=True)
    stop_asked: list[float] = []

    def stop(_signum: int, _frame: object) -> None:
        # Only a signal here: waiting on the child belongs to the loop below.
        if not stop_asked:
            stop_asked.append(time.monotonic())
        _signal_group(process.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                code = process.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if stop_asked and time.monotonic() - stop_asked[0] > STOP_GRACE_SECONDS:
                    _signal_group(process.pid, signal.SIGKILL)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
        _stop_leftovers(process.pid)
    return 0 if stop_asked else code


def _signal_group(group: int, sig: int) -> bool:
    """Send ``sig`` to the process group; False when the group no longer exists."""
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        return False
    return True


def _stop_leftovers(group: int) -> None:
    """Processes the server started and left behind in its group: SIGTERM, then SIGKILL."""
    if not _signal_group(group, signal.SIGTERM):
        return
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline:
        if not _signal_group(group, 0):  # signal 0: does the group still exist?
            return
        time.sleep(0.1)
    _signal_group(group, signal.SIGKILL)
