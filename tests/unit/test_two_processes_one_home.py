"""Two processes on one MEDIAVAULT_HOME: each email runs once, nobody reports a false failure.

An email another process is triaging is reported as in progress elsewhere, the batch goes on
and waits for that outcome at the end; a run's lock dies with its process; the partial reply
files a killed writer leaves in the outbox are removed on the next start.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mediavault.agent.mail.outbox import remove_abandoned_partial_replies, write_outbox_message
from mediavault.agent.stores.audit import read_events, verify_audit_log
from mediavault.cli import app

REPO = Path(__file__).resolve().parents[2]
INBOX = REPO / "examples" / "inbox.csv"
runner = CliRunner()

HOLDER = """
import sys
from mediavault.agent.stores.run_locks import email_run
from mediavault.graph.context import Context
from mediavault.graph.nodes import thread_id_for
with email_run(Context(), thread_id_for(sys.argv[1]), wait=False) as held:
    print(held, flush=True)
    sys.stdin.readline()
"""


@pytest.fixture
def db(demo_db_path: Path, mediavault_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEDIAVAULT_DB", str(demo_db_path))
    return demo_db_path


def test_an_email_held_by_another_process_is_in_progress_not_failed(
    db: Path, mediavault_home: Path
) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, "msg-006"], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=os.environ)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
        outcome: dict[str, object] = {}

        def triage() -> None:
            result = runner.invoke(app, ["triage", str(INBOX), "--json"])
            outcome.update(code=result.exit_code, out=result.stdout, err=result.stderr)

        worker = threading.Thread(target=triage)
        worker.start()
        time.sleep(8)  # every other email is done by now; msg-006 waits for its holder
        assert worker.is_alive(), outcome.get("err")
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        worker.join(timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert outcome["code"] == 0, outcome["err"]
    err = str(outcome["err"])
    assert "in progress" in err and "[msg-006]: another process is triaging this email" in err
    assert "triage_failed" not in err
    report = json.loads(str(outcome["out"]))
    assert report["summary"]["failures"] == {}
    assert {e["email_id"]: e["status"] for e in report["emails"]}["msg-006"] == "awaiting_review"


def test_a_dead_holder_never_blocks_the_email(db: Path, mediavault_home: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, "msg-006"], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=os.environ)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
    holder.kill()  # SIGKILL: the kernel drops its lock
    holder.wait()
    result = runner.invoke(app, ["triage", str(INBOX)])
    assert result.exit_code == 0, result.stderr
    assert "in progress" not in result.stderr


def test_two_triage_commands_on_one_home_both_exit_0_with_one_outcome_per_email(
    db: Path, mediavault_home: Path
) -> None:
    env = {**os.environ, "MEDIAVAULT_DB": str(db)}
    expected = 16
    for round_number in range(2):  # interleavings vary; each round is a fresh home
        home = mediavault_home / f"round-{round_number}"
        env["MEDIAVAULT_HOME"] = str(home)
        command = [sys.executable, "-c", "from mediavault.cli import app; app()", "triage",
                   str(INBOX), "--json", "--concurrency", "4"]
        both = [subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE) for _ in range(2)]
        finished = [process.communicate(timeout=300) for process in both]
        for process, (out, err) in zip(both, finished, strict=True):
            assert process.returncode == 0, err
            assert "triage_failed" not in err
            report = json.loads(out)
            assert report["summary"]["failures"] == {}
            assert len(report["emails"]) == expected
            assert all(e["status"] != "failed" for e in report["emails"])
        outcomes = [e.email_id for e in read_events(home / "audit.jsonl")
                    if e.action == "case.outcome"]
        assert len(outcomes) == len(set(outcomes))  # no outcome recorded twice
        with closing(sqlite3.connect(home / "cases.sqlite")) as cases:
            statuses = dict(cases.execute("SELECT email_id, status FROM cases").fetchall())
        assert len(statuses) == expected and "failed" not in statuses.values()
        assert verify_audit_log(home / "audit.jsonl").ok


def test_partial_replies_a_killed_writer_left_are_removed_on_start(
    db: Path, mediavault_home: Path, tmp_path: Path
) -> None:
    outbox = mediavault_home / "outbox"
    write_outbox_message(outbox, email_id="done", to="a@example.com", subject="s", body="b",
                         in_reply_to=None)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    abandoned = outbox / f".writing-{dead.stdout.strip()}-k1ll3d.tmp"
    abandoned.write_bytes(b"From: support@mediavault.example\r\nTo: half a repl")
    legacy = outbox / ".writing-q8z7x6w5.tmp"  # an older version's name, long abandoned
    legacy.write_bytes(b"half")
    os.utime(legacy, (time.time() - 3600, time.time() - 3600))
    live = outbox / f".writing-{os.getpid()}-busy.tmp"  # this process is writing it now
    live.write_bytes(b"in flight")
    inbox = tmp_path / "one.csv"
    inbox.write_text("email_id,received_at,from,subject,body\n"
                     "x-1,2026-03-01T09:00:00Z,a@example.com,Hi,\"Is Hollow Meridian in stock?\"\n")
    result = runner.invoke(app, ["triage", str(inbox)])
    assert result.exit_code == 0, result.stderr
    assert not abandoned.exists() and not legacy.exists()
    assert live.exists()
    assert sorted(p.name for p in outbox.iterdir() if not p.name.startswith(".")) == [
        p.name for p in outbox.glob("done-*.eml")]
    assert remove_abandoned_partial_replies(outbox) == []
