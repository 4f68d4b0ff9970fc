"""Audit events travel in the checkpoints and reach the log, once each, whenever a run stops."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from mediavault.agent.api import ReviewDecision, resume, triage_email, write_stranded_audit_events
from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.agent.stores.audit import AuditLog, read_events, verify_audit_log
from mediavault.agent.stores.case_store import CaseStore
from mediavault.agent.stores.checkpoints import open_checkpointer
from mediavault.agent.wiring import build_graph
from mediavault.graph.context import Context
from mediavault.graph.nodes import thread_id_for

REPO = Path(__file__).resolve().parents[2]
INBOX = REPO / "examples" / "inbox.csv"


@pytest.fixture
def context(demo_db_path: Path, mediavault_home: Path) -> Context:
    return Context(home=mediavault_home, db=str(demo_db_path), review="none")


def _inbox_email(email_id: str) -> Any:
    return next(e for e in read_inbox_csv(INBOX).emails if e.email_id == email_id)


def _logged(context: Context) -> list[Any]:
    return read_events(context.audit_path) if context.audit_path.exists() else []


def _run_until(context: Context, email: Any, node: str) -> list[dict[str, Any]]:
    """Run an email up to ``node`` and stop there, as a process killed after that node's
    checkpoint would; returns the events left pending in the checkpoint."""
    config = {"configurable": {"thread_id": thread_id_for(email.email_id)}}
    with open_checkpointer(context) as saver:
        graph = build_graph().compile(checkpointer=saver)
        graph.invoke({"email": email.model_dump(mode="json")}, config, context=context,
                     interrupt_after=[node])
        return list(graph.get_state(config).values["audit_pending"])


def _pending_now(context: Context, email_id: str) -> list[dict[str, Any]]:
    config = {"configurable": {"thread_id": thread_id_for(email_id)}}
    with open_checkpointer(context) as saver:
        values = build_graph().compile(checkpointer=saver).get_state(config).values
    return list(values.get("audit_pending", []))


def test_a_run_stopped_between_nodes_keeps_its_events_and_the_next_run_writes_each_once(
    context: Context,
) -> None:
    email = _inbox_email("msg-003")
    pending = _run_until(context, email, "decide")
    actions = [event["action"] for event in pending]
    assert actions[0] == "email.received"
    assert {"safety.check", "model.call", "gate.verdict", "triage.decision"} <= set(actions)
    assert _logged(context) == []  # nothing written yet: the events wait in the checkpoint

    result = triage_email(email, context=context)  # continues the thread from its checkpoint
    assert result.status == "approved"
    logged = _logged(context)
    ids = [event.event_id for event in logged]
    assert len(ids) == len(set(ids))
    assert [e["event_id"] for e in pending] == ids[: len(pending)]  # order of the run kept
    assert logged[-1].action == "case.outcome"
    assert verify_audit_log(context.audit_path).ok
    assert _pending_now(context, email.email_id) == []

    triage_email(email, context=context)  # the recorded outcome: nothing is written again
    assert len(_logged(context)) == len(logged)


def test_events_are_in_the_log_while_a_draft_waits_for_a_reviewer(
    demo_db_path: Path, mediavault_home: Path
) -> None:
    context = Context(home=mediavault_home, db=str(demo_db_path), review="all")
    first = triage_email(_inbox_email("msg-003"), context=context)
    assert first.status == "awaiting_review"
    waiting = {event.action for event in _logged(context)}
    assert {"email.received", "gate.verdict", "tool.execution", "triage.decision"} <= waiting
    assert "case.outcome" not in waiting

    resume("msg-003", ReviewDecision(type="approve", reviewer="ana"), context=context)
    logged = _logged(context)
    ids = [event.event_id for event in logged]
    assert len(ids) == len(set(ids))  # the re-run review node wrote nothing twice
    assert [e.action for e in logged].count("review.decision") == 1
    assert logged[-1].action == "case.outcome"
    assert _pending_now(context, "msg-003") == []


def test_a_node_that_fails_writes_what_the_run_gathered_before_the_failure_is_recorded(
    context: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = CaseStore.record_draft

    def broken(self: CaseStore, *args: Any, **kwargs: Any) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(CaseStore, "record_draft", broken)
    result = triage_email(_inbox_email("msg-003"), context=context)
    monkeypatch.setattr(CaseStore, "record_draft", real)
    assert result.status == "failed"
    actions = [event.action for event in _logged(context)]
    assert actions[0] == "email.received"
    assert "triage.decision" in actions
    assert actions[-1] == "case.outcome"
    assert verify_audit_log(context.audit_path).ok


def test_events_stranded_between_nodes_are_written_when_the_run_is_recorded_as_failed(
    context: Context,
) -> None:
    email = _inbox_email("msg-001")
    pending = _run_until(context, email, "safety_check")
    write_stranded_audit_events(context, thread_id_for(email.email_id))
    assert [event.event_id for event in _logged(context)] == [e["event_id"] for e in pending]
    write_stranded_audit_events(context, thread_id_for(email.email_id))  # idempotent
    assert len(_logged(context)) == len(pending)


# ------------------------------------------------------------- the log's side of the pattern


def test_a_batch_is_one_append_with_one_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    batch = [log.prepare("tool.execution", outcome="success", event_id=f"e{i}") for i in range(5)]
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    written = log.append_prepared(batch)
    assert [event.sequence for event in written] == [1, 2, 3, 4, 5]
    assert len(synced) == 1
    assert log.append_prepared(batch) == []  # the same batch again: already logged
    assert log.append_prepared([batch[0], batch[0]]) == []
    assert len(read_events(log.path)) == 5
    assert verify_audit_log(log.path).ok


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"extra": 1}, ValueError),  # a field the log does not know
        ({"details": {"rows": "x" * 5000}}, None),  # oversized detail: digested, not stored
        ({"details": ["not", "a", "mapping"]}, ValueError),
        ({"action": ""}, ValueError),
        ({"outcome": "maybe"}, ValueError),
        ({"timestamp": "2026-03-02T10:00:00"}, ValueError),  # no time zone
        ({"timestamp": 1234}, ValueError),
        ({"email_id": 42}, TypeError),
        ({"actor": None}, TypeError),
        ({"reason": "r" * 10_000}, None),  # digested
    ],
)
def test_a_doctored_pending_event_from_a_checkpoint_is_checked_again(
    tmp_path: Path, change: dict[str, object], error: type[Exception] | None
) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    event: dict[str, object] = dict(log.prepare("tool.execution", outcome="success",
                                                event_id="doctored"))
    event.update(change)
    if error is not None:
        with pytest.raises(error):
            log.append_prepared([event])
        assert not log.path.exists()
        return
    (written,) = log.append_prepared([event])
    line = log.path.read_text()
    assert len(line) < 1500 and "x" * 300 not in line and "r" * 600 not in line
    assert json.loads(line)["event"]["id"] == written.event_id
