"""The review desk: what a human reviewer does with the drafts the agent queued.

List the drafts waiting for review, open one case with everything needed to judge it (the
email, the customer, the evidence, the gate's verdicts, the draft and its history, the audit
trail), then approve, edit, reject or escalate it::

    from mediavault.agent.ops.review_desk import approve_draft, list_pending_reviews, show_case

    for pending in list_pending_reviews(context):
        case = show_case(pending.email_id, context)
        print(case.draft.text if case.draft else "(no draft)")
    approve_draft("msg-006", reviewer="sam", context=context)

Decisions go through :func:`agent.api.resume`, so the graph applies them exactly as it would
for any other caller: an edited reply passes validation and DLP again inside the graph before
it is accepted, a rejection sends the draft back to the model for one revision. This module
adds what a person at a desk needs around that: clear errors (a case decided by someone else,
a refused edit with its reasons), the reviewer's identity, and one decision at a time per
state directory, across processes.
"""

from __future__ import annotations

import getpass
import json
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from mediavault.agent.api import NoPendingReview, ReviewDecision, TriageResult, resume
from mediavault.agent.ops.case_trace import TraceStep, build_trace
from mediavault.agent.ops.decision_lock import one_decision_at_a_time
from mediavault.agent.stores.audit import AuditEvent, AuditLogError, read_events
from mediavault.agent.stores.case_store import (
    REVIEW_REASON_CATEGORIES,
    CaseRecord,
    CaseStore,
)
from mediavault.graph.context import Context
from mediavault.policies import policy_rules

#: Longest reviewer name accepted; it is written to the case store and the audit log.
MAX_REVIEWER_LENGTH = 100
#: Longest reviewer message (the graph keeps at most this much of a rejection message).
MAX_MESSAGE_LENGTH = 1000
DEFAULT_ESCALATION_MESSAGE = "escalated by a reviewer"


class ReviewDeskError(Exception):
    """Base class of the review desk's errors; the message is one line meant for people."""


class CaseNotFound(ReviewDeskError, LookupError):
    """No case exists for this email id in this state directory."""


class NoReviewWaiting(ReviewDeskError, NoPendingReview):
    """The case exists but no draft waits for a reviewer (still being triaged, or escalated)."""


class ReviewAlreadyDecided(NoReviewWaiting):
    """Someone already decided this case; a second decision is refused."""


class DraftChanged(ReviewDeskError):
    """The draft is no longer the version the reviewer read (a revision replaced it)."""


class InvalidDecision(ReviewDeskError, ValueError):
    """The decision itself is malformed (unknown queue or reason, empty message or text)."""


class EditRefused(ReviewDeskError):
    """The edited reply failed validation or DLP; the review stays open with the old draft."""

    def __init__(self, email_id: str, problems: list[str]) -> None:
        self.email_id = email_id
        self.problems = tuple(problems) or ("the edited reply was not accepted",)
        super().__init__(
            f"the edit of {email_id} was refused and the review stays open: "
            + "; ".join(self.problems)
        )


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class PendingReview(_View):
    """One draft waiting for a reviewer, as listed in the review queue."""

    email_id: str
    received_at: datetime
    sender: str
    subject: str
    reason_code: str | None
    draft_version: int | None
    #: Earlier decisions on this case (a rejected first draft counts).
    previous_reviews: int
    waiting_since: datetime


class EmailView(_View):
    """The customer's email as received (body after normalisation, quoted history apart)."""

    sender: str
    sender_name: str
    subject: str
    body: str
    message_id: str | None
    in_reply_to: str | None
    sender_verified: bool
    input_flags: tuple[str, ...]


class EvidenceItem(_View):
    """One investigation step: the query with the rows it returned, or the policy sections read.

    ``sql`` is the whole statement as it ran and ``rows`` what the model read (the sender's
    own data, up to the row cap), so a reviewer can check every fact in the draft against them.
    """

    tool: str
    outcome: str | None = None
    sql: str | None = None
    row_count: int | None = None
    policy_section_ids: tuple[str, ...] = ()
    tool_call_id: str | None = None
    columns: tuple[str, ...] = ()
    rows: tuple[dict[str, Any], ...] = ()
    #: The rows stop at the row or size cap; more may exist (``truncation_note`` says which).
    truncated: bool = False
    truncation_note: str | None = None


class PolicyCitation(_View):
    """A policy section the decision, the draft or the investigation relied on."""

    section_id: str
    title: str | None


class GateVerdictView(_View):
    """What the approval gate ruled on one proposed tool call."""

    phase: str
    tool: str
    verdict: str
    reason: str
    tool_call_id: str


class DraftView(_View):
    """The reply as it stands (the latest version), with its validation result."""

    version: int
    source: str
    to: str | None
    subject: str | None
    text: str
    valid: bool
    problems: tuple[str, ...]
    policy_refs: tuple[str, ...]
    created_at: datetime | None = None
    #: The reviewers' decisions on this version while it was the latest (draft history only).
    decisions: tuple[str, ...] = ()


class ReviewView(_View):
    """A decision already taken on the case."""

    decision: str
    reviewer: str
    reason_category: str | None
    message: str | None
    edit_size: int | None
    at: datetime


class AuditEntry(_View):
    """One line of the case's audit trail (digests and counts, never raw content)."""

    at: datetime
    action: str
    outcome: str
    actor: str
    reason: str | None
    tool_call_id: str | None
    details: dict[str, Any]


class CaseFile(_View):
    """Everything a reviewer needs to judge one case, from the case store, the thread's
    checkpoint and the audit log."""

    email_id: str
    thread_id: str
    status: str
    status_reason: str | None
    route: str | None
    reason_code: str | None
    queue: str | None
    risk_flags: tuple[str, ...]
    received_at: datetime
    decided_at: datetime | None
    awaiting_review: bool
    #: The decisions a reviewer may take now (empty unless the case waits for review).
    allowed_decisions: tuple[str, ...]
    email: EmailView | None
    customer: dict[str, Any] | None
    decision_rationale: str | None
    evidence: tuple[EvidenceItem, ...]
    policy_citations: tuple[PolicyCitation, ...]
    gate_verdicts: tuple[GateVerdictView, ...]
    draft: DraftView | None
    draft_versions: int
    #: Every version of the reply, oldest first (a rejected draft beside its revision).
    draft_history: tuple[DraftView, ...] = ()
    #: Why the last edit (or escalation) was refused, while the review is still open.
    refused_problems: tuple[str, ...]
    reviews: tuple[ReviewView, ...]
    ticket: dict[str, Any] | None
    outbox_path: str | None
    audit_trail: tuple[AuditEntry, ...]
    #: Set when the audit log could not be read; the rest of the file is still shown.
    audit_problem: str | None = None
    #: Every step of the run in order (``mediavault cases trace`` shows the same steps).
    trace: tuple[TraceStep, ...] = ()


class ReviewOutcome(_View):
    """Where a case stands after a reviewer's decision."""

    email_id: str
    decision: str
    reviewer: str
    status: str
    summary: str
    draft: DraftView | None = None
    outbox_path: str | None = None
    queue: str | None = None
    ticket_id: str | None = None
    edit_size: int | None = None


# ----------------------------------------------------------------------------- reading


def list_pending_reviews(context: Context | None = None) -> list[PendingReview]:
    """Drafts waiting for a reviewer, oldest received first."""
    store = case_store_if_any(context or Context())
    if store is None:
        return []
    return [
        PendingReview(
            email_id=case.email_id,
            received_at=case.received_at,
            sender=case.sender,
            subject=case.email.subject if case.email else "",
            reason_code=case.reason_code,
            draft_version=case.latest_draft.version if case.latest_draft else None,
            previous_reviews=len(case.reviews),
            waiting_since=case.updated_at,
        )
        for case in store.pending_reviews()
    ]


def show_case(email_id: str, context: Context | None = None) -> CaseFile:
    """The whole case file for one email; raises :class:`CaseNotFound` for an unknown id."""
    context = context or Context()
    case = _case(context, email_id)
    state, interrupts = _checkpoint_state(context, case.thread_id)
    events, audit_problem = _audit_events(context, email_id)
    audit_trail = tuple(_audit_entry(event) for event in events)
    decision = state.get("decision") or {}
    awaiting = case.status == "awaiting_review" and bool(interrupts)
    allowed: tuple[str, ...] = ()
    if awaiting:
        configs = interrupts[0].get("review_configs") or [{}]
        allowed = tuple(configs[0].get("allowed_decisions") or ())
    results = _tool_results(state)
    evidence = tuple(_evidence(item, results) for item in state.get("evidence") or [])
    draft = _draft_view(case, state)
    trace = build_trace(
        email_id=case.email_id, subject=case.email.subject if case.email else None,
        status=case.status, route=case.route, reason_code=case.reason_code, queue=case.queue,
        customer_id=case.customer_id, ticket=case.ticket.ticket if case.ticket else None,
        state=state, events=None if audit_problem else events, audit_problem=audit_problem)
    return CaseFile(
        email_id=case.email_id,
        thread_id=case.thread_id,
        status=case.status,
        status_reason=case.status_reason,
        route=case.route or decision.get("route"),
        reason_code=case.reason_code or decision.get("reason_code"),
        queue=case.queue,
        risk_flags=case.risk_flags,
        received_at=case.received_at,
        decided_at=case.decided_at,
        awaiting_review=awaiting,
        allowed_decisions=allowed,
        email=_email_view(case),
        customer=state.get("customer")
        or ({"customer_id": case.customer_id} if case.customer_id is not None else None),
        decision_rationale=decision.get("rationale"),
        evidence=evidence,
        policy_citations=_citations(decision, draft, evidence),
        gate_verdicts=tuple(
            GateVerdictView(
                phase=str(r.get("phase", "")),
                tool=str(r.get("tool", "")),
                verdict=str(r.get("verdict", "")),
                reason=str(r.get("reason") or ""),
                tool_call_id=str(r.get("tool_call_id", "")),
            )
            for r in state.get("gate_log") or []
        ),
        draft=draft,
        draft_versions=len(case.drafts),
        draft_history=_draft_history(case),
        refused_problems=tuple(state.get("draft_problems") or ()) if awaiting else (),
        reviews=tuple(
            ReviewView(
                decision=r.decision,
                reviewer=r.reviewer,
                reason_category=r.reason_category,
                message=r.message,
                edit_size=r.edit_size,
                at=r.created_at,
            )
            for r in case.reviews
        ),
        ticket=case.ticket.ticket if case.ticket else None,
        outbox_path=case.outbox.path if case.outbox else None,
        audit_trail=audit_trail,
        audit_problem=audit_problem,
        trace=trace.steps,
    )


def case_store_if_any(context: Context) -> CaseStore | None:
    """The context's case store (SQLite file or Postgres), or None when no SQLite file exists.

    Reading never creates a store: a mistyped ``--home`` must not leave an empty one behind.
    """
    from mediavault.agent.stores.checkpoints import uses_postgres_state
    from mediavault.agent.wiring import open_private_case_store

    if not uses_postgres_state(context) and not context.cases_path.exists():
        return None
    return open_private_case_store(context)


def _case(context: Context, email_id: str) -> CaseRecord:
    store = case_store_if_any(context)
    if store is None:
        raise CaseNotFound(f"no case for email {email_id!r}: no case store at {context.cases_path}")
    case = store.get_case(email_id)
    if case is None:
        raise CaseNotFound(f"no case for email {email_id!r} in {context.home}")
    return case


def _checkpoint_state(
    context: Context, thread_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The thread's latest state and the requests it waits on (empty when never checkpointed)."""
    from mediavault.agent.stores.checkpoints import open_checkpointer, uses_postgres_state
    from mediavault.agent.wiring import build_graph

    if not uses_postgres_state(context) and not context.checkpoint_path.exists():
        return {}, []
    with open_checkpointer(context) as saver:
        graph = build_graph().compile(checkpointer=saver)
        snapshot = graph.get_state({"configurable": {"thread_id": thread_id}})
    values: dict[str, Any] = dict(snapshot.values or {})
    interrupts = [
        dict(item.value)
        for task in snapshot.tasks
        for item in task.interrupts
        if isinstance(item.value, dict)
    ]
    return values, interrupts


def _audit_events(context: Context, email_id: str) -> tuple[list[AuditEvent], str | None]:
    try:
        return read_events(context.audit_path, email_id=email_id), None
    except AuditLogError as problem:
        # A damaged log must not hide the case from its reviewer; `audit verify` says more.
        return [], str(problem)


def _audit_entry(event: AuditEvent) -> AuditEntry:
    return AuditEntry(
        at=event.timestamp,
        action=event.action,
        outcome=event.outcome,
        actor=event.actor,
        reason=event.reason,
        tool_call_id=event.tool_call_id,
        details=dict(event.details),
    )


def _email_view(case: CaseRecord) -> EmailView | None:
    email = case.email
    if email is None:
        return None
    return EmailView(
        sender=email.sender,
        sender_name=email.sender_name,
        subject=email.subject,
        body=email.body,
        message_id=email.message_id,
        in_reply_to=email.in_reply_to,
        sender_verified=email.sender_verified,
        input_flags=tuple(email.input_flags),
    )


def _tool_results(state: dict[str, Any]) -> dict[str, str]:
    """What each tool call returned to the model, by tool call id (from the checkpoint)."""
    results: dict[str, str] = {}
    for message in state.get("messages") or []:
        call_id = getattr(message, "tool_call_id", None)
        content = getattr(message, "content", None)
        if call_id and isinstance(content, str):
            results[str(call_id)] = content
    return results


def _query_result(text: str | None) -> dict[str, Any]:
    """The rows a query returned, as the model read them (a JSON object), or nothing."""
    if not text:
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) and isinstance(parsed.get("rows"), list) else {}


def _evidence(item: dict[str, Any], results: dict[str, str]) -> EvidenceItem:
    row_count = item.get("row_count")
    call_id = item.get("tool_call_id")
    result = _query_result(results.get(str(call_id))) if item.get("sql") else {}
    rows = tuple(row for row in result.get("rows") or [] if isinstance(row, dict))
    return EvidenceItem(
        tool=str(item.get("tool", "")),
        outcome=item.get("outcome"),
        # The checkpoint's evidence keeps a shortened statement; the result has all of it.
        sql=str(result.get("sql") or item.get("sql")) if item.get("sql") else None,
        row_count=int(row_count) if row_count is not None else None,
        policy_section_ids=tuple(item.get("policy_section_ids") or ()),
        tool_call_id=str(call_id) if call_id else None,
        columns=tuple(str(c) for c in result.get("columns") or ()),
        rows=rows,
        truncated=bool(result.get("truncated")),
        truncation_note=result.get("truncation_note"),
    )


def _draft_history(case: CaseRecord) -> tuple[DraftView, ...]:
    """Every version, each with the decisions taken while it was the latest one."""
    drafts = sorted(case.drafts, key=lambda d: d.version)
    history = []
    for index, record in enumerate(drafts):
        until = drafts[index + 1].created_at if index + 1 < len(drafts) else None
        decisions = tuple(_decision_text(r) for r in case.reviews
                          if r.created_at >= record.created_at
                          and (until is None or r.created_at < until))
        history.append(DraftView(
            version=record.version, source=record.source, to=None, subject=None,
            text=record.text, valid=record.valid, problems=record.validation_problems,
            policy_refs=record.policy_refs, created_at=record.created_at, decisions=decisions))
    return tuple(history)


def _decision_text(review: Any) -> str:
    text = f"{review.decision} by {review.reviewer}"
    if review.reason_category:
        text += f" ({review.reason_category})"
    if review.message:
        text += f": {' '.join(str(review.message).split())}"
    return text


def _draft_view(case: CaseRecord, state: dict[str, Any]) -> DraftView | None:
    latest = case.latest_draft
    if latest is None:
        return None
    in_state = state.get("draft") or {}
    return DraftView(
        version=latest.version,
        source=latest.source,
        to=in_state.get("to"),
        subject=in_state.get("subject"),
        text=latest.text,
        valid=latest.valid,
        problems=latest.validation_problems,
        policy_refs=latest.policy_refs,
    )


def _citations(
    decision: dict[str, Any], draft: DraftView | None, evidence: tuple[EvidenceItem, ...]
) -> tuple[PolicyCitation, ...]:
    from mediavault.tools.policy_retrieval import default_policy_library

    ids: list[str] = [str(ref) for ref in decision.get("policy_refs") or []]
    if draft is not None:
        ids.extend(draft.policy_refs)
    for item in evidence:
        ids.extend(item.policy_section_ids)
    library = default_policy_library()
    citations = []
    for section_id in dict.fromkeys(ids):  # first mention first, no repeats
        try:
            title: str | None = library.get(section_id).title
        except KeyError:
            title = None  # a model may cite a section that does not exist; show it anyway
        citations.append(PolicyCitation(section_id=section_id, title=title))
    return tuple(citations)


# ---------------------------------------------------------------------------- deciding


def default_reviewer() -> str:
    """The operating-system user name: who is at the desk when nobody says otherwise."""
    try:
        return getpass.getuser()
    except Exception:  # no user name in the environment or the password database
        return "unknown"


def _reviewer(reviewer: str | None) -> str:
    name = (default_reviewer() if reviewer is None else reviewer).strip()
    if not name:
        raise InvalidDecision("the reviewer name is empty")
    if len(name) > MAX_REVIEWER_LENGTH:
        raise InvalidDecision(f"the reviewer name is longer than {MAX_REVIEWER_LENGTH} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        # The name lands in the audit log and in terminal output: no control characters.
        raise InvalidDecision("the reviewer name contains control characters")
    return name


@contextmanager
def deciding(context: Context, email_id: str) -> Iterator[None]:
    """Hold the one decision lock of ``email_id``'s run (see :mod:`agent.ops.decision_lock`).

    Two reviewers deciding the same case: the second waits here, then finds the case decided
    instead of racing the first through the graph. Raises :class:`CaseNotFound` for an
    unknown email.
    """
    with one_decision_at_a_time(context, _case(context, email_id).thread_id):
        yield


def current_draft(email_id: str, context: Context | None = None) -> DraftView:
    """The draft a reviewer would decide on now; raises when no review waits for the case."""
    context = context or Context()
    case = _waiting_case(context, email_id)
    state, _ = _checkpoint_state(context, case.thread_id)
    draft = _draft_view(case, state)
    if draft is None:
        raise NoReviewWaiting(f"{email_id} waits for review but has no draft on record")
    return draft


def _waiting_case(context: Context, email_id: str) -> CaseRecord:
    case = _case(context, email_id)
    if case.status == "awaiting_review":
        return case
    if case.status == "open":
        raise NoReviewWaiting(f"{email_id} is still being triaged; no draft waits for review")
    if case.status == "failed":  # nobody decided it: its triage broke
        raise NoReviewWaiting(f"{email_id} failed, so no draft waits for review: "
                              f"{case.status_reason or 'no reason recorded'}")
    who = ""
    if case.reviews:
        last = case.reviews[-1]
        who = f" by {last.reviewer} at {last.created_at:%Y-%m-%d %H:%M} UTC"
    raise ReviewAlreadyDecided(f"{email_id} was already decided: {case.status}{who}")


def _apply(
    context: Context, email_id: str, decision: ReviewDecision, draft_version: int | None
) -> TriageResult:
    with deciding(context, email_id):
        case = _waiting_case(context, email_id)
        current = case.latest_draft.version if case.latest_draft else None
        if draft_version is not None and current != draft_version:
            raise DraftChanged(
                f"{email_id}: the draft is now version {current}, not the version "
                f"{draft_version} you read; show the case again before deciding")
        try:
            # The thread id, not the email id: an email id may itself start with "email-".
            return resume(case.thread_id, decision, context=context)
        except NoPendingReview:
            case = _waiting_case(context, email_id)  # raises when it was decided meanwhile
            raise NoReviewWaiting(
                f"{email_id} is marked as waiting for review but its run has no review open "
                f"in {context.checkpoint_path}"
            ) from None


def _outcome(
    context: Context,
    result: TriageResult,
    *,
    decision: str,
    reviewer: str,
    summary: str,
    edit_size: int | None = None,
) -> ReviewOutcome:
    case = _case(context, result.email_id)
    return ReviewOutcome(
        email_id=case.email_id,
        decision=decision,
        reviewer=reviewer,
        status=case.status,
        summary=summary,
        draft=_draft_view(case, {"draft": result.draft or {}}),
        outbox_path=case.outbox.path if case.outbox else None,
        queue=case.queue,
        ticket_id=case.ticket.ticket_id if case.ticket else None,
        edit_size=edit_size,
    )


def _outbox_note(context: Context, email_id: str) -> str:
    case = _case(context, email_id)
    return f"; reply written to {case.outbox.path}" if case.outbox else ""


def approve_draft(
    email_id: str,
    *,
    reviewer: str | None = None,
    draft_version: int | None = None,
    context: Context | None = None,
) -> ReviewOutcome:
    """Approve the draft as it stands; the reply goes to the outbox.

    ``draft_version`` (in every decision) refuses with :class:`DraftChanged` when the draft
    is no longer the version the reviewer read.
    """
    context = context or Context()
    name = _reviewer(reviewer)
    result = _apply(context, email_id, ReviewDecision(type="approve", reviewer=name),
                    draft_version)
    summary = f"{email_id} approved by {name}{_outbox_note(context, email_id)}"
    return _outcome(context, result, decision="approve", reviewer=name, summary=summary)


def edit_draft(
    email_id: str,
    text: str,
    *,
    reviewer: str | None = None,
    draft_version: int | None = None,
    context: Context | None = None,
) -> ReviewOutcome:
    """Replace the draft with ``text`` and approve it, if it passes validation and DLP.

    Raises :class:`EditRefused` with the reasons when it does not; the case then still waits
    for review with the previous draft.
    """
    context = context or Context()
    name = _reviewer(reviewer)
    body = text.replace("\r\n", "\n").replace("\r", "\n")
    if not body.strip():
        raise InvalidDecision("the edited reply is empty")
    case = _waiting_case(context, email_id)
    if case.latest_draft is not None and case.latest_draft.text.strip() == body.strip():
        # Counting an unchanged text as an edit would skew the pilot's edit rate.
        raise InvalidDecision("the edited reply is the same as the draft; approve it instead")
    result = _apply(context, email_id, ReviewDecision(type="edit", reviewer=name, body=body),
                    draft_version)
    if result.status == "awaiting_review":
        state, _ = _checkpoint_state(context, result.thread_id)
        raise EditRefused(email_id, [str(p) for p in state.get("draft_problems") or []])
    edits = [r for r in _case(context, email_id).reviews if r.decision == "edit"]
    size = edits[-1].edit_size if edits else None
    changed = f" ({size} characters changed)" if size is not None else ""
    summary = (f"{email_id} edited{changed} and approved by {name}"
               f"{_outbox_note(context, email_id)}")
    return _outcome(context, result, decision="edit", reviewer=name, summary=summary,
                    edit_size=size)


def reject_draft(
    email_id: str,
    *,
    reason: str,
    message: str,
    reviewer: str | None = None,
    draft_version: int | None = None,
    context: Context | None = None,
) -> ReviewOutcome:
    """Reject the draft with a reason category (tone, factual, policy, other) and a message.

    The first rejection sends the draft back to the model for one revision, which then waits
    for review again; a second rejection closes the case as rejected.
    """
    context = context or Context()
    name = _reviewer(reviewer)
    if reason not in REVIEW_REASON_CATEGORIES:
        raise InvalidDecision(
            f"reason {reason!r} is not one of {', '.join(REVIEW_REASON_CATEGORIES)}")
    note = message.strip()
    if not note:
        raise InvalidDecision("a rejection needs a message saying what to change")
    if len(note) > MAX_MESSAGE_LENGTH:
        raise InvalidDecision(f"the message is longer than {MAX_MESSAGE_LENGTH} characters")
    decision = ReviewDecision.model_validate(
        {"type": "reject", "reviewer": name, "reason_category": reason, "message": note})
    result = _apply(context, email_id, decision, draft_version)
    status = _case(context, email_id).status
    if status == "awaiting_review":
        summary = (f"{email_id} rejected by {name} ({reason}); the draft went back to the "
                   "model for its one revision and waits for review again")
    elif status == "escalated":
        summary = (f"{email_id} rejected by {name} ({reason}); no acceptable revision could be "
                   "drafted, so the case was escalated")
    else:
        summary = f"{email_id} rejected by {name} ({reason}); the case is closed as {status}"
    return _outcome(context, result, decision="reject", reviewer=name, summary=summary)


def escalate_case(
    email_id: str,
    *,
    queue: str,
    message: str | None = None,
    reviewer: str | None = None,
    draft_version: int | None = None,
    context: Context | None = None,
) -> ReviewOutcome:
    """Escalate the case to a human team's queue instead of replying."""
    context = context or Context()
    name = _reviewer(reviewer)
    known = policy_rules().queues
    if queue not in known:
        raise InvalidDecision(f"unknown queue {queue!r}; use one of {', '.join(sorted(known))}")
    note = (message or "").strip() or DEFAULT_ESCALATION_MESSAGE
    if len(note) > MAX_MESSAGE_LENGTH:
        raise InvalidDecision(f"the message is longer than {MAX_MESSAGE_LENGTH} characters")
    result = _apply(context, email_id,
                    ReviewDecision(type="escalate", reviewer=name, queue=queue, message=note),
                    draft_version)
    if result.status == "awaiting_review":  # the graph refused the queue after all
        state, _ = _checkpoint_state(context, result.thread_id)
        raise InvalidDecision("; ".join(state.get("draft_problems") or ["escalation refused"]))
    case = _case(context, email_id)
    ticket = f" (ticket {case.ticket.ticket_id})" if case.ticket else ""
    summary = f"{email_id} escalated by {name} to {case.queue}{ticket}"
    return _outcome(context, result, decision="escalate", reviewer=name, summary=summary)


__all__ = [
    "AuditEntry",
    "CaseFile",
    "CaseNotFound",
    "DraftChanged",
    "DraftView",
    "EditRefused",
    "EvidenceItem",
    "GateVerdictView",
    "InvalidDecision",
    "NoReviewWaiting",
    "PendingReview",
    "PolicyCitation",
    "ReviewAlreadyDecided",
    "ReviewDeskError",
    "ReviewOutcome",
    "approve_draft",
    "case_store_if_any",
    "current_draft",
    "default_reviewer",
    "edit_draft",
    "escalate_case",
    "list_pending_reviews",
    "reject_draft",
    "show_case",
]
