"""Inbox triage as a library (agent/ops/inbox_triage.py) and the one CLI error helper."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from mediavault.agent.cli.errors import fail
from mediavault.agent.mail.mailboxes import ReadOptions
from mediavault.agent.ops.batch import run_triage_batch
from mediavault.agent.ops.inbox_triage import InboxTally, ensure_demo_database, missing_paths
from mediavault.graph.context import Context

REPO = Path(__file__).resolve().parents[2]
INBOX = REPO / "examples" / "inbox.csv"


def test_an_inbox_is_read_tallied_and_summarised_without_the_command_line(
    mediavault_home: Path, demo_db_path: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_text("email_id,received_at,from,subject,body\nx1,not a date,nobody,Hi,Hello\n",
                      encoding="utf-8")
    notes: list[tuple[str, str]] = []
    tally = InboxTally()
    emails = tally.read([INBOX, broken], ReadOptions(), lambda *note: notes.append(note))
    assert emails and len(tally.items) == len(emails)
    assert tally.problems and notes and notes[0][0] == "skipped"
    context = Context(home=mediavault_home, db=str(demo_db_path))
    tally.results = []
    for result in run_triage_batch(emails[:3], context=context):
        tally.add(result)
    summary = tally.as_dict(elapsed=1.0, not_reached=0)["summary"]
    assert summary["read"] == len(emails) and summary["triaged"] == 3
    assert tally.exit_status() == 1  # an unreadable email is a failure of the run
    assert "starting" not in tally.progress_text()


def test_missing_paths_and_the_demo_database(mediavault_home: Path) -> None:
    assert missing_paths([INBOX, REPO / "no-such-inbox"]) == [str(REPO / "no-such-inbox")]
    context = Context(home=mediavault_home)
    assert ensure_demo_database(context) is True and context.db_path.exists()
    assert ensure_demo_database(context) is False  # built once


def test_an_error_is_one_red_line_with_hostile_characters_made_visible(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(typer.Exit) as stopped:
        fail("bad file name\x1b[31m\nsecond line\u202eevil", 3)
    assert stopped.value.exit_code == 3
    printed = capsys.readouterr().err
    assert printed.count("\n") == 1 and printed.startswith("error: bad file name")
    assert "\x1b" not in printed and "\u202e" not in printed
    assert "\\x1b" in printed and "\\u202e" in printed
