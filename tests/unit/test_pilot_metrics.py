"""Pilot metrics and auto-approval eligibility on a hand-built case store.

Every expected number below was counted by hand from the cases in ``pilot_store``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mediavault.agent.ops.pilot_metrics import (
    auto_approval_eligibility,
    compute_pilot_metrics,
    normalise_subject,
)
from mediavault.agent.stores.case_store import CaseStore
from mediavault.graph.inbound_email import InboundEmail
from mediavault.policies import policy_rules

SINCE = datetime(2026, 3, 1, tzinfo=UTC)
UNTIL = datetime(2026, 3, 8, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


@dataclass
class Review:
    decision: str
    after: timedelta
    category: str | None = None
    edit_size: int | None = None


@dataclass
class Case:
    email_id: str
    received_at: datetime
    sender: str
    customer_id: int | None
    subject: str
    reason_code: str
    status: str
    queue: str | None = None
    in_reply_to: str | None = None
    reviews: list[Review] = field(default_factory=list)


def add(store: CaseStore, clock: list[datetime], case: Case) -> None:
    """Record a case as the graph and the reviewers would; opened the moment it arrives."""
    clock[0] = case.received_at
    email = InboundEmail.from_fields(
        email_id=case.email_id,
        received_at=case.received_at,
        **{"from": case.sender},
        subject=case.subject,
        body="...",
        message_id=f"<{case.email_id}@mail.example.com>",
        in_reply_to=case.in_reply_to,
    )
    store.record_email(email)
    store.open_case(
        case.email_id,
        thread_id=case.email_id,
        sender=email.sender,
        customer_id=case.customer_id,
        received_at=case.received_at,
    )
    route = "escalate" if case.status == "escalated" else "draft"
    if route == "draft":
        store.record_draft(
            case.email_id, text="Hello", source="model", valid=True, problems=[], policy_refs=[]
        )
    store.set_outcome(
        case.email_id,
        route=route,
        reason_code=case.reason_code,
        risk_flags=[],
        status=case.status,
        queue=case.queue,
    )
    for number, review in enumerate(case.reviews):
        store.record_review(
            f"{case.email_id}-r{number}",
            case.email_id,
            decision=review.decision,
            reviewer="sam",
            reason_category=review.category,
            edit_size=review.edit_size,
            at=case.received_at + review.after,
        )


APPROVE_1H = Review("approve", timedelta(hours=1))

PILOT_CASES = [
    # Before the window: not counted.
    Case(
        "e0",
        datetime(2026, 2, 27, 9, tzinfo=UTC),
        "alice@example.com",
        1,
        "Late fee on Alien",
        "late_fee_dispute",
        "approved",
        reviews=[APPROVE_1H],
    ),
    # Approved without edit, but Alice replies to it two days later (In-Reply-To): re-opened.
    Case(
        "e1",
        at(1, 9),
        "alice@example.com",
        1,
        "Late fee on Alien",
        "late_fee_dispute",
        "approved",
        reviews=[APPROVE_1H],
    ),
    # Approved without edit, never heard from again: deflected.
    Case(
        "e2",
        at(1, 10),
        "bob@example.com",
        2,
        "Store hours",
        "catalog_question",
        "approved",
        reviews=[Review("approve", timedelta(minutes=30))],
    ),
    # Approved after a reviewer edit: not deflected.
    Case(
        "e3",
        at(2, 9),
        "carol@example.com",
        3,
        "Charge question",
        "billing_question",
        "approved",
        reviews=[Review("edit", timedelta(hours=2), edit_size=12)],
    ),
    Case(
        "e4",
        at(2, 12),
        "dave@example.com",
        4,
        "I will sue",
        "legal_threat",
        "escalated",
        queue="tier2_legal",
    ),
    # Erin, approved without edit; re-opened by e7 from her work address (same customer id)
    # repeating the subject.
    Case(
        "e6",
        at(2, 8),
        "erin@example.com",
        5,
        "Rental return",
        "rental_status",
        "approved",
        reviews=[Review("approve", timedelta(minutes=10))],
    ),
    Case(
        "e5",
        at(3, 9),
        "alice@example.com",
        1,
        "Re: Late fee on Alien",
        "late_fee_dispute",
        "escalated",
        queue="billing",
        in_reply_to="<e1@mail.example.com>",
    ),
    Case(
        "e7",
        at(4, 9),
        "erin.work@example.com",
        5,
        "Fwd: RE:  rental   RETURN",
        "rental_status",
        "awaiting_review",
    ),
    # Frank replies eight days later, outside the 7-day re-open window: still deflected.
    Case(
        "e8",
        at(5, 9),
        "frank@example.com",
        6,
        "Catalog question",
        "catalog_question",
        "approved",
        reviews=[APPROVE_1H],
    ),
    Case(
        "e10",
        at(6, 9),
        "grace@example.com",
        7,
        "You people are slow",
        "complaint",
        "rejected",
        reviews=[Review("reject", timedelta(hours=4), category="tone")],
    ),
    Case("e11", at(7, 9), "heidi@example.com", 8, "Invoice", "billing_question", "awaiting_review"),
    # After the window: not counted, but looked at for re-opens (too late for e8).
    Case(
        "e9",
        at(13, 10),
        "frank@example.com",
        6,
        "Re: Catalog question",
        "catalog_question",
        "awaiting_review",
        in_reply_to="<e8@mail.example.com>",
    ),
]


@pytest.fixture
def pilot_store(tmp_path: Path) -> CaseStore:
    clock = [SINCE]
    store = CaseStore(tmp_path / "cases.sqlite", now=lambda: clock[0])
    for case in PILOT_CASES:
        add(store, clock, case)
    return store


def test_pilot_metrics_match_the_hand_counted_numbers(pilot_store: CaseStore) -> None:
    metrics = compute_pilot_metrics(pilot_store, since=SINCE, until=UNTIL)

    # e1 e2 e3 e4 e5 e6 e7 e8 e10 e11
    assert metrics.emails == 10
    # e2 and e8; e1 and e6 were re-opened, e3 was edited.
    assert (metrics.deflected, metrics.deflection_rate) == (2, 0.2)
    assert (metrics.escalated, metrics.escalation_rate) == (2, 0.2)
    assert metrics.escalations_by_queue == {"billing": 1, "tier2_legal": 1}
    # Reviews: e1 approve, e2 approve, e3 edit, e6 approve, e8 approve, e10 reject (tone).
    assert metrics.reviewed_drafts == 6
    assert metrics.approved_without_edit == 4
    assert metrics.tone_rejections == 1
    assert metrics.tone_rejection_rate == pytest.approx(1 / 6)
    assert (metrics.edits, metrics.mean_edit_size) == (1, 12.0)
    assert metrics.edit_rate == pytest.approx(1 / 6)
    # 3600, 1800, 7200, 600, 3600, 14400 seconds: mean 31200 / 6, median (3600 + 3600) / 2.
    assert metrics.reviewed_cases == 6
    assert metrics.mean_seconds_to_review == 5200.0
    assert metrics.median_seconds_to_review == 3600.0
    assert (metrics.reopened, metrics.reopen_rate) == (2, 0.2)


def test_pilot_metrics_by_reason_code(pilot_store: CaseStore) -> None:
    by_code = compute_pilot_metrics(pilot_store, since=SINCE, until=UNTIL).by_reason_code

    assert sorted(by_code) == [
        "billing_question",
        "catalog_question",
        "complaint",
        "late_fee_dispute",
        "legal_threat",
        "rental_status",
    ]
    assert sum(m.emails for m in by_code.values()) == 10
    late = by_code["late_fee_dispute"]  # e1 (re-opened), e5 (escalated)
    assert (late.emails, late.deflected, late.escalated, late.reopened) == (2, 0, 1, 1)
    catalog = by_code["catalog_question"]  # e2, e8: both deflected
    assert (catalog.emails, catalog.deflected, catalog.deflection_rate) == (2, 2, 1.0)
    assert catalog.mean_seconds_to_review == 2700.0
    billing = by_code["billing_question"]  # e3 edited, e11 waiting
    assert (billing.edits, billing.edit_rate, billing.deflected) == (1, 1.0, 0)
    rental = by_code["rental_status"]  # e6 re-opened by e7
    assert (rental.emails, rental.reopened, rental.reopen_rate, rental.deflected) == (2, 1, 0.5, 0)
    complaint = by_code["complaint"]
    assert (complaint.tone_rejections, complaint.tone_rejection_rate) == (1, 1.0)
    legal = by_code["legal_threat"]
    assert (legal.escalation_rate, legal.reviewed_drafts, legal.approved_without_edit_rate) == (
        1.0,
        0,
        None,
    )


def test_a_reply_within_a_wider_reopen_window_reopens_the_case(pilot_store: CaseStore) -> None:
    # With nine days, Frank's reply eight days later re-opens e8, which stops counting as
    # deflected.
    metrics = compute_pilot_metrics(pilot_store, since=SINCE, until=UNTIL, reopen_window_days=9)
    assert (metrics.reopened, metrics.deflected) == (3, 1)


def test_pilot_metrics_are_json(pilot_store: CaseStore) -> None:
    metrics = compute_pilot_metrics(pilot_store, since=SINCE, until=UNTIL)
    data = json.loads(metrics.model_dump_json())
    assert data["emails"] == 10
    assert data["by_reason_code"]["catalog_question"]["deflected"] == 2
    assert data["since"] == "2026-03-01T00:00:00Z"


def test_an_empty_store_reports_zeros_and_no_rates(tmp_path: Path) -> None:
    metrics = compute_pilot_metrics(CaseStore(tmp_path / "cases.sqlite"))
    assert metrics.emails == 0
    assert metrics.deflection_rate is None
    assert metrics.median_seconds_to_review is None
    assert metrics.by_reason_code == {}


@pytest.mark.parametrize(
    ("subject", "normalised"),
    [
        ("Re: Fwd: FW:  Late   Fee ", "late fee"),
        ("RE[2]: late fee", "late fee"),
        ("Regarding my fee", "regarding my fee"),
    ],
)
def test_subjects_are_compared_without_reply_prefixes(subject: str, normalised: str) -> None:
    assert normalise_subject(subject) == normalised


def test_auto_approval_eligibility_reads_the_policy_thresholds(tmp_path: Path) -> None:
    rules = policy_rules().auto_approval
    assert rules.min_reviewed_drafts == 50 and "legal_threat" in rules.never
    clock = [SINCE]
    store = CaseStore(tmp_path / "cases.sqlite", now=lambda: clock[0])

    def approvals(code: str, count: int, *, tone_rejection: bool = False) -> None:
        # One case per code carries all its reviews: each review is one reviewed draft.
        reviews = [Review("approve", timedelta(minutes=n + 1)) for n in range(count)]
        if tone_rejection:
            reviews.append(Review("reject", timedelta(hours=5), category="tone"))
        add(
            store,
            clock,
            Case(
                f"{code}-1",
                at(2, 9),
                f"{code}@example.com",
                None,
                code,
                code,
                "approved",
                reviews=reviews,
            ),
        )

    approvals("catalog_question", 50)
    approvals("rental_status", 50, tone_rejection=True)
    approvals("legal_threat", 50)
    approvals("praise", 49)

    rows = {row.reason_code: row for row in auto_approval_eligibility(store, since=SINCE)}

    assert sorted(rows) == ["catalog_question", "legal_threat", "praise", "rental_status"]
    assert rows["catalog_question"].eligible
    assert rows["catalog_question"].reason is None
    assert rows["catalog_question"].approved_without_edit_rate == 1.0

    rental = rows["rental_status"]
    # 50 of 51 approved (98%) passes the rate, but one tone rejection is one too many.
    assert (rental.eligible, rental.reviewed_drafts, rental.tone_rejections) == (False, 51, 1)
    assert rental.reason == "1 tone rejection(s), more than the 0 allowed"

    assert not rows["legal_threat"].eligible
    assert rows["legal_threat"].reason == (
        "the policy never allows auto-approval for this reason code"
    )
    assert not rows["praise"].eligible
    assert rows["praise"].reason == "49 reviewed drafts, fewer than the 50 required"


def test_auto_approval_needs_the_approval_rate(tmp_path: Path) -> None:
    clock = [SINCE]
    store = CaseStore(tmp_path / "cases.sqlite", now=lambda: clock[0])
    reviews = [Review("approve", timedelta(minutes=n + 1)) for n in range(47)]
    reviews += [Review("edit", timedelta(hours=2 + n), edit_size=5) for n in range(3)]
    add(
        store,
        clock,
        Case(
            "c-1",
            at(2, 9),
            "c@example.com",
            None,
            "Hours",
            "catalog_question",
            "approved",
            reviews=reviews,
        ),
    )

    (row,) = auto_approval_eligibility(store)
    assert (row.reviewed_drafts, row.approved_without_edit, row.eligible) == (50, 47, False)
    assert row.reason == "94% approved without edit, below the 95% required"
