"""The graph served by ``langgraph dev`` (what LangGraph Studio talks to), driven by the SDK.

The server runs on a temporary copy of the project, so its ``.langgraph_api/`` never lands in
the checkout, with a demo database of its own. It needs no API key and reaches no other
machine: analytics, the version check and tracing are switched off, and a network tripwire
loaded into the server process records any attempt to connect anywhere but this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient

from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.agent.stores.case_store import CaseStore
from mediavault.graph.context import DEMO_DB_NAME

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
INBOX = REPO / "examples" / "inbox.csv"
EXPECTED = json.loads((REPO / "examples" / "inbox_expected.json").read_text())
#: What the server needs of the project (langgraph.json, the packages it imports, their data).
PROJECT_PARTS = ("pyproject.toml", "setup.py", "mediavault", "langgraph.json", "agent", "graph",
                 "tools", "policies", "skills", "evals")
GRAPH_ID = "email_triage"
STARTUP_SECONDS = 120.0

#: Loaded into the server process through PYTHONPATH: refuses and logs every connection and
#: name lookup that is not for this machine.
TRIPWIRE = '''
import os, socket

_LOG = os.environ["MEDIAVAULT_TRIPWIRE_LOG"]
_LOCAL = {None, "", "localhost", "127.0.0.1", "::1", "0.0.0.0", "::"}
_real_connect, _real_connect_ex = socket.socket.connect, socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _note(what):
    with open(_LOG, "a") as log:
        log.write(what + "\\n")


def _outbound(sock, address):
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    return not str(address[0]).startswith("127.") and address[0] not in _LOCAL


def connect(self, address):
    if _outbound(self, address):
        _note(f"connect {address!r}")
        raise ConnectionRefusedError(f"outbound connection blocked: {address!r}")
    return _real_connect(self, address)


def connect_ex(self, address):
    if _outbound(self, address):
        _note(f"connect {address!r}")
        return 111
    return _real_connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name not in _LOCAL and not str(name).startswith("127."):
        _note(f"lookup {name!r}")
        raise socket.gaierror(socket.EAI_NONAME, f"name lookup blocked: {name!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
socket.getaddrinfo = getaddrinfo
if not os.path.exists(_LOG):
    _note(f"armed in process {os.getpid()}")
'''


@dataclass(frozen=True)
class DevServer:
    url: str
    home: Path
    project: Path
    log: Path
    network_log: Path

    def client(self) -> SyncLangGraphClient:
        return get_sync_client(url=self.url, api_key=None)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server_environment(home: Path, db: Path, tripwire: Path, network_log: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LANGSMITH_", "LANGCHAIN_", "OPENAI_", "MEDIAVAULT_",
                                "LANGGRAPH_", "PYTHONPATH"))}
    env.update({
        "MEDIAVAULT_HOME": str(home),
        "MEDIAVAULT_DB": str(db),
        # What `langgraph dev` would otherwise reach out to: CLI analytics, the PyPI version
        # check and LangSmith tracing.
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "true",
        "LANGSMITH_TRACING": "false",
        "PYTHONPATH": str(tripwire),
        "MEDIAVAULT_TRIPWIRE_LOG": str(network_log),
    })
    return env


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], server_log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"langgraph dev exited with {process.returncode}:\n"
                        f"{server_log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/ok", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    pytest.fail(f"langgraph dev did not answer /ok within {STARTUP_SECONDS:g}s:\n"
                f"{server_log.read_text(errors='replace')[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server and everything it started: its process group, by id."""
    if process.poll() is not None:
        return
    group = os.getpgid(process.pid)
    os.killpg(group, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(group, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory, demo_db_path: Path) -> Iterator[DevServer]:
    langgraph = Path(sys.executable).with_name("langgraph")
    if not langgraph.exists():
        pytest.fail(f"{langgraph} is missing: install the dev extra (pip install -e '.[dev]')")
    root = tmp_path_factory.mktemp("langgraph-dev")
    project = root / "project"
    project.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".langgraph_api")
    for part in PROJECT_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, project / part, ignore=ignore)
        else:
            shutil.copy2(source, project / part)
    home = root / "home"
    home.mkdir()
    db = home / DEMO_DB_NAME
    shutil.copy(demo_db_path, db)
    tripwire = root / "tripwire"
    tripwire.mkdir()
    (tripwire / "sitecustomize.py").write_text(TRIPWIRE)
    network_log = root / "network.log"
    server_log = root / "server.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with server_log.open("wb") as log:
        process = subprocess.Popen(
            [str(langgraph), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=project, env=_server_environment(home, db, tripwire, network_log),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so stopping it stops its children
        )
    try:
        _wait_until_ready(url, process, server_log)
        yield DevServer(url=url, home=home, project=project, log=server_log,
                        network_log=network_log)
    finally:
        _stop(process)


def _email(email_id: str) -> dict[str, Any]:
    email = next(e for e in read_inbox_csv(INBOX).emails if e.email_id == email_id)
    return email.model_dump(mode="json")


def _interrupts(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for task in state.get("tasks", []) for i in task.get("interrupts", [])]


def test_the_server_lists_the_email_triage_graph(dev_server: DevServer) -> None:
    assistants = dev_server.client().assistants.search(graph_id=GRAPH_ID)
    assert [a["graph_id"] for a in assistants] == [GRAPH_ID]
    graph = dev_server.client().assistants.get_graph(assistants[0]["assistant_id"])
    nodes = {node["id"] for node in graph["nodes"]}
    assert {"ingest", "safety_check", "investigation_gate", "human_review", "finalize"} <= nodes


def test_the_server_builds_the_input_and_output_schemas(dev_server: DevServer) -> None:
    # Studio draws its input form from these; on Python 3.11 they need typing_extensions'
    # TypedDict, and without them the server only logs that it could not build them.
    assistant = dev_server.client().assistants.search(graph_id=GRAPH_ID)[0]
    schemas = dev_server.client().assistants.get_schemas(assistant["assistant_id"])
    assert schemas["input_schema"] and "email" in schemas["input_schema"]["properties"]
    assert schemas["output_schema"]
    assert {"outcome", "decision", "draft", "ticket", "gate_log"} <= set(
        schemas["output_schema"]["properties"])
    assert "typing_extensions.TypedDict" not in dev_server.log_tail()


def test_a_sample_email_waits_for_review_then_is_approved(dev_server: DevServer) -> None:
    client = dev_server.client()
    thread = client.threads.create()
    # No context is sent: the graph builds its default settings from the server's environment.
    client.runs.wait(thread["thread_id"], GRAPH_ID, input={"email": _email("msg-006")})

    state = client.threads.get_state(thread["thread_id"])
    assert state["next"] == ["human_review"]
    [pending] = _interrupts(state)
    request = pending["value"]
    # The request has HumanInTheLoopMiddleware's shape: action_requests and review_configs.
    [action] = request["action_requests"]
    assert action["name"] == "send_customer_email"
    assert set(action["args"]) == {"to", "subject", "body"}
    assert action["args"]["body"] == state["values"]["draft"]["body"]
    assert action["description"]
    [config] = request["review_configs"]
    assert config["action_name"] == "send_customer_email"
    assert {"approve", "edit", "reject"} <= set(config["allowed_decisions"])
    assert state["values"]["decision"]["reason_code"] == EXPECTED["msg-006"]["reason_code"]

    result = client.runs.wait(thread["thread_id"], GRAPH_ID,
                              command={"resume": {"decisions": [{"type": "approve"}]}})
    assert isinstance(result, dict)
    assert result["outcome"]["status"] == "approved"
    final = client.threads.get_state(thread["thread_id"])
    assert final["next"] == [] and _interrupts(final) == []
    # The outcome was recorded where the server's environment points.
    case = CaseStore(dev_server.home / "cases.sqlite").get_case("msg-006")
    assert case is not None and case.status == "approved"
    assert case.outbox is not None and Path(case.outbox.path).is_file()


def test_a_legal_threat_is_escalated_without_a_review(dev_server: DevServer) -> None:
    client = dev_server.client()
    thread = client.threads.create()
    result = client.runs.wait(thread["thread_id"], GRAPH_ID, input={"email": _email("msg-004")})
    assert isinstance(result, dict)
    assert "__interrupt__" not in result
    outcome = result["outcome"]
    assert (outcome["status"], outcome["reason_code"], outcome["queue"]) == (
        "escalated", "legal_threat", EXPECTED["msg-004"]["queue"])
    assert result["ticket"]["suggested_routing"] == EXPECTED["msg-004"]["queue"]
    case = CaseStore(dev_server.home / "cases.sqlite").get_case("msg-004")
    assert case is not None and case.status == "escalated" and case.ticket is not None


def test_settings_sent_as_run_context_reach_the_graph(dev_server: DevServer) -> None:
    client = dev_server.client()
    thread = client.threads.create()
    # Studio users may pass settings per run; with review off the draft goes out at once.
    result = client.runs.wait(thread["thread_id"], GRAPH_ID, input={"email": _email("msg-011")},
                              context={"review": "none"})
    assert isinstance(result, dict)
    assert "__interrupt__" not in result
    assert result["outcome"]["status"] == "approved"
    assert result["outcome"]["reason_code"] == EXPECTED["msg-011"]["reason_code"]


def test_the_server_reached_no_other_machine(dev_server: DevServer) -> None:
    lines = dev_server.network_log.read_text().splitlines()
    assert lines and lines[0].startswith("armed"), "the tripwire was not loaded by the server"
    attempts = lines[1:]
    assert attempts == [], f"langgraph dev tried to reach the network: {attempts}"
