"""The Email Triage state: small, typed, JSON-serialisable.

Values are plain dicts and lists (never live objects) so that checkpoints, LangGraph Studio and
the server API all see the same thing. Tool results are capped before they enter the state.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages

# typing_extensions' TypedDict, not typing's: on Python < 3.12 pydantic can build JSON schemas
# only from the former, and LangGraph Studio's input form is built from those schemas.
from typing_extensions import TypedDict

Route = Literal["draft", "escalate"]
Phase = Literal["investigate", "draft", "escalate"]
#: What the last review asked for; :func:`graph.nodes.route_after_review` routes on it.
ReviewOutcome = Literal["approved", "ask_again", "revise", "escalate", "closed"]


class RiskRecord(TypedDict, total=False):
    """The safety check's finding (``flags`` as RiskFlag dicts)."""

    forced_escalation: bool
    reason_code: str | None
    queue: str | None
    level: str
    flags: list[dict[str, Any]]
    #: Set when part of the email was never read (too long): a person reads it all.
    unread_part: str


class DecisionRecord(TypedDict, total=False):
    """The enforced decision (graph.decision.EnforcedDecision) the run acts on."""

    route: Route
    reason_code: str
    rationale: str
    policy_refs: list[str]
    queue: str | None
    overridden: str | None


class GateVerdictRecord(TypedDict):
    """One approval-gate verdict, as kept in the trace and shown to reviewers."""

    phase: str
    tool_call_id: str
    tool: str
    verdict: Literal["allow", "deny", "review"]
    reason: str


class EvidenceRecord(TypedDict, total=False):
    """What an investigation tool found, in digest form (never full tables)."""

    tool: str
    tool_call_id: str
    sql: str
    row_count: int
    policy_section_ids: list[str]
    outcome: str


class TriageInput(TypedDict):
    """What a caller (Python API, Studio, the server) sends: one email as a dict."""

    email: dict[str, Any]


class TriageState(TypedDict, total=False):
    """The whole state of one email's triage."""

    email: dict[str, Any]
    thread_id: str
    customer: dict[str, Any] | None
    quoted_history: str
    risk: RiskRecord
    messages: Annotated[list[AnyMessage], add_messages]
    #: Approved tool calls waiting for the tool node of the current phase.
    approved_calls: list[dict[str, Any]]
    gate_log: Annotated[list[GateVerdictRecord], operator.add]
    evidence: Annotated[list[EvidenceRecord], operator.add]
    model_calls: int
    tool_calls: int
    started_at: float
    budget_exceeded: str | None
    decision: DecisionRecord
    draft_attempts: int
    draft: dict[str, Any] | None
    draft_problems: list[str]
    ticket: dict[str, Any] | None
    review_decisions: Annotated[list[dict[str, Any]], operator.add]
    revisions: int
    review_outcome: ReviewOutcome
    escalation_reason: str | None
    #: The run must go to a person now (the model failed while drafting, or the gate refused a
    #: draft because the safety check forced an escalation); routing reads this, not reasons.
    must_escalate: bool
    outcome: dict[str, Any]
    #: Audit events recorded since the log was last written (see graph.audit_trail).
    audit_pending: Annotated[list[dict[str, Any]], operator.add]


class TriageOutput(TypedDict, total=False):
    """What a run returns to callers."""

    outcome: dict[str, Any]
    decision: DecisionRecord
    draft: dict[str, Any] | None
    ticket: dict[str, Any] | None
    gate_log: list[GateVerdictRecord]
