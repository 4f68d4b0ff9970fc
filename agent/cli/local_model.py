"""`mediavault local-model`: serve the bundled SmolLM2 model through llama.cpp, offline."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from mediavault.agent.cli.errors import fail
from mediavault.agent.models.local_server import (
    DEFAULT_PORT,
    MODEL_ALIAS,
    LocalModelServer,
    LocalModelUnavailable,
    free_port,
)


def local_model_command(
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535,
                     help=f"Port to serve on (default: {DEFAULT_PORT} if free, else any free)."),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind; keep 127.0.0.1 unless you must.")
    ] = "127.0.0.1",
    threads: Annotated[
        int | None, typer.Option("--threads", min=1, help="CPU threads for llama.cpp.")
    ] = None,
) -> None:
    """Serve the bundled SmolLM2-135M model with llama.cpp's OpenAI-compatible server.

    Needs the `local` extra. Prints the settings that point the agent at it; Ctrl+C stops it.
    """
    chosen = port
    if chosen is None:
        try:
            chosen = DEFAULT_PORT if _is_free(host, DEFAULT_PORT) else free_port(host)
        except OSError as problem:
            fail(str(problem))
    server = LocalModelServer(host=host, port=chosen, threads=threads)
    console = Console(highlight=False, soft_wrap=True)
    console.print(Text(f"Starting llama.cpp with {MODEL_ALIAS} on {host}:{chosen} ..."))
    try:
        server.start()
    except LocalModelUnavailable as problem:
        fail(str(problem))

    def _stop(signum: int, _frame: FrameType | None) -> None:
        server.stop()
        raise typer.Exit(0)

    # The server runs in its own process group: stop it on SIGTERM as well as Ctrl+C.
    signal.signal(signal.SIGTERM, _stop)
    console.print(Text(f"Serving {MODEL_ALIAS} at {server.base_url} (Ctrl+C stops it). Use:"))
    console.print(Text(f"  OPENAI_BASE_URL={server.base_url} mediavault triage "
                       f"--model openai:{MODEL_ALIAS} examples/inbox.csv"))
    try:
        code = server.wait()
    except KeyboardInterrupt:
        code = 0
    finally:
        server.stop()
    raise typer.Exit(code)


def _is_free(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
