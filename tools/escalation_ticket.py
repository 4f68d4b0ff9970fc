"""Escalation tickets: the structured hand-off to a human team.

The model proposes a ticket (:class:`EscalationRequest`); :func:`build_ticket` turns it into an
:class:`EscalationTicket` under the policy's rules, not the model's:

* a reason code forced by the safety check wins, so a legal threat cannot be filed as "other";
* high-risk reason codes always go to the queue the policy assigns them; for other codes the
  model's suggested queue is kept only when it is a real queue;
* the model may raise the priority, never lower it below the reason code's default;
* every correction is recorded on the ticket, and the same email always gets the same ticket id,
  so a resumed run files the same ticket again instead of a second one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from mediavault.policies import policy_rules, queues, reason_codes
from mediavault.tools.email_fields import EmailId

Priority = Literal["low", "normal", "high", "urgent"]
PRIORITY_ORDER: tuple[Priority, ...] = ("low", "normal", "high", "urgent")

#: Reason codes whose queue is fixed by policy, whatever the model suggests.
HIGH_RISK_REASON_CODES = frozenset(
    {
        "legal_threat",
        "safety_concern",
        "harassment",
        "privacy_request",
        "media_inquiry",
        "fraud_chargeback",
        # Money goes back only through billing; a model cannot send a refund elsewhere.
        "refund_request",
    }
)
_URGENT = frozenset({"legal_threat", "safety_concern"})
_HIGH = frozenset({"harassment", "privacy_request", "media_inquiry", "fraud_chargeback"})
_LOW = frozenset({"praise", "catalog_question"})

MAX_ESCALATION_REASON_CHARS = 1_000
MAX_INVESTIGATION_SUMMARY_CHARS = 4_000
TICKET_ID_PATTERN = r"^MV-[0-9a-f]{10}$"

EscalationReason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ESCALATION_REASON_CHARS),
]
InvestigationSummary = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_INVESTIGATION_SUMMARY_CHARS
    ),
]
ShortLabel = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]


def check_reason_code(value: str) -> str:
    """``value`` when it is one of the policy's reason codes; ValueError listing them otherwise."""
    code = value.strip()
    if code not in reason_codes():
        raise ValueError(
            f"unknown reason code {value!r}; use one of: {', '.join(reason_codes())}"
        )
    return code


def check_queue(value: str) -> str:
    """``value`` when it is one of the policy's queues; ValueError listing them otherwise."""
    queue = value.strip()
    if queue not in queues():
        raise ValueError(f"unknown queue {value!r}; use one of: {', '.join(queues())}")
    return queue


def ticket_id_for(email_id: str) -> str:
    """The ticket id of an email: the same email always gets the same id."""
    return "MV-" + hashlib.sha256(email_id.strip().encode("utf-8")).hexdigest()[:10]


def default_priority(reason_code: str) -> Priority:
    """The priority the policy implies for a reason code (legal and safety are urgent)."""
    code = check_reason_code(reason_code)
    if code in _URGENT:
        return "urgent"
    if code in _HIGH:
        return "high"
    if code in _LOW:
        return "low"
    return "normal"


def _higher(first: Priority, second: Priority) -> Priority:
    return max(first, second, key=PRIORITY_ORDER.index)


class EscalationRequest(BaseModel):
    """A ticket as the model proposes it (the escalation tool's arguments)."""

    model_config = ConfigDict(extra="forbid")

    reason_code: str = Field(
        max_length=60,
        description="Why a human must handle this, as one reason code.",
        json_schema_extra={"enum": list(reason_codes())},
    )
    escalation_reason: EscalationReason = Field(
        description="One or two sentences for the human team: why this email needs a person.",
    )
    investigation_summary: InvestigationSummary = Field(
        description="What you checked and found (account facts, dates, amounts, policy "
        "sections), so the team does not start over.",
    )
    suggested_routing: str | None = Field(
        default=None,
        max_length=60,
        description="The queue you suggest: " + ", ".join(queues()) + ". High-risk cases always "
        "go to the queue the policy assigns.",
    )
    priority: Priority | None = Field(
        default=None,
        description="low, normal, high or urgent. Leave empty for the policy's default; a "
        "priority below the default is raised to it.",
    )

    @field_validator("reason_code")
    @classmethod
    def _known_reason_code(cls, value: str) -> str:
        return check_reason_code(value)


MAX_EVIDENCE_ITEMS = 50
MAX_EVIDENCE_SQL_CHARS = 4_000
MAX_EVIDENCE_NOTE_CHARS = 500


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class QueryEvidence(BaseModel):
    """One database query run during the investigation and how many rows it returned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sql: Annotated[str, StringConstraints(min_length=1, max_length=MAX_EVIDENCE_SQL_CHARS)]
    row_count: int = Field(ge=0)

    @field_validator("sql", mode="before")
    @classmethod
    def _clip_sql(cls, value: object) -> object:
        return _clip(value, MAX_EVIDENCE_SQL_CHARS) if isinstance(value, str) else value


class TicketEvidence(BaseModel):
    """What the investigation looked at: queries, policy sections and refused tool calls.

    Evidence is recorded by the graph, not written by the model, and an escalation must never
    fail because a run produced a lot of it: long items are clipped and long lists keep their
    first entries instead of being rejected.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    queries: list[QueryEvidence] = Field(default_factory=list, max_length=MAX_EVIDENCE_ITEMS)
    policy_section_ids: list[ShortLabel] = Field(
        default_factory=list, max_length=MAX_EVIDENCE_ITEMS
    )
    gate_denials: list[
        Annotated[str, StringConstraints(max_length=MAX_EVIDENCE_NOTE_CHARS)]
    ] = Field(default_factory=list, max_length=MAX_EVIDENCE_ITEMS)

    @field_validator("queries", mode="before")
    @classmethod
    def _first_queries(cls, value: object) -> object:
        return list(value)[:MAX_EVIDENCE_ITEMS] if isinstance(value, list | tuple) else value

    @field_validator("policy_section_ids", mode="before")
    @classmethod
    def _unique_section_ids(cls, value: object) -> object:
        if not isinstance(value, list | tuple):
            return value
        ids = [_clip(v.strip(), 80) if isinstance(v, str) else v for v in value]
        if all(isinstance(v, str) for v in ids):
            ids = list(dict.fromkeys(ids))  # the same section cited twice is one piece of evidence
        return ids[:MAX_EVIDENCE_ITEMS]

    @field_validator("gate_denials", mode="before")
    @classmethod
    def _clipped_denials(cls, value: object) -> object:
        if not isinstance(value, list | tuple):
            return value
        notes = [_clip(v, MAX_EVIDENCE_NOTE_CHARS) if isinstance(v, str) else v for v in value]
        return notes[:MAX_EVIDENCE_ITEMS]


class EscalationTicket(BaseModel):
    """A structured hand-off to a human team, as stored in the case store."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ticket_id: Annotated[str, StringConstraints(pattern=TICKET_ID_PATTERN)]
    email_id: EmailId
    customer_id: int | None = Field(default=None, ge=1)
    reason_code: str
    escalation_reason: EscalationReason
    investigation_summary: InvestigationSummary
    evidence: TicketEvidence = Field(default_factory=TicketEvidence)
    suggested_routing: str
    priority: Priority
    #: The queue the model suggested when the policy put the ticket elsewhere.
    routing_corrected_from: str | None = Field(default=None, max_length=60)
    #: The model's reason code when the safety check's forced code replaced it.
    reason_code_corrected_from: str | None = Field(default=None, max_length=60)
    #: Every risk the safety check found, most severe first: category, rule, part, words.
    risk_findings: list[Annotated[str, StringConstraints(max_length=400)]] = Field(
        default_factory=list, max_length=30)
    #: The language of the email (ISO 639-1) when the identifier was sure of it.
    language: str | None = Field(default=None, max_length=12)
    created_at: AwareDatetime

    @field_validator("reason_code")
    @classmethod
    def _known_reason_code(cls, value: str) -> str:
        return check_reason_code(value)

    @field_validator("suggested_routing")
    @classmethod
    def _known_queue(cls, value: str) -> str:
        return check_queue(value)

    @model_validator(mode="after")
    def _id_matches_email(self) -> EscalationTicket:
        if self.ticket_id != ticket_id_for(self.email_id):
            raise ValueError(
                f"ticket_id {self.ticket_id!r} does not belong to email {self.email_id!r}"
            )
        return self


def _queue_key(value: str) -> str:
    # "Billing", " tier2-legal " and "tier2 legal" name the queues billing and tier2_legal.
    return re.sub(r"[\s-]+", "_", value.strip().lower())


def route_ticket(reason_code: str, suggested: str | None) -> tuple[str, str | None]:
    """The queue for a ticket and, when the suggestion was overruled, what was suggested.

    High-risk reason codes always get the policy's queue; for the others a suggestion naming a
    real queue is kept and anything else is replaced by the policy's queue.
    """
    policy_queue = policy_rules().queue_for(reason_code)
    if suggested is None or not suggested.strip():
        return policy_queue, None
    key = _queue_key(suggested)
    if reason_code in HIGH_RISK_REASON_CODES or key not in queues():
        return policy_queue, (None if key == policy_queue else suggested.strip())
    return key, None


def build_ticket(
    request: EscalationRequest,
    *,
    email_id: str,
    customer_id: int | None,
    evidence: TicketEvidence,
    now: datetime,
    forced_reason_code: str | None = None,
    risk_findings: Sequence[str] = (),
    language: str | None = None,
) -> EscalationTicket:
    """File the model's proposed ticket under the policy's rules.

    ``forced_reason_code`` is the safety check's verdict: when given it replaces the model's
    reason code. ``now`` must carry a time zone (the caller's clock, so tests can fix it).
    """
    reason_code = request.reason_code
    corrected_code: str | None = None
    if forced_reason_code is not None:
        forced = check_reason_code(forced_reason_code)
        if forced != reason_code:
            corrected_code = reason_code
        reason_code = forced
    routing, corrected_from = route_ticket(reason_code, request.suggested_routing)
    baseline = default_priority(reason_code)
    priority = _higher(baseline, request.priority) if request.priority else baseline
    return EscalationTicket(
        ticket_id=ticket_id_for(email_id),
        email_id=email_id,
        customer_id=customer_id,
        reason_code=reason_code,
        escalation_reason=request.escalation_reason,
        investigation_summary=request.investigation_summary,
        evidence=evidence,
        suggested_routing=routing,
        priority=priority,
        routing_corrected_from=corrected_from,
        reason_code_corrected_from=corrected_code,
        risk_findings=[finding[:400] for finding in risk_findings][:30],
        language=language,
        created_at=now,
    )


__all__ = [
    "HIGH_RISK_REASON_CODES",
    "EscalationRequest",
    "EscalationTicket",
    "Priority",
    "QueryEvidence",
    "TicketEvidence",
    "build_ticket",
    "check_queue",
    "check_reason_code",
    "default_priority",
    "route_ticket",
    "ticket_id_for",
]
