"""The JSON shapes of the console's API (they make up its OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mediavault.agent.ops.pilot_metrics import AutoApprovalRow, PilotMetrics
from mediavault.agent.ops.review_desk import CaseFile

#: The reason categories of a rejection, as the case store records them.
ReasonCategory = Literal["tone", "factual", "policy", "other"]

TOKEN_DESCRIPTION = (
    "The review_token of the case as the caller last read it. When given, the decision applies "
    "only if the draft is still that one (409 otherwise)."
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    review_token: str | None = Field(default=None, max_length=40, description=TOKEN_DESCRIPTION)


class ApproveBody(_Body):
    """Approve the draft as it stands."""


class EditBody(_Body):
    """Replace the draft's text; it is validated again before it is accepted."""

    body: str = Field(min_length=1, max_length=20_000)


class RejectBody(_Body):
    """Reject the draft: it goes back to the model once, then the case closes."""

    reason_category: ReasonCategory
    message: str = Field(min_length=1, max_length=1000)


class EscalateBody(_Body):
    """Hand the case to a human team instead of replying."""

    queue: str = Field(min_length=1, max_length=60)
    message: str | None = Field(default=None, max_length=500)


class DecisionResponse(BaseModel):
    """What became of a decision."""

    email_id: str
    result: Literal["done", "invalid", "already_decided", "stale", "not_found"]
    message: str
    status: str | None = None
    problems: list[str] = Field(default_factory=list)


class SessionInfo(BaseModel):
    """The signed-in reviewer, and the CSRF token browser-credential calls must send."""

    reviewer: str
    via: Literal["session", "proxy", "basic"]
    csrf_token: str | None = None


class QueueItem(BaseModel):
    """A case waiting for review."""

    email_id: str
    subject: str
    sender: str
    sender_name: str
    customer_id: int | None
    reason_code: str | None
    queue: str | None
    received_at: datetime
    age_seconds: int
    age: str
    review_token: str


class ReviewQueue(BaseModel):
    """Pending reviews, oldest first."""

    waiting: int = Field(description="Cases waiting for review, before filters.")
    shown: int
    items: list[QueueItem]


class CaseDetail(CaseFile):
    """Everything a reviewer sees of one case, and the token a decision on it may carry."""

    review_token: str = Field(description="Send it back with a decision: " + TOKEN_DESCRIPTION)


class EscalationItem(BaseModel):
    """One escalation ticket."""

    email_id: str
    ticket_id: str
    queue: str
    priority: str | None
    reason_code: str | None
    escalation_reason: str
    investigation_summary: str
    created_at: datetime


class EscalationQueue(BaseModel):
    queue: str
    description: str
    tickets: list[EscalationItem]


class ReviewOutcomesDay(BaseModel):
    day: str
    approve: int = 0
    edit: int = 0
    reject: int = 0
    escalate: int = 0


class MetricsReport(BaseModel):
    """The pilot metrics, review outcomes per day and the auto-approval eligibility table."""

    metrics: PilotMetrics
    review_outcomes: list[ReviewOutcomesDay]
    auto_approval: list[AutoApprovalRow]


class AuditStatus(BaseModel):
    """The result of verifying the audit log's hash chain."""

    ok: bool
    summary: str
    lines_checked: int
    first_broken_line: int | None
    problem: str | None
    keyed: bool
    warnings: list[str]
