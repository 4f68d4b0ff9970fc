"""A full disk in the middle of a batch: the next run recovers by itself, and nothing disagrees.

The disk is "filled" by an ``os.write`` that writes a byte budget and then fails with ENOSPC,
the way a real full file system tears the audit log's last line.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mediavault.agent.stores import audit as audit_module
from mediavault.agent.stores.audit import read_events
from mediavault.cli import app

REPO = Path(__file__).resolve().parents[2]
INBOX = REPO / "examples" / "inbox.csv"
runner = CliRunner()


class FullDisk:
    """Writes ``budget`` bytes in all, then fails every write with ENOSPC."""

    def __init__(self, budget: int) -> None:
        self.left = budget
        self.real = os.write

    def __call__(self, fd: int, data: bytes | memoryview) -> int:
        if self.left <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = self.real(fd, bytes(data)[: self.left])
        self.left -= written
        return written


@pytest.mark.parametrize("budget", [20_000, 45_123])
def test_after_a_full_disk_the_next_run_recovers_and_the_stores_agree(
    demo_db_path: Path, mediavault_home: Path, monkeypatch: pytest.MonkeyPatch, budget: int
) -> None:
    monkeypatch.setenv("MEDIAVAULT_DB", str(demo_db_path))
    with monkeypatch.context() as full:
        full.setattr(audit_module.os, "write", FullDisk(budget))
        first = runner.invoke(app, ["triage", str(INBOX)])
    assert first.exit_code == 1
    assert "No space left on device" in first.stderr
    log = mediavault_home / "audit.jsonl"
    assert not log.read_bytes().endswith(b"\n")  # the tear this is about

    # Space is back: the same command runs to the end, with nothing edited by hand.
    second = runner.invoke(app, ["triage", str(INBOX), "--json"])
    assert second.exit_code == 0, second.stderr
    summary = json.loads(second.stdout)["summary"]
    assert summary["failures"] == {}
    verify = runner.invoke(app, ["audit", "verify", "--json"])
    assert verify.exit_code == 0, verify.stdout
    verdict = json.loads(verify.stdout)
    assert verdict["ok"] and len(verdict["recovered"]) == 1
    kept = sorted(mediavault_home.glob("audit.jsonl.torn-*"))
    assert len(kept) == 1 and kept[0].name in verdict["recovered"][0]
    assert "recovered, not tampering" in runner.invoke(app, ["audit", "verify"]).stdout

    # The case store and the audit log agree: every final outcome is in both, once.
    with closing(sqlite3.connect(mediavault_home / "cases.sqlite")) as cases:
        statuses = dict(cases.execute("SELECT email_id, status FROM cases").fetchall())
    assert len(statuses) == 16 and "failed" not in statuses.values()
    events = read_events(log)
    outcomes = [e.email_id for e in events if e.action == "case.outcome"]
    assert len(outcomes) == len(set(outcomes))
    assert set(outcomes) == {i for i, status in statuses.items() if status != "awaiting_review"}
    assert {e.email_id for e in events if e.email_id} >= set(statuses)
