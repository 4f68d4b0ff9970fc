"""Batch triage under asyncio: model calls overlap, yet every email ends in exactly one outcome."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from pydantic import PrivateAttr

from mediavault.agent.api import ReviewDecision, atriage_email, resume, triage_email
from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.agent.models.rules_model import RulesChatModel
from mediavault.agent.ops.batch import run_triage_batch, triage_batch
from mediavault.agent.stores.audit import read_events, verify_audit_log
from mediavault.graph.context import Context
from mediavault.graph.inbound_email import InboundEmail

REPO = Path(__file__).resolve().parents[2]
INBOX = REPO / "examples" / "inbox.csv"
EXPECTED: dict[str, dict[str, Any]] = json.loads((REPO / "examples" / "inbox_expected.json")
                                                  .read_text())
MODEL_LATENCY = 0.2


class SlowRulesModel(RulesChatModel):
    """The offline model behind a slow network: each call sleeps, and overlaps are counted."""

    latency: float = MODEL_LATENCY
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _active: int = PrivateAttr(default=0)
    _max_active: int = PrivateAttr(default=0)
    _calls: int = PrivateAttr(default=0)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._lock:
            self._active += 1
            self._calls += 1
            self._max_active = max(self._max_active, self._active)
        try:
            time.sleep(self.latency)
            return super()._generate(messages, stop, run_manager, **kwargs)
        finally:
            with self._lock:
                self._active -= 1

    @property
    def max_active(self) -> int:
        return self._max_active

    @property
    def calls(self) -> int:
        return self._calls


def sample_emails(copies: int = 2) -> list[InboundEmail]:
    """The sample inbox, repeated under new ids: 16 emails per copy."""
    emails = read_inbox_csv(INBOX).emails
    return [
        e.model_copy(update={"email_id": f"{e.email_id}~{n}"}) if n else e
        for n in range(copies) for e in emails
    ]


def label_of(email_id: str) -> dict[str, Any]:
    return EXPECTED[email_id.split("~")[0]]


def cases(context: Context) -> dict[str, sqlite3.Row]:
    with closing(sqlite3.connect(context.cases_path)) as connection:
        connection.row_factory = sqlite3.Row
        return {row["email_id"]: row for row in connection.execute("SELECT * FROM cases")}


@pytest.fixture
def context(demo_db_path: Path, mediavault_home: Path) -> Context:
    return Context(home=mediavault_home, db=str(demo_db_path))


@pytest.mark.slow  # measures overlap in time: run alone, not next to other tests
def test_model_calls_overlap_and_every_email_ends_in_exactly_one_outcome(
    context: Context,
) -> None:
    model = SlowRulesModel()
    emails = sample_emails(2)
    seen: list[str] = []
    results = run_triage_batch(emails, context=context.with_overrides(chat_model=model),
                               concurrency=8, on_result=lambda r: seen.append(r.email_id))
    # Overlap observed directly, not through timing: several emails waited on the model at once.
    assert model.max_active >= 4
    assert [r.email_id for r in results] == [e.email_id for e in emails]
    assert sorted(seen) == sorted(e.email_id for e in emails)
    for result in results:
        assert result.error is None
        assert (result.route, result.reason_code) == (
            label_of(result.email_id)["route"], label_of(result.email_id)["reason_code"]
        ), result.email_id
    recorded = cases(context)
    assert set(recorded) == {e.email_id for e in emails}
    assert {row["status"] for row in recorded.values()} <= {"awaiting_review", "escalated"}
    assert verify_audit_log(context.audit_path).ok
    events = list(read_events(context.audit_path))
    ids = sorted(e.email_id for e in emails)
    for action in ("email.received", "triage.decision"):  # once per email, never twice
        assert sorted(str(e.email_id) for e in events if e.action == action) == ids
    escalated = sorted(r.email_id for r in results if r.status == "escalated")
    assert sorted(str(e.email_id) for e in events if e.action == "case.outcome") == escalated

    # A batch run leaves ordinary checkpoints: the synchronous API picks them up.
    waiting = next(r for r in results if r.status == "awaiting_review")
    approved = resume(waiting.email_id, ReviewDecision(type="approve", reviewer="sam"),
                      context=context)
    assert approved.status == "approved"

    # Running the batch again re-runs nothing.
    again = SlowRulesModel()
    rerun = run_triage_batch(emails, context=context.with_overrides(chat_model=again),
                             concurrency=8)
    assert again.calls == 0
    assert all(r.already_recorded for r in rerun)
    assert next(r for r in rerun if r.email_id == waiting.email_id).status == "approved"


def test_a_run_that_breaks_is_recorded_as_failed_and_the_batch_goes_on(
    context: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mediavault.graph.nodes

    emails = sample_emails(1)
    broken = emails[3]
    real_assess_risk = mediavault.graph.nodes.assess_risk

    def assess_risk(subject: str, body: str, **kwargs: Any) -> Any:
        if subject == broken.subject:
            raise sqlite3.DatabaseError("database disk image is malformed")
        return real_assess_risk(subject, body, **kwargs)

    monkeypatch.setattr(mediavault.graph.nodes, "assess_risk", assess_risk)
    results = run_triage_batch(emails, context=context, concurrency=4)
    by_id = {r.email_id: r for r in results}
    assert by_id[broken.email_id].status == "failed"
    assert "malformed" in (by_id[broken.email_id].error or "")
    assert all(r.status != "failed" for r in results if r.email_id != broken.email_id)
    recorded = cases(context)
    assert len(recorded) == len(emails)
    assert recorded[broken.email_id]["status"] == "failed"


def test_an_email_listed_twice_runs_once(context: Context) -> None:
    email = sample_emails(1)[10]
    single = SlowRulesModel(latency=0.01)
    run_triage_batch([email], context=Context(home=context.home / "single", db=context.db,
                                              chat_model=single))
    model = SlowRulesModel(latency=0.01)
    first, second = run_triage_batch([email, email], context=context.with_overrides(
        chat_model=model), concurrency=4)
    assert model.calls == single.calls
    assert (first.already_recorded, second.already_recorded) == (False, True)
    assert first.status == second.status == "awaiting_review"
    assert len(cases(context)) == 1


def test_limit_counts_new_runs_only(context: Context) -> None:
    emails = sample_emails(1)[:6]
    first = run_triage_batch(emails, context=context, limit=2)
    assert [r.email_id for r in first] == [e.email_id for e in emails[:2]]
    second = run_triage_batch(emails, context=context, limit=2, concurrency=2)
    assert [r.already_recorded for r in second] == [True, True, False, False]
    assert len(cases(context)) == 4


def test_two_batches_sharing_one_home_do_not_trip_over_sqlite_locks(context: Context) -> None:
    emails = sample_emails(2)
    halves = [emails[0::2], emails[1::2]]
    outputs: list[Any] = [None, None]

    def work(index: int) -> None:
        try:
            outputs[index] = run_triage_batch(halves[index], context=context, concurrency=4)
        except BaseException as problem:  # surfaced by the assertion below
            outputs[index] = problem

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for output in outputs:
        assert isinstance(output, list), output
        assert all(r.error is None for r in output)
    assert len(cases(context)) == len(emails)
    assert verify_audit_log(context.audit_path).ok


def test_the_async_api_matches_the_sync_one(context: Context) -> None:
    email = sample_emails(1)[1]
    result = asyncio.run(atriage_email(email, context=context))
    assert (result.route, result.reason_code) == (
        label_of(email.email_id)["route"], label_of(email.email_id)["reason_code"]
    )
    again = triage_email(email, context=context)
    assert again.already_recorded and again.status == result.status


def test_bad_arguments_are_refused_before_anything_runs(context: Context) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        run_triage_batch([], context=context, concurrency=0)
    with pytest.raises(ValueError, match="concurrency"):
        asyncio.run(triage_batch([], context=context, concurrency=1000))
    assert not context.cases_path.exists()


def test_a_message_id_that_looks_like_a_thread_id_can_still_be_resumed(context: Context) -> None:
    email = sample_emails(1)[5].model_copy(update={"email_id": "email-2026@mail.example"})
    (result,) = run_triage_batch([email], context=context)
    assert result.status == "awaiting_review"
    decided = resume("email-2026@mail.example", {"type": "approve", "reviewer": "sam"},
                     context=context)
    assert decided.status == "approved"
