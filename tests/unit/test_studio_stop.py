"""Stopping `mediavault studio` stops the `langgraph dev` server it started, and its children.

A stand-in for the `langgraph` executable starts a child of its own (as `langgraph dev` starts
workers) and records both process ids; the test then signals `mediavault studio` and checks
that nothing it started is still running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

FAKE_LANGGRAPH = """#!{python}
import os, subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open(os.environ["FAKE_PIDS"], "w") as pids:
    pids.write(f"{{os.getpid()}} {{worker.pid}}")
time.sleep(120)
"""

#: Runs `mediavault studio` with the stand-in found instead of the real langgraph-cli.
LAUNCH = """
import sys
import mediavault.agent.cli.studio as studio
studio.find_langgraph_cli = lambda: sys.argv[1]
from mediavault.cli import app
app(["studio", "--config", sys.argv[2], "--home", sys.argv[3], "--port", "45931"])
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie (an unreaped dead process still answers signal 0)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    fake = tmp_path / "langgraph"
    fake.write_text(FAKE_LANGGRAPH.format(python=sys.executable))
    fake.chmod(0o755)
    pids = tmp_path / "pids"
    env = {**os.environ, "FAKE_PIDS": str(pids)}
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, str(fake), str(REPO / "langgraph.json"),
         str(tmp_path / "home")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (pids.exists() and len(pids.read_text().split()) == 2):
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the stand-in server never started"
            time.sleep(0.05)
        yield process, pids
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in (int(p) for p in pids.read_text().split()) if pids.exists() else ():
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_server_and_what_it_started(
    studio: tuple[subprocess.Popen[bytes], Path], sig: signal.Signals
) -> None:
    process, pids = studio
    server, worker = (int(p) for p in pids.read_text().split())
    assert _running(server) and _running(worker)
    process.send_signal(sig)
    assert process.wait(timeout=30) == 0
    deadline = time.monotonic() + 5
    while (_running(server) or _running(worker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(server), "the langgraph dev stand-in is still serving"
    assert not _running(worker), "a process the server started is still running"
