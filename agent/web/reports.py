"""The data behind each console page, shared by the HTML pages and the JSON API."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from mediavault.agent.ops.pilot_metrics import auto_approval_eligibility, compute_pilot_metrics
from mediavault.agent.ops.review_desk import CaseFile
from mediavault.agent.stores.audit import audit_key_from_env, verify_audit_log
from mediavault.agent.stores.case_store import CaseStore
from mediavault.agent.web.case_view import age_text, review_token, team_queue
from mediavault.agent.web.schemas import (
    AuditStatus,
    CaseDetail,
    EscalationItem,
    EscalationQueue,
    MetricsReport,
    QueueItem,
    ReviewOutcomesDay,
    ReviewQueue,
)
from mediavault.graph.context import Context
from mediavault.policies import policy_rules

DECISION_KINDS: tuple[str, ...] = ("approve", "edit", "reject", "escalate")


def review_queue(
    store: CaseStore,
    now: datetime,
    *,
    reason_code: str | None = None,
    queue: str | None = None,
    search: str | None = None,
) -> ReviewQueue:
    """Pending reviews, oldest first, optionally only one reason code and/or queue, and only
    those whose sender (address or name) or subject contains ``search`` (any letter case)."""
    pending = store.pending_reviews()
    wanted = " ".join((search or "").split()).casefold()
    items = []
    for case in pending:
        case_queue = team_queue(case)
        if reason_code and case.reason_code != reason_code:
            continue
        if queue and case_queue != queue:
            continue
        email = case.email
        if wanted and not any(wanted in " ".join(text.split()).casefold() for text in (
                case.sender, email.sender_name if email else "", email.subject if email else "")):
            continue
        items.append(
            QueueItem(
                email_id=case.email_id,
                subject=email.subject if email else "",
                sender=case.sender,
                sender_name=email.sender_name if email else "",
                customer_id=case.customer_id,
                reason_code=case.reason_code,
                queue=case_queue,
                received_at=case.received_at,
                age_seconds=max(0, int((now - case.received_at).total_seconds())),
                age=age_text(case.received_at, now),
                review_token=review_token(case),
            )
        )
    return ReviewQueue(waiting=len(pending), shown=len(items), items=items)


def case_detail(case: CaseFile) -> CaseDetail:
    """The JSON form of a case page."""
    return CaseDetail.model_validate({**case.model_dump(), "review_token": review_token(case)})


def escalation_queues(store: CaseStore, *, queue: str | None = None) -> list[EscalationQueue]:
    """Escalation tickets grouped by queue (the policy's queues in order), newest first."""
    groups: dict[str, list[EscalationItem]] = {}
    for case in store.list_cases(status="escalated"):
        if case.ticket is None:
            continue
        ticket = case.ticket.ticket
        name = case.ticket.queue or case.queue or "unrouted"
        if queue and name != queue:
            continue
        groups.setdefault(name, []).append(
            EscalationItem(
                email_id=case.email_id,
                ticket_id=case.ticket.ticket_id,
                queue=name,
                priority=case.ticket.priority,
                reason_code=case.ticket.reason_code,
                escalation_reason=str(ticket.get("escalation_reason") or ""),
                investigation_summary=str(ticket.get("investigation_summary") or ""),
                created_at=case.ticket.created_at,
            )
        )
    known = policy_rules().queues
    order = [*known, *sorted(set(groups) - set(known))]
    return [
        EscalationQueue(
            queue=name,
            description=known.get(name, ""),
            tickets=sorted(groups[name], key=lambda t: t.created_at, reverse=True),
        )
        for name in order
        if name in groups
    ]


def metrics_report(
    store: CaseStore, *, since: datetime | None = None, until: datetime | None = None
) -> MetricsReport:
    """Pilot metrics, review decisions per day and auto-approval eligibility for a window."""
    per_day: dict[str, Counter[str]] = {}
    for case in store.list_cases(since=since, until=until):
        for review in case.reviews:
            day = review.created_at.strftime("%Y-%m-%d")
            per_day.setdefault(day, Counter())[review.decision] += 1
    outcomes = [
        ReviewOutcomesDay(day=day, **{kind: counts[kind] for kind in DECISION_KINDS})
        for day, counts in sorted(per_day.items())
    ]
    return MetricsReport(
        metrics=compute_pilot_metrics(store, since=since, until=until),
        review_outcomes=outcomes,
        auto_approval=auto_approval_eligibility(store, since=since, until=until),
    )


def audit_status(context: Context) -> AuditStatus:
    """Verify the audit log with the configured key."""
    result = verify_audit_log(context.audit_path, key=audit_key_from_env())
    return AuditStatus(
        ok=result.ok,
        summary=result.summary,
        lines_checked=result.lines_checked,
        first_broken_line=result.first_broken_line,
        problem=result.problem,
        keyed=result.keyed,
        warnings=list(result.warnings),
    )
