"""The Python API reports a wrong setting to its caller, and says when a case failed.

A library raises at the call for settings no email could run with (no business database, an
unknown model); an email that fails on its own stays a ``failed`` result. ``resume`` on a
failed case says that it failed instead of "already decided".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mediavault import ConfigurationError, Context, ReviewDecision, resume, triage_email
from mediavault.agent.api import NoPendingReview, TriageFailed, record_failed_outcome
from mediavault.agent.ops.review_desk import NoReviewWaiting, approve_draft
from mediavault.graph.inbound_email import InboundEmail

EMAIL = {"email_id": "e-1", "received_at": "2026-03-01T09:00:00Z",
         "from": "Sofia Marchetti <sofia.marchetti@example.com>",
         "subject": "When is my film due?", "body": "Hi, when do I need to bring my rental back?"}


def test_no_business_database_raises_at_the_call_and_records_nothing(
    mediavault_home: Path,
) -> None:
    with pytest.raises(ConfigurationError, match=r"sakila_demo\.sqlite"):
        triage_email(EMAIL, context=Context(home=mediavault_home))
    assert not (mediavault_home / "cases.sqlite").exists()
    assert not (mediavault_home / "audit.jsonl").exists()


def test_an_unknown_model_raises_at_the_call(mediavault_home: Path, demo_db_path: Path) -> None:
    context = Context(home=mediavault_home, db=str(demo_db_path))
    with pytest.raises(ConfigurationError, match="unknown model 'gpt-nonsense'"):
        triage_email(EMAIL, context=context, model="gpt-nonsense")
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        triage_email(EMAIL, context=context, model="openai:gpt-4o-mini")


def test_the_readme_example_prints_what_its_comment_says(
    mediavault_home: Path, demo_db_path: Path
) -> None:
    result = triage_email(EMAIL, context=Context(home=mediavault_home, db=str(demo_db_path)))
    assert (result.status, result.route, result.reason_code) == (
        "awaiting_review", "draft", "rental_status")


def test_resume_on_a_failed_case_says_it_failed(
    mediavault_home: Path, demo_db_path: Path
) -> None:
    context = Context(home=mediavault_home, db=str(demo_db_path))
    email = InboundEmail.from_fields(**EMAIL)
    record_failed_outcome(context, email, "TimeoutError: the model did not answer")
    with pytest.raises(TriageFailed, match=r"e-1 failed.*the model did not answer") as raised:
        resume("e-1", ReviewDecision(type="approve", reviewer="sam"), context=context)
    assert isinstance(raised.value, NoPendingReview)  # callers catching the old error still do
    assert "already decided" not in str(raised.value)
    with pytest.raises(NoReviewWaiting, match="e-1 failed, so no draft waits for review"):
        approve_draft("e-1", reviewer="sam", context=context)
