"""Pilot metrics: how the agent is doing, read from the case store. Reporting only.

Definitions (each review decision is the review of one draft version):

- emails: cases received in ``[since, until)``.
- deflected: approved without an edit (no ``edit`` review, latest draft not the reviewer's)
  and not re-opened; the deflection rate is over all emails.
- escalated: cases whose status is ``escalated``, overall and by queue.
- reviewed drafts: review decisions; tone rejections are ``reject`` decisions filed under
  ``tone``; the edit rate is ``edit`` decisions over reviewed drafts.
- time to review: seconds from the case's creation to its first review decision.
- re-opened: a later email from the same customer (same sender address, or same customer_id
  when both are known), received within ``reopen_window_days`` after the case, that replies to
  it (In-Reply-To is its Message-ID or email id) or repeats its subject (ignoring Re:/Fwd:
  prefixes, case and spacing). Later emails up to ``reopen_window_days`` past ``until`` are
  looked at, so a case near the end of the window is judged like any other.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from mediavault.agent.stores.case_store import CaseRecord, CaseStore
from mediavault.policies import policy_rules

UNCLASSIFIED = "unclassified"
_FORWARD_OR_REPLY_PREFIX = re.compile(r"^\s*(?:re|fwd?)\s*(?:\[\d+\])?\s*:\s*", re.IGNORECASE)


class _Report(BaseModel):
    model_config = ConfigDict(frozen=True)


class OutcomeMetrics(_Report):
    """The pilot numbers for one set of cases. Rates are None when nothing was counted."""

    emails: int
    deflected: int
    deflection_rate: float | None
    escalated: int
    escalation_rate: float | None
    reviewed_drafts: int
    approved_without_edit: int
    approved_without_edit_rate: float | None
    tone_rejections: int
    tone_rejection_rate: float | None
    edits: int
    edit_rate: float | None
    mean_edit_size: float | None
    reviewed_cases: int
    mean_seconds_to_review: float | None
    median_seconds_to_review: float | None
    reopened: int
    reopen_rate: float | None


class ReasonCodeMetrics(OutcomeMetrics):
    """The pilot numbers for the cases of one reason code."""

    reason_code: str


class PilotMetrics(OutcomeMetrics):
    """The pilot numbers for a time window, overall and by reason code."""

    since: datetime | None
    until: datetime | None
    reopen_window_days: int
    escalations_by_queue: dict[str, int]
    by_reason_code: dict[str, ReasonCodeMetrics]


class AutoApprovalRow(_Report):
    """Whether drafts of one reason code could skip human review, and why not."""

    reason_code: str
    reviewed_drafts: int
    approved_without_edit: int
    approved_without_edit_rate: float | None
    tone_rejections: int
    eligible: bool
    reason: str | None


def normalise_subject(subject: str) -> str:
    """The subject without Re:/Fwd:/Fw: prefixes, in lower case with single spaces."""
    text = " ".join(subject.split())
    while True:
        stripped = _FORWARD_OR_REPLY_PREFIX.sub("", text, count=1)
        if stripped == text:
            return text.casefold()
        text = stripped


def _continues(earlier: CaseRecord, later: CaseRecord) -> bool:
    """Whether ``later`` replies to ``earlier`` or asks about the same thing again."""
    if earlier.email is None or later.email is None:
        return False
    reply_to = later.email.in_reply_to
    if reply_to:
        reply_to = reply_to.strip().strip("<>")
        targets = {earlier.email_id}
        if earlier.email.message_id:
            targets.add(earlier.email.message_id.strip().strip("<>"))
        if reply_to in targets:
            return True
    subject = normalise_subject(earlier.email.subject)
    return bool(subject) and subject == normalise_subject(later.email.subject)


def reopened_cases(
    cases: Sequence[CaseRecord], later_emails: Sequence[CaseRecord], window: timedelta
) -> set[str]:
    """Email ids of ``cases`` re-opened by a later email in ``later_emails`` within ``window``."""
    # Index the later emails by customer so each case only looks at its own customer's mail.
    by_sender: dict[str, list[CaseRecord]] = {}
    by_customer: dict[int, list[CaseRecord]] = {}
    for later in later_emails:
        by_sender.setdefault(later.sender, []).append(later)
        if later.customer_id is not None:
            by_customer.setdefault(later.customer_id, []).append(later)
    reopened: set[str] = set()
    for earlier in cases:
        deadline = earlier.received_at + window
        same_customer = by_sender.get(earlier.sender, [])
        if earlier.customer_id is not None:
            same_customer = same_customer + by_customer.get(earlier.customer_id, [])
        if any(
            later.email_id != earlier.email_id
            and earlier.received_at < later.received_at <= deadline
            and _continues(earlier, later)
            for later in same_customer
        ):
            reopened.add(earlier.email_id)
    return reopened


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _approved_without_edit(case: CaseRecord) -> bool:
    if case.status != "approved":
        return False
    edited = any(review.decision == "edit" for review in case.reviews)
    return not edited and (case.latest_draft is None or case.latest_draft.source != "reviewer")


def _outcome_metrics(cases: Iterable[CaseRecord], reopened: set[str]) -> OutcomeMetrics:
    cases = list(cases)
    reviews = [review for case in cases for review in case.reviews]
    decisions = Counter(review.decision for review in reviews)
    tone = sum(1 for r in reviews if r.decision == "reject" and r.reason_category == "tone")
    edit_sizes = [r.edit_size for r in reviews if r.decision == "edit" and r.edit_size is not None]
    waits = [
        (min(r.created_at for r in case.reviews) - case.created_at).total_seconds()
        for case in cases
        if case.reviews
    ]
    deflected = sum(
        1 for case in cases if _approved_without_edit(case) and case.email_id not in reopened
    )
    escalated = sum(1 for case in cases if case.status == "escalated")
    reopened_here = sum(1 for case in cases if case.email_id in reopened)
    emails, reviewed = len(cases), len(reviews)
    return OutcomeMetrics(
        emails=emails,
        deflected=deflected,
        deflection_rate=_rate(deflected, emails),
        escalated=escalated,
        escalation_rate=_rate(escalated, emails),
        reviewed_drafts=reviewed,
        approved_without_edit=decisions["approve"],
        approved_without_edit_rate=_rate(decisions["approve"], reviewed),
        tone_rejections=tone,
        tone_rejection_rate=_rate(tone, reviewed),
        edits=decisions["edit"],
        edit_rate=_rate(decisions["edit"], reviewed),
        mean_edit_size=statistics.fmean(edit_sizes) if edit_sizes else None,
        reviewed_cases=len(waits),
        mean_seconds_to_review=statistics.fmean(waits) if waits else None,
        median_seconds_to_review=statistics.median(waits) if waits else None,
        reopened=reopened_here,
        reopen_rate=_rate(reopened_here, emails),
    )


def _by_reason_code(cases: Iterable[CaseRecord]) -> dict[str, list[CaseRecord]]:
    groups: dict[str, list[CaseRecord]] = {}
    for case in cases:
        groups.setdefault(case.reason_code or UNCLASSIFIED, []).append(case)
    return dict(sorted(groups.items()))


def compute_pilot_metrics(
    store: CaseStore,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    reopen_window_days: int = 7,
) -> PilotMetrics:
    """The pilot numbers for cases received in ``[since, until)``, by reason code too."""
    if reopen_window_days < 0:
        raise ValueError(f"reopen window of {reopen_window_days} days is negative")
    since, until = _utc(since), _utc(until)
    window = timedelta(days=reopen_window_days)
    cases, candidates = _window_cases(store, since, until, window)
    reopened = reopened_cases(cases, candidates, window)
    escalations = Counter(
        case.queue or UNCLASSIFIED for case in cases if case.status == "escalated"
    )
    return PilotMetrics.model_validate(
        {
            **_outcome_metrics(cases, reopened).model_dump(),
            "since": since,
            "until": until,
            "reopen_window_days": reopen_window_days,
            "escalations_by_queue": dict(sorted(escalations.items())),
            "by_reason_code": {
                code: ReasonCodeMetrics.model_validate(
                    {**_outcome_metrics(group, reopened).model_dump(), "reason_code": code}
                )
                for code, group in _by_reason_code(cases).items()
            },
        }
    )


def auto_approval_eligibility(
    store: CaseStore, *, since: datetime | None = None, until: datetime | None = None
) -> list[AutoApprovalRow]:
    """For each reason code seen in ``[since, until)``: could its drafts skip human review?

    Thresholds come from the policy companion (``[auto_approval]``). Reporting only: nothing
    here turns review off.
    """
    rules = policy_rules().auto_approval
    cases, _ = _window_cases(store, _utc(since), _utc(until), timedelta(0))
    rows = []
    for code, group in _by_reason_code(case for case in cases if case.reason_code).items():
        numbers = _outcome_metrics(group, set())
        reviewed, tone = numbers.reviewed_drafts, numbers.tone_rejections
        rate = numbers.approved_without_edit_rate
        reasons = []
        if code in rules.never:
            reasons.append("the policy never allows auto-approval for this reason code")
        if reviewed < rules.min_reviewed_drafts:
            reasons.append(
                f"{reviewed} reviewed drafts, fewer than the {rules.min_reviewed_drafts} required"
            )
        elif rate is not None and rate < rules.min_approved_without_edit_rate:
            reasons.append(
                f"{rate:.0%} approved without edit, below the "
                f"{rules.min_approved_without_edit_rate:.0%} required"
            )
        if tone > rules.max_tone_rejections:
            reasons.append(
                f"{tone} tone rejection(s), more than the {rules.max_tone_rejections} allowed"
            )
        rows.append(
            AutoApprovalRow(
                reason_code=code,
                reviewed_drafts=reviewed,
                approved_without_edit=numbers.approved_without_edit,
                approved_without_edit_rate=rate,
                tone_rejections=tone,
                eligible=not reasons,
                reason="; ".join(reasons) or None,
            )
        )
    return rows


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    # The store reads naive datetimes as UTC; comparisons here must agree with it.
    return value.replace(tzinfo=UTC)


def _window_cases(
    store: CaseStore, since: datetime | None, until: datetime | None, window: timedelta
) -> tuple[list[CaseRecord], list[CaseRecord]]:
    """The cases received in ``[since, until)``, and every case up to ``window`` past
    ``until`` (the later emails that may re-open them)."""
    candidates = store.list_cases(since=since, until=None if until is None else until + window)
    cases = [case for case in candidates if until is None or case.received_at < until]
    return cases, candidates
