"""A damaged checkpoint file: triage stops with a clear message naming the repair command, and
`mediavault checkpoints repair` moves it aside so that triage continues with every recorded
outcome kept."""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.agent.stores.audit import verify_audit_log
from mediavault.cli import app
from mediavault.graph.context import Context

REPO = Path(__file__).resolve().parents[2]
INBOX = REPO / "examples" / "inbox.csv"
PAGE = 4096

runner = CliRunner()


def _first_lines(count: int, target: Path) -> Path:
    """A CSV of the sample inbox's first ``count`` emails (a header plus their rows)."""
    emails = read_inbox_csv(INBOX).emails[:count]
    import csv

    with target.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email_id", "received_at", "from", "subject", "body"])
        for email in emails:
            sender = f"{email.sender_name} <{email.sender}>" if email.sender_name else email.sender
            writer.writerow([email.email_id, email.received_at.isoformat(), sender,
                             email.subject, email.body])
    return target


def _damage(path: Path, *, header: bool) -> None:
    """Overwrite pages of the checkpoint file (its header too when asked), as a failing disk
    would. The file is replaced, so no open connection keeps serving the old pages."""
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    assert len(data) > 8 * PAGE
    start = 0 if header else 2 * PAGE
    for offset in range(start, len(data) - PAGE, 3 * PAGE):
        data[offset:offset + PAGE] = b"\xde\xad\xbe\xef" * (PAGE // 4)
    damaged = path.with_name("damaged.tmp")
    damaged.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.replace(damaged, path)


def _statuses(home: Path) -> dict[str, str]:
    with closing(sqlite3.connect(home / "cases.sqlite")) as connection:
        return dict(connection.execute("SELECT email_id, status FROM cases").fetchall())


@pytest.fixture
def triaged_home(
    demo_db_path: Path, mediavault_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Path:
    monkeypatch.setenv("MEDIAVAULT_DB", str(demo_db_path))
    monkeypatch.setenv("MEDIAVAULT_CHECKPOINT_RETENTION", "all")  # a big file to damage
    inbox = _first_lines(6, tmp_path / "first.csv")
    result = runner.invoke(app, ["triage", str(inbox)])
    assert result.exit_code == 0, result.output
    return inbox


@pytest.mark.parametrize("header", [False, True], ids=["malformed", "not-a-database"])
def test_a_damaged_checkpoint_file_stops_triage_with_the_repair_command(
    triaged_home: Path, mediavault_home: Path, tmp_path: Path, header: bool
) -> None:
    context = Context(home=mediavault_home)
    recorded = _statuses(mediavault_home)
    _damage(context.checkpoint_path, header=header)
    more = _first_lines(9, tmp_path / "more.csv")

    stopped = runner.invoke(app, ["triage", str(more)])
    assert stopped.exit_code == 2
    assert "is damaged" in stopped.stderr
    assert "mediavault checkpoints repair" in stopped.stderr
    assert _statuses(mediavault_home) == recorded  # nothing was recorded as failed

    repaired = runner.invoke(app, ["checkpoints", "repair", "--json"])
    assert repaired.exit_code == 0, repaired.output
    report = json.loads(repaired.stdout)
    assert report["damaged"] and Path(report["moved_to"]).exists()
    assert report["salvaged_threads"] + (report["lost_threads"] or 0) <= len(recorded)

    lines = len(context.audit_path.read_text().splitlines())
    again = runner.invoke(app, ["triage", "--json", str(more)])
    assert again.exit_code == 0, again.output
    results = {r["email_id"]: r for r in json.loads(again.stdout)["emails"]}
    for email_id, status in recorded.items():
        if status != "awaiting_review":
            assert results[email_id]["status"] == status
            assert results[email_id]["already_recorded"], email_id
    statuses = _statuses(mediavault_home)
    assert len(statuses) == 9 and "failed" not in statuses.values()
    assert {k: v for k, v in statuses.items() if k in recorded and v != "awaiting_review"} == {
        k: v for k, v in recorded.items() if v != "awaiting_review"}
    assert len(context.audit_path.read_text().splitlines()) > lines  # the new emails ran
    assert verify_audit_log(context.audit_path).ok


def test_repair_leaves_an_intact_file_alone(triaged_home: Path, mediavault_home: Path) -> None:
    context = Context(home=mediavault_home)
    before = context.checkpoint_path.stat().st_ino
    result = runner.invoke(app, ["checkpoints", "repair"])
    assert result.exit_code == 0
    assert "intact" in result.stdout
    assert context.checkpoint_path.stat().st_ino == before
    assert not list(mediavault_home.glob("checkpoints.sqlite.damaged-*"))
