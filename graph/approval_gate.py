"""The approval gate: pure policy code that rules on every proposed tool call.

One contract for every tool: :func:`judge_tool_call` returns ``allow``, ``deny(reason)`` or
``review(description)``. It performs no I/O and has no side effects, because LangGraph re-runs
the code before an ``interrupt()`` when a run resumes. The data layer enforces the same rules a
second time on its own; the gate exists so that a model learns *why* early and cheaply.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mediavault.graph.safety.rules import matching_views
from mediavault.policies import reason_codes
from mediavault.tools.agent_tools import (
    CREATE_ESCALATION_TICKET,
    DRAFT_CUSTOMER_EMAIL,
    INVESTIGATION_TOOLS,
    RUN_SQL_QUERY,
    RunSqlQueryArgs,
    ToolArgumentsInvalid,
    parse_arguments,
)
from mediavault.tools.business_db.sql_guard import SqlRefused, guard_sql
from mediavault.tools.drafting.reply import DraftRequest

Verdict = Literal["allow", "deny", "review"]
Phase = Literal["investigate", "draft", "escalate"]
#: Denials the graph routes on (the others only go back to the model with their reason).
DenialCode = Literal["budget_exhausted", "argument_budget_exhausted", "must_escalate"]
#: How the graph words a tool call refused because the email's argument bytes are spent (the
#: graph writes it, never the model; the gate turns it into the structured code above).
ARGUMENT_BUDGET_EXHAUSTED = "argument budget exhausted"

#: Which tools each phase may run. Anything else is denied, whatever the model asks.
PHASE_TOOLS: Mapping[str, frozenset[str]] = {
    "investigate": frozenset(INVESTIGATION_TOOLS),
    "draft": frozenset({DRAFT_CUSTOMER_EMAIL}),
    "escalate": frozenset({CREATE_ESCALATION_TICKET}),
}

MUST_ESCALATE = "this email must be escalated, not drafted"
#: Words that mark internal material; findings carrying them never reach a draft.
INTERNAL_MARKERS = ("confidential", "internal use only")


@dataclass(frozen=True)
class GateVerdict:
    """The gate's ruling on one tool call."""

    verdict: Verdict
    reason: str = ""
    arguments: Any = None
    #: What kind of denial this is, when the graph's routing depends on it.
    code: DenialCode | None = None

    @classmethod
    def allow(cls, arguments: Any) -> GateVerdict:
        return cls("allow", "", arguments)

    @classmethod
    def deny(cls, reason: str, code: DenialCode | None = None) -> GateVerdict:
        return cls("deny", reason, code=code)

    @classmethod
    def review(cls, description: str, arguments: Any) -> GateVerdict:
        return cls("review", description, arguments)


@dataclass(frozen=True)
class GateFacts:
    """What the gate knows about the email, taken from the state (never from the model)."""

    phase: Phase
    sender: str
    forced_escalation: bool
    forced_reason: str | None
    tool_calls_used: int
    max_tool_calls: int
    sql_max_rows: int
    review_tools: Collection[str] = ()
    #: The business database's SQL dialect: the gate checks SQL as the data layer will.
    sql_dialect: str = "sqlite"


def judge_tool_call(call: Mapping[str, Any], facts: GateFacts) -> GateVerdict:
    """Rule on one tool call proposed by the model in the given phase."""
    name = call.get("name")
    if not call.get("id"):
        return GateVerdict.deny("tool call has no id; resend it with an id")
    if not isinstance(name, str) or not name:
        return GateVerdict.deny("tool call has no tool name")
    allowed = PHASE_TOOLS[facts.phase]
    if name not in allowed:
        return _wrong_phase(name, facts)
    if facts.phase == "investigate" and facts.tool_calls_used >= facts.max_tool_calls:
        return GateVerdict.deny(
            f"tool budget exhausted ({facts.max_tool_calls} calls); stop investigating",
            code="budget_exhausted",
        )
    try:
        arguments = parse_arguments(name, call.get("args"))
    except ToolArgumentsInvalid as problem:
        return GateVerdict.deny(str(problem))
    if isinstance(arguments, RunSqlQueryArgs):
        try:
            guard_sql(arguments.query, dialect=facts.sql_dialect, max_rows=facts.sql_max_rows)
        except SqlRefused as refusal:
            return GateVerdict.deny(f"SQL refused ({refusal.rule}): {refusal.message}")
    if isinstance(arguments, DraftRequest):
        denial = _judge_draft(arguments, facts)
        if denial is not None:
            return denial
    if name in facts.review_tools:
        return GateVerdict.review(f"{name} needs a reviewer's approval before it runs", arguments)
    return GateVerdict.allow(arguments)


def _wrong_phase(name: str, facts: GateFacts) -> GateVerdict:
    if name == DRAFT_CUSTOMER_EMAIL and facts.forced_escalation:
        return GateVerdict.deny(f"{MUST_ESCALATE} ({facts.forced_reason})", code="must_escalate")
    known = {tool for tools in PHASE_TOOLS.values() for tool in tools}
    if name not in known:
        available = sorted(PHASE_TOOLS[facts.phase])
        return GateVerdict.deny(f"unknown tool {name!r}; available: {available}")
    return GateVerdict.deny(
        f"{name} is not available while {facts.phase.replace('_', ' ')}ing; "
        f"available now: {sorted(PHASE_TOOLS[facts.phase])}"
    )


def _judge_draft(request: DraftRequest, facts: GateFacts) -> GateVerdict | None:
    if facts.forced_escalation:
        return GateVerdict.deny(f"{MUST_ESCALATE} ({facts.forced_reason})", code="must_escalate")
    if request.to is not None and request.to.strip().lower() != facts.sender.lower():
        return GateVerdict.deny("a reply may only be addressed to the sender of the email")
    content = " ".join(
        [request.summary, *request.findings, *request.policy_points, *request.next_steps]
    )
    # Every matching view (case, look-alikes, zero-width, spaced letters, leetspeak), and each
    # with spaces removed, so "c o n f i d e n t i a l" is caught as well.
    views = matching_views(content)
    squeezed = [view.replace(" ", "") for view in views]
    for marker in INTERNAL_MARKERS:
        if any(marker in view for view in views) or any(
            marker.replace(" ", "") in view for view in squeezed
        ):
            return GateVerdict.deny(
                f"the draft contains {marker!r} material; internal information never goes to "
                "a customer"
            )
    return None


def needs_human_review(review_mode: str, reason_code: str) -> bool:
    """Whether a valid draft with this reason code waits for a human (the pilot: always).

    ``Context`` refuses unknown modes; should one get here anyway, it fails closed: a mode
    naming anything but known reason codes sends every draft to review.
    """
    mode = review_mode.strip().lower()
    if mode in ("", "all"):
        return True
    if mode == "none":
        return False
    codes = {code.strip() for code in mode.split(",")}
    if not codes <= set(reason_codes()):
        return True
    return reason_code in codes


def sql_query_of(arguments: Any) -> str | None:
    """The query text of a gated ``run_sql_query`` call, for evidence records."""
    if isinstance(arguments, RunSqlQueryArgs):
        return arguments.query
    return None


__all__ = [
    "MUST_ESCALATE",
    "PHASE_TOOLS",
    "RUN_SQL_QUERY",
    "GateFacts",
    "GateVerdict",
    "judge_tool_call",
    "needs_human_review",
]
