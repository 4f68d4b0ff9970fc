"""A default run stays on this machine: no outbound connection, no name lookup, no tracing.

LangSmith tracing is opt-in: it starts only when the user sets the usual LangSmith variables,
and then it goes where those variables point.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mediavault.agent.api import ReviewDecision, resume, triage_email
from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.graph.context import DEMO_DB_NAME

REPO = Path(__file__).resolve().parents[2]
INBOX = REPO / "examples" / "inbox.csv"
EXPECTED = json.loads((REPO / "examples" / "inbox_expected.json").read_text())
#: Variables that switch LangSmith tracing on or point it somewhere.
TRACING_VARIABLES = ("LANGSMITH_", "LANGCHAIN_TRACING", "LANGCHAIN_API_KEY", "LANGCHAIN_ENDPOINT",
                     "LANGCHAIN_PROJECT")


@dataclass
class NetworkLog:
    """Every attempt to reach another machine, refused and recorded."""

    connections: list[Any] = field(default_factory=list)
    lookups: list[Any] = field(default_factory=list)


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> NetworkLog:
    """Refuse and record IP connections and name lookups (local Unix sockets stay allowed)."""
    log = NetworkLog()
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def refused(address: Any) -> OSError:
        log.connections.append(address)
        return ConnectionRefusedError(f"network access is not allowed in this test: {address}")

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise refused(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            log.connections.append(address)
            return 111  # ECONNREFUSED
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        log.lookups.append(host)
        raise socket.gaierror(socket.EAI_NONAME, f"name lookups are not allowed here: {host}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return log


@pytest.fixture
def default_setup(
    mediavault_home: Path, demo_db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A user's default setup: the demo database in MEDIAVAULT_HOME, nothing else configured."""
    from langsmith.utils import get_env_var

    for name in list(os.environ):
        if name.startswith(TRACING_VARIABLES) or name.startswith("OPENAI_"):
            monkeypatch.delenv(name)
    get_env_var.cache_clear()  # LangSmith caches what it read; read the cleaned variables
    shutil.copy(demo_db_path, mediavault_home / DEMO_DB_NAME)
    yield mediavault_home
    get_env_var.cache_clear()


def _inbox_email(email_id: str) -> Any:
    return next(e for e in read_inbox_csv(INBOX).emails if e.email_id == email_id)


def test_the_guard_notices_connections_and_lookups(network: NetworkLog) -> None:
    # Without this, a guard that saw nothing would prove nothing.
    with pytest.raises(OSError), socket.socket() as raw:
        raw.connect(("192.0.2.10", 443))
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen("https://api.smith.langchain.com/info", timeout=1)
    assert ("192.0.2.10", 443) in network.connections
    assert "api.smith.langchain.com" in network.lookups


def test_a_default_triage_and_review_make_no_network_access(
    default_setup: Path, network: NetworkLog
) -> None:
    from langsmith.utils import tracing_is_enabled

    assert not tracing_is_enabled()
    drafted = triage_email(_inbox_email("msg-006"))  # no context, no model: all defaults
    escalated = triage_email(_inbox_email("msg-004"))
    approved = resume("msg-006", ReviewDecision(type="approve", reviewer="sam"))

    assert (drafted.status, drafted.reason_code) == (
        "awaiting_review", EXPECTED["msg-006"]["reason_code"])
    assert (escalated.status, escalated.queue) == ("escalated", EXPECTED["msg-004"]["queue"])
    assert approved.status == "approved"
    assert (default_setup / "checkpoints.sqlite").exists()
    assert network.connections == [] and network.lookups == []


class _TraceCollector(BaseHTTPRequestHandler):
    """Stands in for a LangSmith endpoint: accepts anything and remembers the paths."""

    protocol_version = "HTTP/1.1"
    paths: list[str]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.paths.append(self.path)
        body = b"{}"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = _answer


@pytest.fixture
def trace_endpoints() -> Iterator[Callable[[], tuple[str, list[str]]]]:
    """Start stand-in LangSmith endpoints; each returns its URL and the paths it was sent."""
    servers: list[ThreadingHTTPServer] = []

    def start() -> tuple[str, list[str]]:
        paths: list[str] = []
        handler = type("Collector", (_TraceCollector,), {"paths": paths})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", paths

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


#: Triage one inbox email with the defaults in a fresh process (LangSmith reads its variables
#: once per process), then wait until any traces are sent.
_TRIAGE_ONE = """
import sys
from langchain_core.tracers.langchain import wait_for_all_tracers
from mediavault.agent.api import triage_email
from mediavault.agent.mail.csv_inbox import read_inbox_csv
from pathlib import Path
email = next(e for e in read_inbox_csv(Path(sys.argv[1])).emails if e.email_id == sys.argv[2])
print(triage_email(email).status)
wait_for_all_tracers()
"""


@pytest.mark.slow  # starts the command in new processes
def test_tracing_starts_only_when_the_user_opts_in_and_goes_where_they_point(
    default_setup: Path, demo_db_path: Path,
    trace_endpoints: Callable[[], tuple[str, list[str]]], tmp_path: Path,
) -> None:
    runs: dict[bool, tuple[subprocess.Popen[str], list[str]]] = {}
    for opted_in in (False, True):
        url, paths = trace_endpoints()
        home = tmp_path / f"opted-in-{opted_in}"
        home.mkdir()
        shutil.copy(demo_db_path, home / DEMO_DB_NAME)
        # An endpoint and a key alone must not switch tracing on; LANGSMITH_TRACING does.
        env = {**os.environ, "MEDIAVAULT_HOME": str(home), "LANGSMITH_ENDPOINT": url,
               "LANGSMITH_API_KEY": "lsv2-placeholder"}
        if opted_in:
            env["LANGSMITH_TRACING"] = "true"
        process = subprocess.Popen(
            [sys.executable, "-c", _TRIAGE_ONE, str(INBOX), "msg-004"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        runs[opted_in] = (process, paths)
    for process, _ in runs.values():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert out.strip() == "escalated"
    assert runs[False][1] == []
    assert any("/runs" in path for path in runs[True][1])
