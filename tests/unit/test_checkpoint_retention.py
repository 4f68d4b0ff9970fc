"""Checkpoint retention: finished emails shrink to their last checkpoint (or nothing), every
guarantee holds afterwards, and `mediavault prune` does the same for older homes."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

import mediavault.agent.stores.checkpoint_retention as retention
from mediavault.agent.api import ReviewDecision, resume, triage_email
from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.agent.ops.review_desk import approve_draft, show_case
from mediavault.agent.stores.audit import verify_audit_log
from mediavault.agent.stores.checkpoint_retention import prune_checkpoints
from mediavault.cli import app
from mediavault.graph.context import ConfigurationError, Context

REPO = Path(__file__).resolve().parents[2]
EMAILS = read_inbox_csv(REPO / "examples" / "inbox.csv").emails
#: The issue's budget for a finished email under the default policy.
MAX_CHECKPOINT_BYTES_PER_EMAIL = 30 * 1024
#: An email the rules model answers with a draft (a rental's due date).
DRAFTED = next(email for email in EMAILS if email.email_id == "msg-006")

runner = CliRunner()


def _rows(path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(sql, params).fetchall()


def _checkpoints(context: Context, thread_id: str) -> int:
    return int(_rows(context.checkpoint_path,
                     "SELECT count(*) FROM checkpoints WHERE thread_id = ?", thread_id)[0][0])


def _audit_lines(context: Context) -> int:
    return len(context.audit_path.read_text().splitlines())


def _context(home: Path, db: Path, **settings: str) -> Context:
    return Context(home=home, db=str(db), **settings)  # type: ignore[arg-type]


def test_the_default_keeps_only_the_last_checkpoint_of_a_finished_email(
    demo_db_path: Path, mediavault_home: Path
) -> None:
    context = _context(mediavault_home, demo_db_path, review="none")
    assert context.checkpoint_retention == "last"
    results = [triage_email(email, context=context) for email in EMAILS[:6]]
    assert {r.status for r in results} <= {"approved", "escalated"}
    for result in results:
        assert _checkpoints(context, result.thread_id) == 1
    stored = _rows(context.checkpoint_path,
                   "SELECT sum(length(checkpoint) + length(metadata)) FROM checkpoints")[0][0]
    writes = _rows(context.checkpoint_path, "SELECT coalesce(sum(length(value)), 0) FROM writes")
    assert (int(stored) + int(writes[0][0])) / len(results) <= MAX_CHECKPOINT_BYTES_PER_EMAIL  # type: ignore[call-overload]


def test_keeping_everything_is_a_choice(demo_db_path: Path, mediavault_home: Path) -> None:
    context = _context(mediavault_home, demo_db_path, review="none", checkpoint_retention="all")
    result = triage_email(EMAILS[0], context=context)
    assert _checkpoints(context, result.thread_id) > 10


@pytest.mark.parametrize("policy", ["last", "none"])
def test_a_pruned_email_triaged_again_returns_its_outcome_and_runs_nothing(
    demo_db_path: Path, mediavault_home: Path, policy: str
) -> None:
    context = _context(mediavault_home, demo_db_path, review="none",
                       checkpoint_retention=policy)
    first = triage_email(DRAFTED, context=context)
    assert first.status == "approved"
    assert _checkpoints(context, first.thread_id) == (1 if policy == "last" else 0)
    lines, outbox = _audit_lines(context), sorted(context.outbox_path.iterdir())
    again = triage_email(DRAFTED, context=context)
    assert again.already_recorded
    assert (again.status, again.route, again.reason_code) == (
        first.status, first.route, first.reason_code)
    assert again.draft is not None and again.draft["body"] == first.draft["body"]  # type: ignore[index]
    assert _audit_lines(context) == lines  # no model call, no tool, no outcome written again
    assert sorted(context.outbox_path.iterdir()) == outbox
    assert _checkpoints(context, first.thread_id) == (1 if policy == "last" else 0)


def test_with_nothing_kept_the_review_desk_metrics_and_audit_still_work(
    demo_db_path: Path, mediavault_home: Path
) -> None:
    context = _context(mediavault_home, demo_db_path, checkpoint_retention="none")
    waiting = triage_email(DRAFTED, context=context)
    assert waiting.status == "awaiting_review"
    assert _checkpoints(context, waiting.thread_id) > 1  # a pending review keeps its run
    approve_draft(waiting.email_id, reviewer="sam", context=context)
    assert _checkpoints(context, waiting.thread_id) == 0
    case = show_case(waiting.email_id, context)
    assert case.status == "approved" and case.draft is not None and case.reviews
    assert any(entry.action == "case.outcome" for entry in case.audit_trail)
    shown = runner.invoke(app, ["review", "show", waiting.email_id])
    assert shown.exit_code == 0 and "approved" in shown.stdout
    metrics = runner.invoke(app, ["metrics", "--json"])
    assert metrics.exit_code == 0
    assert json.loads(metrics.stdout)["metrics"]["approved_without_edit"] == 1
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0
    assert verify_audit_log(context.audit_path).ok
    assert triage_email(DRAFTED, context=context).status == "approved"


def test_prune_never_touches_a_pending_review_and_it_can_still_be_decided(
    demo_db_path: Path, mediavault_home: Path
) -> None:
    context = _context(mediavault_home, demo_db_path, checkpoint_retention="all")
    waiting = triage_email(DRAFTED, context=context)
    before = _checkpoints(context, waiting.thread_id)
    for keep in ("last", "none"):
        report = prune_checkpoints(context, policy=keep)
        assert report.pruned == 0 and report.kept == 1
    assert _checkpoints(context, waiting.thread_id) == before
    decided = resume(waiting.email_id, ReviewDecision(type="approve", reviewer="sam"),
                     context=context)
    assert decided.status == "approved"


def test_a_failure_in_the_middle_of_pruning_loses_nothing(
    demo_db_path: Path, mediavault_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = _context(mediavault_home, demo_db_path, review="none", checkpoint_retention="all")
    results = [triage_email(email, context=context) for email in EMAILS[:3]]
    counts = {r.thread_id: _checkpoints(context, r.thread_id) for r in results}
    writes = _rows(context.checkpoint_path, "SELECT count(*) FROM writes")
    # The second statement fails after the first deleted the writes of the chunk's first email.
    broken = (retention._SQLITE_KEEP_LATEST[0], "DELETE FROM no_such_table WHERE x = ?")
    monkeypatch.setattr(retention, "_SQLITE_KEEP_LATEST", broken)
    with pytest.raises(sqlite3.OperationalError):
        prune_checkpoints(context, policy="last")
    assert {r.thread_id: _checkpoints(context, r.thread_id) for r in results} == counts
    assert _rows(context.checkpoint_path, "SELECT count(*) FROM writes") == writes
    monkeypatch.undo()
    report = prune_checkpoints(context, policy="last")
    assert report.pruned == 3
    for result in results:
        assert triage_email(EMAILS[results.index(result)], context=context).already_recorded


def test_prune_command_dry_run_says_what_it_would_free_then_frees_it(
    demo_db_path: Path, mediavault_home: Path
) -> None:
    context = _context(mediavault_home, demo_db_path, review="none", checkpoint_retention="all")
    results = [triage_email(email, context=context) for email in EMAILS[:4]]
    size = retention._file_bytes(context)  # the file and its WAL
    dry = runner.invoke(app, ["prune", "--dry-run", "--json", "--keep", "last"])
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.stdout)
    assert planned["pruned"] == 4 and planned["bytes_freed"] > 4 * 50_000
    assert all(_checkpoints(context, r.thread_id) > 1 for r in results)
    assert "would free" in runner.invoke(app, ["prune", "--dry-run", "--keep", "last"]).stdout

    recent = runner.invoke(app, ["prune", "--older-than", "1d", "--json", "--keep", "last"])
    assert json.loads(recent.stdout)["pruned"] == 0  # everything finished just now

    done = runner.invoke(app, ["prune", "--json", "--keep", "last"])
    assert done.exit_code == 0, done.output
    pruned = json.loads(done.stdout)
    assert pruned["bytes_freed"] == planned["bytes_freed"]
    assert all(_checkpoints(context, r.thread_id) == 1 for r in results)
    assert retention._file_bytes(context) < size / 2  # compacted, not just freed
    again = runner.invoke(app, ["prune", "--json", "--keep", "last"])
    assert json.loads(again.stdout)["pruned"] == 0


@pytest.mark.parametrize("args", [["--keep", "some"], ["--older-than", "soon"],
                                  ["--older-than", "3y"]])
def test_prune_refuses_bad_input(mediavault_home: Path, args: list[str]) -> None:
    result = runner.invoke(app, ["prune", *args])
    assert result.exit_code == 2
    assert "error:" in result.stderr


def test_an_unknown_retention_policy_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIAVAULT_CHECKPOINT_RETENTION", "forever")
    with pytest.raises(ConfigurationError, match="last, none, all"):
        Context()


KILL_MID_PRUNE = """
import os, signal, sys
import mediavault.agent.stores.checkpoint_retention as retention
from mediavault.agent.stores.checkpoints import open_checkpointer
from mediavault.graph.context import Context

context = Context(home=sys.argv[1], db=sys.argv[2])
retention.SQLITE_PRUNE_CHUNK = 2
deletes = []

def die_on_the_sixth_delete(sql):
    if sql.lstrip().upper().startswith("DELETE"):
        deletes.append(sql)
        if len(deletes) == 6:  # the second chunk has deleted one email's writes
            os.kill(os.getpid(), signal.SIGKILL)

with open_checkpointer(context) as saver:
    saver.conn.set_trace_callback(die_on_the_sixth_delete)
retention.prune_checkpoints(context, policy="last")
"""


@pytest.mark.slow  # kills a process mid-prune
def test_a_process_killed_in_the_middle_of_pruning_loses_nothing(
    demo_db_path: Path, mediavault_home: Path, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    context = _context(mediavault_home, demo_db_path, review="none", checkpoint_retention="all")
    results = [triage_email(email, context=context) for email in EMAILS[:4]]
    counts = {r.thread_id: _checkpoints(context, r.thread_id) for r in results}
    writes = {r.thread_id: _rows(context.checkpoint_path, "SELECT count(*) FROM writes "
                                 "WHERE thread_id = ?", r.thread_id)[0][0] for r in results}
    script = tmp_path / "kill_mid_prune.py"
    script.write_text(KILL_MID_PRUNE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAVAULT_")}
    done = subprocess.run([sys.executable, str(script), str(mediavault_home), str(demo_db_path)],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -9, done.stderr
    # Emails are pruned in sorted thread order, two per transaction: the first two are done,
    # the other two are exactly as they were, writes included.
    order = sorted(counts)
    for thread_id in order[:2]:
        assert _checkpoints(context, thread_id) == 1
    for thread_id in order[2:]:
        assert _checkpoints(context, thread_id) == counts[thread_id]
        assert _rows(context.checkpoint_path, "SELECT count(*) FROM writes WHERE thread_id = ?",
                     thread_id)[0][0] == writes[thread_id]
    lines = _audit_lines(context)
    for email, first in zip(EMAILS[:4], results, strict=True):
        again = triage_email(email, context=context)
        assert again.already_recorded and again.status == first.status
    assert _audit_lines(context) == lines
    assert prune_checkpoints(context, policy="last").pruned == 2
