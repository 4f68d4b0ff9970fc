"""Gate nodes and tool nodes: one gate before every node that executes tools.

A gate node rules on every tool call of the model's last message. Denied calls get a
ToolMessage with ``status="error"`` and the reason; calls that need review ``interrupt()`` with a
request shaped like langchain's HumanInTheLoopMiddleware. Everything before the interrupt is
pure (it re-runs on resume). Audit events are written after it, keyed so a re-run adds nothing.
Tool nodes run only what their gate approved; their side effects are idempotent, keyed by the
thread and the tool call id.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from mediavault.graph.approval_gate import (
    ARGUMENT_BUDGET_EXHAUSTED,
    GateFacts,
    GateVerdict,
    Phase,
    judge_tool_call,
)
from mediavault.graph.audit_trail import record_event
from mediavault.graph.context import Context
from mediavault.graph.ports import node_services
from mediavault.graph.state import EvidenceRecord, GateVerdictRecord, TriageState
from mediavault.tools.agent_tools import (
    ARGUMENT_SCHEMAS,
    InvestigationEnvironment,
    ToolArgumentsInvalid,
    parse_arguments,
    run_investigation_tool,
)
from mediavault.tools.fingerprint import digest


def last_ai_message(messages: Sequence[AnyMessage]) -> AIMessage | None:
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            return message
    return None


def proposed_calls(message: AIMessage | None) -> list[dict[str, Any]]:
    """Every call the model proposed, including ones whose arguments were not valid JSON."""
    if message is None:
        return []
    calls: list[dict[str, Any]] = [dict(call) for call in message.tool_calls]
    for bad in message.invalid_tool_calls:
        calls.append({"name": bad.get("name"), "args": None, "id": bad.get("id"),
                      "invalid": bad.get("error") or "arguments are not valid JSON"})
    return calls


def gate_facts(state: TriageState, context: Context, phase: Phase) -> GateFacts:
    risk = state.get("risk") or {}
    return GateFacts(
        phase=phase,
        sender=str(state["email"]["sender"]),
        forced_escalation=bool(risk.get("forced_escalation")),
        forced_reason=risk.get("reason_code"),
        tool_calls_used=int(state.get("tool_calls", 0)),
        max_tool_calls=context.max_tool_calls,
        sql_max_rows=context.sql_max_rows,
        sql_dialect=context.sql_dialect,
        review_tools=context.review_tools,
    )


def _hitl_request(calls: list[tuple[dict[str, Any], GateVerdict]]) -> dict[str, Any]:
    return {
        "action_requests": [
            {"name": call["name"], "args": call.get("args") or {}, "description": verdict.reason}
            for call, verdict in calls
        ],
        "review_configs": [
            {"action_name": call["name"], "allowed_decisions": ["approve", "edit", "reject"]}
            for call, _ in calls
        ],
    }


def run_gate(state: TriageState, runtime: Runtime[Context], phase: Phase) -> dict[str, Any]:
    """Rule on the last message's tool calls; returns the state update of a gate node."""
    context = runtime.context
    message = last_ai_message(state.get("messages", []))
    calls = proposed_calls(message)
    facts = gate_facts(state, context, phase)
    verdicts: list[tuple[dict[str, Any], GateVerdict]] = []
    used = facts.tool_calls_used
    for call in calls:
        if str(call.get("invalid") or "").startswith(ARGUMENT_BUDGET_EXHAUSTED):
            verdict = GateVerdict.deny(str(call["invalid"]), code="argument_budget_exhausted")
        elif call.get("invalid"):
            verdict = GateVerdict.deny(f"tool call arguments are not valid JSON: {call['invalid']}")
        else:
            verdict = judge_tool_call(call, _with_used(facts, used))
        if verdict.verdict != "deny":
            used += 1
        verdicts.append((call, verdict))

    to_review = [(c, v) for c, v in verdicts if v.verdict == "review"]
    if to_review:
        response = interrupt(_hitl_request(to_review))
        decisions = _decisions(response, len(to_review))
        reviewed = iter(decisions)
        resolved: list[tuple[dict[str, Any], GateVerdict]] = []
        for call, verdict in verdicts:
            if verdict.verdict == "review":
                call, verdict = _apply_review(call, next(reviewed), facts)
            resolved.append((call, verdict))
        verdicts = resolved

    if phase != "investigate":
        # Drafting and escalating act once per turn; a further call in the same message is
        # refused here, so that it, too, is answered and audited instead of silently dropped.
        allowed = [i for i, (_, verdict) in enumerate(verdicts) if verdict.verdict == "allow"]
        for i in allowed[1:]:
            extra = verdicts[i][0]
            verdicts[i] = (extra, GateVerdict.deny(
                f"only one {extra.get('name')} call per turn; the first one was used"))

    tool_messages: list[ToolMessage] = []
    approved: list[dict[str, Any]] = []
    log: list[GateVerdictRecord] = []
    budget_note: str | None = None
    must_escalate: str | None = None
    for call, verdict in verdicts:
        call_id = str(call.get("id") or "")
        log.append({"phase": phase, "tool_call_id": call_id, "tool": str(call.get("name")),
                    "verdict": verdict.verdict, "reason": verdict.reason})
        if verdict.verdict == "allow":
            approved.append({"id": call_id, "name": call["name"], "args": call.get("args") or {}})
        else:
            if verdict.code == "argument_budget_exhausted":
                budget_note = "argument budget of the email exhausted"
            elif verdict.code == "budget_exhausted":
                budget_note = f"tool call budget of {context.max_tool_calls} exhausted"
            elif verdict.code == "must_escalate" and must_escalate is None:
                must_escalate = verdict.reason
            tool_messages.append(ToolMessage(
                content=f"Denied by the approval gate: {verdict.reason}",
                tool_call_id=call_id or "missing-id",
                name=str(call.get("name") or "unknown"),
                status="error",
            ))
    audit_verdicts(state, runtime, log)
    update: dict[str, Any] = {"approved_calls": approved, "gate_log": log}
    if tool_messages:
        update["messages"] = tool_messages
    if budget_note and phase == "investigate":
        update["budget_exceeded"] = budget_note
    if must_escalate and phase == "draft":
        update.update(must_escalate=True, escalation_reason=must_escalate)
    elif budget_note and phase != "investigate":
        # Drafting or escalating with nothing left to spend: a person takes the email.
        update.update(must_escalate=True, escalation_reason=budget_note)
    return update


def _with_used(facts: GateFacts, used: int) -> GateFacts:
    from dataclasses import replace

    return replace(facts, tool_calls_used=used)


def _decisions(response: object, expected: int) -> list[Mapping[str, Any]]:
    decisions: Any = response.get("decisions") if isinstance(response, Mapping) else None
    if not isinstance(decisions, list) or len(decisions) != expected:
        # A malformed answer never approves anything.
        return [{"type": "reject", "message": "the review answer was malformed"}] * expected
    return [d if isinstance(d, Mapping) else {"type": "reject"} for d in decisions]


def _apply_review(
    call: dict[str, Any], decision: Mapping[str, Any], facts: GateFacts
) -> tuple[dict[str, Any], GateVerdict]:
    kind = decision.get("type")
    if kind == "approve":
        return call, GateVerdict.allow(call.get("args"))
    if kind == "edit":
        edited = decision.get("edited_action") or {}
        new_call = {**call, "args": edited.get("args") if isinstance(edited, Mapping) else None}
        if isinstance(edited, Mapping) and edited.get("name") not in (None, call.get("name")):
            return new_call, GateVerdict.deny("an edit may change arguments, not the tool")
        # Edited arguments pass through the gate again; they cannot ask for review twice.
        verdict = judge_tool_call(new_call, _no_review(facts))
        return new_call, verdict
    message = str(decision.get("message") or "rejected by the reviewer")
    return call, GateVerdict.deny(f"rejected by a reviewer: {message}"[:500])


def _no_review(facts: GateFacts) -> GateFacts:
    from dataclasses import replace

    return replace(facts, review_tools=())


def audit_verdicts(
    state: TriageState, runtime: Runtime[Context], log: list[GateVerdictRecord]
) -> None:
    for record in log:
        record_event(
            runtime,
            "gate.verdict",
            outcome="success" if record["verdict"] == "allow" else "failure",
            reason=record["reason"] or None,
            thread_id=state.get("thread_id"),
            email_id=str(state["email"]["email_id"]),
            tool_call_id=record["tool_call_id"],
            actor="gate",
            details={"tool": record["tool"], "verdict": record["verdict"],
                     "phase": record["phase"]},
            event_id=f"{state.get('thread_id')}:gate:{record['phase']}:{record['tool_call_id']}",
        )


@contextmanager
def investigation_environment(
    state: TriageState, runtime: Runtime[Context]
) -> Iterator[InvestigationEnvironment]:
    """The investigation tools' view of the world, scoped to the verified sender.

    One scoped session serves every approved call of the node (opened on the first query,
    closed when the node ends): building the sender's scope is most of a query's cost.
    """
    services = node_services(runtime)
    customer = customer_identity(state)
    with ExitStack() as stack:
        sessions: list[Any] = []

        def session() -> Any:
            if not sessions:
                sessions.append(stack.enter_context(services.business_db.session(customer)))
            return sessions[0]

        def run_query(sql: str) -> dict[str, Any]:
            return dict(session().run_query(sql).model_dump(mode="json"))

        def describe_schema() -> str:
            return str(session().describe_schema().as_text())

        def search_policy(area: str | None, query: str | None, top_k: int) -> list[dict[str, Any]]:
            from mediavault.tools.policy_retrieval import default_policy_library

            hits = default_policy_library().search(policy_area=area, query=query, top_k=top_k)
            return [dict(hit.as_dict()) for hit in hits]

        yield InvestigationEnvironment(
            business_date=services.business_date,
            run_query=run_query,
            describe_schema=describe_schema,
            search_policy=search_policy,
        )


def customer_identity(state: TriageState) -> Any:
    from mediavault.tools.business_db.sessions import CustomerIdentity

    customer = state.get("customer")
    return CustomerIdentity.model_validate(customer) if customer else None


def investigation_tools(state: TriageState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Run the investigation calls the gate approved; results go back to the model."""
    with investigation_environment(state, runtime) as env:
        messages, evidence = _run_approved_calls(state, runtime, env)
    return {
        "messages": messages,
        "evidence": evidence,
        "approved_calls": [],
        "tool_calls": int(state.get("tool_calls", 0)) + len(state.get("approved_calls", [])),
    }


def _run_approved_calls(
    state: TriageState, runtime: Runtime[Context], env: InvestigationEnvironment
) -> tuple[list[ToolMessage], list[EvidenceRecord]]:
    messages: list[ToolMessage] = []
    evidence: list[EvidenceRecord] = []
    for call in state.get("approved_calls", []):
        started = time.perf_counter()
        try:
            arguments = parse_arguments(call["name"], call["args"])
            result = run_investigation_tool(call["name"], arguments, env)
        except ToolArgumentsInvalid as problem:  # the gate checked; this is the second layer
            messages.append(ToolMessage(content=str(problem), tool_call_id=call["id"],
                                        name=call["name"], status="error"))
            continue
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        messages.append(ToolMessage(
            content=result.content, tool_call_id=call["id"], name=call["name"],
            status="success" if result.ok else "error",
        ))
        record: EvidenceRecord = {"tool": call["name"], "tool_call_id": call["id"],
                                  "outcome": "success" if result.ok else "refused"}
        if result.sql is not None:
            record["sql"] = result.sql[:500]
        if result.row_count is not None:
            record["row_count"] = result.row_count
        if result.policy_section_ids:
            record["policy_section_ids"] = result.policy_section_ids
        evidence.append(record)
        record_event(
            runtime,
            "tool.execution",
            outcome="success" if result.ok else "failure",
            reason=None if result.ok else result.content[:200],
            thread_id=state.get("thread_id"),
            email_id=str(state["email"]["email_id"]),
            tool_call_id=call["id"],
            actor="agent",
            details={"tool": call["name"], "args_digest": _digest(call["args"]),
                     "row_count": result.row_count, "duration_ms": elapsed_ms},
            event_id=f"{state.get('thread_id')}:tool:{call['id']}",
        )
    return messages, evidence


def _digest(value: object) -> str:
    return digest(value)


__all__ = [
    "ARGUMENT_SCHEMAS",
    "customer_identity",
    "investigation_tools",
    "last_ai_message",
    "proposed_calls",
    "run_gate",
]
