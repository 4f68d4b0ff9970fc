"""The step trace of one case: what the agent did with an email, in order.

One implementation serves every place a run is shown step by step: ``mediavault cases trace``,
the trace after ``mediavault demo``'s outcome table, ``mediavault review show``, the console's
case page and the JSON API. Its spine is the audit log (every gate verdict, tool execution,
model call, decision, review and outcome, in the order they happened); the thread's checkpoint
adds what the log deliberately leaves out: the safety check's finding, the SQL a query ran,
the policy sections a lookup returned, the first line of a tool's result. A case whose audit
log cannot be read still gets a trace from its checkpoint alone (its gate verdicts and
evidence), with the problem stated.

Every tool call is one step: the gate's verdict on it and, when it ran, a one-line result.
A call the gate denied shows the reason the model was given.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from mediavault.agent.stores.audit import AuditEvent, AuditLogError, read_events
from mediavault.graph.context import Context

StepKind = Literal["email", "safety_check", "model_call", "tool_call", "decision", "review",
                   "outcome", "event"]

#: A one-line result is cut here; the full text stays in ``detail``.
SUMMARY_CHARS = 160
SQL_CHARS = 64


class TraceStep(BaseModel):
    """One step of a run, as a person reads it."""

    model_config = ConfigDict(frozen=True)

    number: int
    kind: StepKind
    #: The audit action behind the step (``gate.verdict``, ``model.call``, ...).
    action: str
    at: datetime | None = None
    #: The graph phase (investigate, draft, escalate) for model and tool calls.
    phase: str | None = None
    tool: str | None = None
    tool_call_id: str | None = None
    #: The approval gate's verdict on a tool call: allow, deny or review.
    verdict: str | None = None
    #: Why the gate denied or held the call (the text the model received).
    reason: str | None = None
    #: One line: what happened.
    summary: str
    #: The whole of it when the line is a shortening (a query's full SQL, a ticket's reason).
    detail: str | None = None
    actor: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    duration_ms: float | None = None


class CaseTrace(BaseModel):
    """Every step recorded for one email, oldest first."""

    model_config = ConfigDict(frozen=True)

    email_id: str
    subject: str | None
    status: str
    route: str | None
    reason_code: str | None
    queue: str | None
    steps: tuple[TraceStep, ...]
    #: Set when the audit log could not be read; the steps then come from the checkpoint only.
    audit_problem: str | None = None

    @property
    def gate_denials(self) -> int:
        """How many proposed tool calls the gate refused."""
        return sum(1 for step in self.steps if step.verdict == "deny")


def case_trace(email_id: str, context: Context | None = None) -> CaseTrace:
    """The trace of one recorded email; raises ``review_desk.CaseNotFound`` for an unknown id."""
    from mediavault.agent.ops.review_desk import _case, _checkpoint_state

    context = context or Context()
    case = _case(context, email_id)
    state, _ = _checkpoint_state(context, case.thread_id)
    try:
        events: list[AuditEvent] | None = list(read_events(context.audit_path,
                                                           email_id=email_id))
        problem = None
    except AuditLogError as error:
        events, problem = None, str(error)
    return build_trace(
        email_id=case.email_id, subject=case.email.subject if case.email else None,
        status=case.status, route=case.route, reason_code=case.reason_code, queue=case.queue,
        customer_id=case.customer_id, ticket=case.ticket.ticket if case.ticket else None,
        state=state, events=events, audit_problem=problem,
    )


def build_trace(
    *,
    email_id: str,
    subject: str | None,
    status: str,
    route: str | None,
    reason_code: str | None,
    queue: str | None,
    customer_id: int | None,
    ticket: Mapping[str, Any] | None,
    state: Mapping[str, Any],
    events: Sequence[AuditEvent] | None,
    audit_problem: str | None = None,
) -> CaseTrace:
    """The trace from a case's recorded parts (pure: no I/O, so it is easy to test)."""
    facts = _CheckpointFacts(state, ticket)
    if not events:  # no readable log (or none at all): the checkpoint still knows the calls
        steps = _steps_from_checkpoint(facts)
    else:
        steps = _steps_from_events(events, facts, customer_id)
    numbered = tuple(step.model_copy(update={"number": n}) for n, step in enumerate(steps, 1))
    return CaseTrace(email_id=email_id, subject=subject, status=status, route=route,
                     reason_code=reason_code, queue=queue, steps=numbered,
                     audit_problem=audit_problem)


class _CheckpointFacts:
    """What the thread's checkpoint adds to the audit log, looked up by tool call id."""

    def __init__(self, state: Mapping[str, Any], ticket: Mapping[str, Any] | None) -> None:
        self.risk: Mapping[str, Any] = state.get("risk") or {}
        self.decision: Mapping[str, Any] = state.get("decision") or {}
        self.ticket = ticket or state.get("ticket") or {}
        self.evidence = {str(e.get("tool_call_id")): e for e in state.get("evidence") or []}
        self.gate_log = list(state.get("gate_log") or [])
        self.verdicts = {str(r.get("tool_call_id")): r for r in self.gate_log}
        self.results: dict[str, str] = {}
        self.arguments: dict[str, Mapping[str, Any]] = {}
        for message in state.get("messages") or []:
            for call in getattr(message, "tool_calls", None) or []:
                if call.get("id"):
                    self.arguments[str(call["id"])] = call.get("args") or {}
            call_id = getattr(message, "tool_call_id", None)
            if call_id:
                self.results[str(call_id)] = _text(getattr(message, "content", ""))


def _text(content: object) -> str:
    return content if isinstance(content, str) else json.dumps(content, default=str)


def _one_line(text: str, limit: int = SUMMARY_CHARS) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _step(kind: StepKind, action: str, summary: str, **fields: Any) -> TraceStep:
    return TraceStep(number=0, kind=kind, action=action, summary=summary, **fields)


def _steps_from_events(
    events: Iterable[AuditEvent], facts: _CheckpointFacts, customer_id: int | None
) -> list[TraceStep]:
    steps: list[TraceStep] = []
    tool_steps: dict[str, int] = {}  # tool call id -> index of its step in ``steps``
    for event in events:
        details = event.details
        action = event.action
        call_id = event.tool_call_id
        if action == "gate.verdict" and call_id:
            tool_steps[call_id] = len(steps)
            steps.append(_gate_step(event, facts))
        elif action == "tool.execution" and call_id and call_id in tool_steps:
            index = tool_steps[call_id]
            steps[index] = _with_result(steps[index], event, facts)
        elif action == "tool.execution":
            steps.append(_with_result(_step("tool_call", "tool.execution", "",
                                            tool=str(details.get("tool") or ""),
                                            tool_call_id=call_id, at=event.timestamp),
                                      event, facts))
        elif action == "email.received":
            steps.append(_step("email", action, _received(details, customer_id),
                               at=event.timestamp, actor=event.actor))
        elif action == "safety.check":
            steps.append(_step("safety_check", action, _safety_finding(details, facts.risk),
                               at=event.timestamp, actor=event.actor))
        elif action == "model.call":
            steps.append(_model_step(event))
        elif action == "triage.decision":
            steps.append(_step("decision", action, _decision(details, event.reason),
                               at=event.timestamp, actor=event.actor,
                               detail=facts.decision.get("rationale")))
        elif action.startswith("review."):
            steps.append(_review_step(event))
        elif action == "case.outcome":
            steps.append(_step("outcome", action, _outcome(details), at=event.timestamp,
                               actor=event.actor, reason=event.reason))
        else:
            summary = " ".join(part for part in (event.outcome, event.reason or "") if part)
            steps.append(_step("event", action, _one_line(summary), at=event.timestamp,
                               actor=event.actor, tool_call_id=call_id))
    return _name_proposals(steps)


def _name_proposals(steps: list[TraceStep]) -> list[TraceStep]:
    """"proposes 3 tool calls" becomes "proposes get_current_date, run_sql_query, ...": the
    gate's verdicts that follow a model call are on the calls it proposed."""
    named = list(steps)
    for index, step in enumerate(steps):
        if step.kind != "model_call" or not step.summary.startswith("proposes "):
            continue
        tools: list[str] = []
        for later in steps[index + 1:]:
            if later.kind != "tool_call":
                break
            tools.append(later.tool or "?")
        if tools:
            named[index] = step.model_copy(update={"summary": "proposes " + ", ".join(tools)})
    return named


def _steps_from_checkpoint(facts: _CheckpointFacts) -> list[TraceStep]:
    steps: list[TraceStep] = []
    for record in facts.gate_log:
        call_id = str(record.get("tool_call_id") or "")
        step = _step("tool_call", "gate.verdict", "", phase=record.get("phase"),
                     tool=record.get("tool"), tool_call_id=call_id,
                     verdict=record.get("verdict"), reason=record.get("reason") or None)
        steps.append(_summarised(step, facts, ran=call_id in facts.evidence
                                 or (record.get("verdict") == "allow")))
    if facts.decision:
        steps.append(_step("decision", "triage.decision", _decision(facts.decision, None),
                           detail=facts.decision.get("rationale")))
    return steps


def _received(details: Mapping[str, Any], customer_id: int | None) -> str:
    if details.get("verified_customer"):
        who = f"from customer #{customer_id}" if customer_id is not None else "from a customer"
    else:
        who = "sender not verified as a customer (catalog answers only)"
    size = _int(details.get("body_chars"))
    flags = details.get("flags") or []
    parts = [who]
    if size is not None:
        parts.append(f"{size} characters")
    if flags:
        parts.append("input flags: " + ", ".join(str(f) for f in flags))
    return ", ".join(parts)


def _safety_finding(details: Mapping[str, Any], risk: Mapping[str, Any]) -> str:
    level = str(details.get("level") or risk.get("level") or "none")
    flags = [f for f in risk.get("flags") or [] if isinstance(f, Mapping)]
    if not flags and level in ("none", "low", ""):
        return "no risk found"
    found: dict[str, list[str]] = {}
    for flag in flags:
        words = f'"{flag.get("evidence")}"' if flag.get("evidence") else "model classifier"
        where = str(flag.get("where") or "")
        key = f"{flag.get('category')} ({words}"
        found.setdefault(key, [])
        if where and where not in found[key]:
            found[key].append(where)
    findings = "; ".join(f"{key} in the {' and '.join(places)})" if places else f"{key})"
                         for key, places in found.items())
    summary = f"{level} risk: {findings or details.get('reason_code') or 'flagged'}"
    if details.get("forced") or risk.get("forced_escalation"):
        queue = risk.get("queue")
        summary += " -> must be escalated" + (f" to {queue}" if queue else "")
    return summary


def _model_step(event: AuditEvent) -> TraceStep:
    details = event.details
    calls = _int(details.get("tool_calls"))
    if calls is None:
        summary = "answered"
    elif calls == 0:
        summary = "proposes no tool call"
    else:
        summary = f"proposes {calls} tool call{'s' if calls != 1 else ''}"
    return _step("model_call", "model.call", summary, at=event.timestamp, actor=event.actor,
                 phase=str(details.get("phase") or "") or None,
                 input_tokens=_int(details.get("input_tokens")),
                 output_tokens=_int(details.get("output_tokens")),
                 duration_ms=_float(details.get("duration_ms")))


def _gate_step(event: AuditEvent, facts: _CheckpointFacts) -> TraceStep:
    details = event.details
    call_id = event.tool_call_id or ""
    recorded = facts.verdicts.get(call_id) or {}
    verdict = str(details.get("verdict") or recorded.get("verdict") or "")
    reason = event.reason or recorded.get("reason") or None
    step = _step("tool_call", "gate.verdict", "", at=event.timestamp,
                 phase=str(details.get("phase") or recorded.get("phase") or "") or None,
                 tool=str(details.get("tool") or recorded.get("tool") or ""),
                 tool_call_id=call_id, verdict=verdict, reason=reason)
    return _summarised(step, facts, ran=False)


def _summarised(step: TraceStep, facts: _CheckpointFacts, *, ran: bool) -> TraceStep:
    """The step's one line before (or without) its execution: what the gate said."""
    if step.verdict == "deny":
        summary = f"not run: {step.reason or 'denied'}"
        proposed = _proposed(step, facts)
        return step.model_copy(update={"summary": _one_line(summary), "detail": proposed})
    if step.verdict == "review":
        return step.model_copy(update={"summary": _one_line(
            f"held for a reviewer: {step.reason or ''}".rstrip(": "))})
    if ran:
        return _with_result(step, None, facts)
    return step.model_copy(update={"summary": "allowed"})


def _proposed(step: TraceStep, facts: _CheckpointFacts) -> str | None:
    """What a refused call would have done, in the model's own words (for a draft: its facts)."""
    args = facts.arguments.get(step.tool_call_id or "")
    if not args:
        return None
    if step.tool == "draft_customer_email":
        findings = [str(f) for f in args.get("findings") or []]
        said = " ".join(findings or [str(args.get("summary") or "")]).strip()
        return f"the refused reply said: {said}" if said else None
    if step.tool == "run_sql_query":
        return str(args.get("query") or "") or None
    return _one_line(json.dumps(args, default=str), 400)


def _with_result(step: TraceStep, event: AuditEvent | None, facts: _CheckpointFacts) -> TraceStep:
    call_id = step.tool_call_id or ""
    details: Mapping[str, Any] = event.details if event is not None else {}
    evidence = facts.evidence.get(call_id) or {}
    tool = step.tool or str(details.get("tool") or "")
    failed = event is not None and event.outcome == "failure"
    detail: str | None = None
    if tool == "run_sql_query" or evidence.get("sql"):
        rows = _int(details.get("row_count"))
        rows = rows if rows is not None else _int(evidence.get("row_count"))
        sql = str(evidence.get("sql") or "")
        detail = sql or None
        if failed or evidence.get("outcome") == "refused":
            summary = "refused: " + (event.reason if event and event.reason else
                                     facts.results.get(call_id, "the database refused it"))
        else:
            summary = f"{rows if rows is not None else '?'} row{'s' if rows != 1 else ''}"
            if sql:  # the start of the query; ``detail`` has all of it
                summary += ": " + _one_line(sql, SQL_CHARS)
    elif evidence.get("policy_section_ids"):
        summary = "policy sections: " + ", ".join(evidence["policy_section_ids"])
    elif details.get("ticket_id") or tool == "create_escalation_ticket":
        ticket = facts.ticket
        queue = details.get("queue") or ticket.get("suggested_routing")
        summary = f"ticket {details.get('ticket_id') or ticket.get('ticket_id')} filed for {queue}"
        if ticket.get("priority"):
            summary += f" (priority {ticket['priority']})"
        detail = ticket.get("escalation_reason")
    elif tool == "draft_customer_email":
        version = details.get("draft_version")
        if details.get("valid", True):
            summary = f"draft v{version} written, valid: waits for a reviewer"
        else:
            problems = ", ".join(str(p) for p in details.get("problems") or [])
            summary = f"draft v{version} refused by validation: {problems}"
    else:
        result = facts.results.get(call_id)
        summary = result if result else ("failed" if failed else "done")
        if failed and event is not None and event.reason:
            summary = f"failed: {event.reason}"
    return step.model_copy(update={
        "summary": _one_line(summary), "detail": detail or step.detail,
        "duration_ms": _float(details.get("duration_ms")),
    })


def _decision(details: Mapping[str, Any], overridden: str | None) -> str:
    parts = [str(details.get("route") or "-"), str(details.get("reason_code") or "-")]
    if details.get("queue"):
        parts.append(f"queue {details['queue']}")
    summary = ", ".join(parts)
    return _one_line(summary + (f" ({overridden})" if overridden else ""))


def _review_step(event: AuditEvent) -> TraceStep:
    details = event.details
    decision = str(details.get("decision") or event.action.removeprefix("review."))
    parts = [f"{event.actor}: {decision}"]
    for key in ("reason_category", "queue", "edit_size"):
        if details.get(key) is not None:
            parts.append(f"{key.replace('_', ' ')} {details[key]}")
    if event.reason:
        parts.append(event.reason)
    return _step("review", event.action, _one_line(", ".join(parts)), at=event.timestamp,
                 actor=event.actor)


def _outcome(details: Mapping[str, Any]) -> str:
    status = str(details.get("status") or "").replace("_", " ")
    if details.get("queue") and details.get("status") == "escalated":
        return f"{status} to {details['queue']}"
    return status or "recorded"


__all__ = ["CaseTrace", "TraceStep", "build_trace", "case_trace"]
