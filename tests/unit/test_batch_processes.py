"""A batch spread over worker processes: the same outcomes as in one process, none lost."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from mediavault.agent.api import TriageResult
from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.agent.models.rules_model import RulesChatModel
from mediavault.agent.ops.batch import _run_in_processes, _worker_batch, run_triage_batch
from mediavault.agent.stores.audit import read_events, verify_audit_log
from mediavault.graph.context import ConfigurationError, Context
from mediavault.graph.inbound_email import InboundEmail

#: Slow tier (worker processes, one killed): `make unit` runs it after the fast tier.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
INBOX = REPO / "examples" / "inbox.csv"
EXPECTED: dict[str, dict[str, Any]] = json.loads((REPO / "examples" / "inbox_expected.json")
                                                  .read_text())


@pytest.fixture
def context(demo_db_path: Path, mediavault_home: Path) -> Context:
    return Context(home=mediavault_home, db=str(demo_db_path))


def _cases(context: Context) -> Counter[str]:
    with closing(sqlite3.connect(context.cases_path)) as connection:
        return Counter(row[0] for row in connection.execute("SELECT email_id FROM cases"))


def test_two_processes_give_every_email_its_labelled_outcome_once(context: Context) -> None:
    emails = read_inbox_csv(INBOX).emails
    announced: list[TriageResult] = []
    results = run_triage_batch([*emails, emails[0]], context=context, concurrency=4,
                               processes=2, on_result=announced.append)
    assert [r.email_id for r in results] == [e.email_id for e in [*emails, emails[0]]]
    for result in results[:-1]:
        expected = EXPECTED[result.email_id]
        assert (result.route, result.reason_code) == (expected["route"],
                                                      expected["reason_code"]), result.email_id
        assert not result.already_recorded
    assert results[-1].already_recorded  # listed twice: run once
    assert sorted(r.email_id for r in announced) == sorted(r.email_id for r in results)
    assert set(_cases(context).values()) == {1} and len(_cases(context)) == len(emails)
    assert verify_audit_log(context.audit_path).ok  # both processes appended to one chain
    finals = Counter(e.email_id for e in read_events(context.audit_path)
                     if e.action == "case.outcome")
    escalated = {r.email_id for r in results if r.status == "escalated"}
    assert finals == Counter({email_id: 1 for email_id in escalated})

    again = run_triage_batch(emails, context=context, concurrency=4, processes=2)
    assert all(r.already_recorded for r in again)
    assert [(r.status, r.route) for r in again] == [(r.status, r.route) for r in results[:-1]]


def test_limit_counts_new_runs_across_processes(context: Context) -> None:
    emails = read_inbox_csv(INBOX).emails
    first = run_triage_batch(emails[:2], context=context, concurrency=2)
    results = run_triage_batch(emails, context=context, concurrency=4, processes=2, limit=3)
    assert [r.email_id for r in results] == [e.email_id for e in emails[:5]]
    assert [r.already_recorded for r in results] == [True, True, False, False, False]
    assert [r.status for r in results[:2]] == [r.status for r in first]
    assert len(_cases(context)) == 5


def _dying_worker(
    emails: list[InboundEmail], context: Context, concurrency: int
) -> list[TriageResult]:
    """A worker whose process is killed after it finished its first email."""
    run_triage_batch(emails[:1], context=context, concurrency=1)
    os.kill(os.getpid(), signal.SIGKILL)
    return _worker_batch(emails, context, concurrency)  # never reached


def test_the_emails_of_a_worker_that_dies_are_finished_in_the_parent(context: Context) -> None:
    emails = read_inbox_csv(INBOX).emails[:6]
    announced: list[TriageResult] = []
    results = _run_in_processes(list(emails), context, concurrency=2, processes=2, limit=None,
                                on_result=announced.append, worker=_dying_worker)
    assert [r.email_id for r in results] == [e.email_id for e in emails]
    assert all(r.status in ("awaiting_review", "escalated") for r in results)
    # What a worker finished before it died comes back as recorded, never run twice.
    assert sum(r.already_recorded for r in results) >= 1
    assert set(_cases(context).values()) == {1} and len(_cases(context)) == len(emails)
    assert verify_audit_log(context.audit_path).ok


def test_a_model_object_cannot_cross_into_worker_processes(context: Context) -> None:
    emails = read_inbox_csv(INBOX).emails[:2]
    with pytest.raises(ConfigurationError, match="cannot be shared with worker processes"):
        run_triage_batch(emails, context=context, model=RulesChatModel(), concurrency=2,
                         processes=2)
    with pytest.raises(ValueError, match="processes must be between 1 and 16"):
        run_triage_batch(emails, context=context, processes=0)
    assert not context.cases_path.exists()
