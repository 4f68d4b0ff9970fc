"""The nodes of the Email Triage graph, named after the stages of the skill."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.tool import invalid_tool_call
from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import BaseModel, Field

from mediavault.graph.approval_gate import (
    ARGUMENT_BUDGET_EXHAUSTED,
    judge_tool_call,
    needs_human_review,
)
from mediavault.graph.audit_trail import record_event, write_pending
from mediavault.graph.context import Context
from mediavault.graph.decision import TriageDecision, enforce_decision
from mediavault.graph.draft_evidence import grounding_evidence
from mediavault.graph.gates import (
    audit_verdicts,
    customer_identity,
    gate_facts,
    last_ai_message,
    run_gate,
)
from mediavault.graph.inbound_email import TRUNCATION_MARKER, InboundEmail
from mediavault.graph.ports import SentReply, node_services
from mediavault.graph.prompts import PHASE_INSTRUCTIONS, render_email, render_facts, system_prompt
from mediavault.graph.safety.reader_text import html_to_text, looks_like_html, split_quoted_history
from mediavault.graph.safety.rules import RiskCategory, RiskFlag, assess_risk, raise_only
from mediavault.graph.state import GateVerdictRecord, TriageState
from mediavault.policies import policy_rules
from mediavault.tools.agent_tools import (
    CREATE_ESCALATION_TICKET,
    DRAFT_CUSTOMER_EMAIL,
    INVESTIGATION_TOOLS,
    parse_arguments,
)
from mediavault.tools.drafting.edits import edit_size
from mediavault.tools.drafting.reply import DraftRequest, prepare_draft, validate_reply
from mediavault.tools.escalation_ticket import (
    EscalationRequest,
    QueryEvidence,
    TicketEvidence,
    build_ticket,
)


def thread_id_for(email_id: str) -> str:
    """A stable thread id per email: triaging the same email again resumes the same thread."""
    return "email-" + hashlib.sha256(email_id.encode()).hexdigest()[:24]


def _email_id(state: TriageState) -> str:
    return str(state["email"]["email_id"])


def _audit(
    state: TriageState,
    runtime: Runtime[Context],
    action: str,
    key: str,
    *,
    outcome: str = "success",
    reason: str | None = None,
    actor: str = "agent",
    details: dict[str, object] | None = None,
    tool_call_id: str | None = None,
) -> None:
    thread = state.get("thread_id")
    record_event(
        runtime,
        action,
        outcome=outcome,
        reason=reason,
        thread_id=thread,
        email_id=_email_id(state),
        tool_call_id=tool_call_id,
        actor=actor,
        details=details,
        event_id=f"{thread}:{key}",
    )


def _instruction(phase: str, extra: str = "") -> HumanMessage:
    text = f"[MediaVault instruction] {PHASE_INSTRUCTIONS[phase]}"
    return HumanMessage(content=f"{text}\n{extra}".strip())


def _invoke(
    model: Any, messages: list[Any], state: TriageState, runtime: Runtime[Context], what: str
) -> AIMessage:
    """Call the model and audit the call (token usage when the model reports it)."""
    started = time.perf_counter()
    response = model.invoke(messages)
    if not isinstance(response, AIMessage):
        raise TypeError(f"model returned {type(response).__name__}, not an AIMessage")
    usage: dict[str, Any] = dict(response.usage_metadata or {})
    count = int(state.get("model_calls", 0)) + 1
    _audit(state, runtime, "model.call", f"model:{what}:{len(state.get('messages', []))}:{count}",
           actor="model",
           details={"phase": what, "input_tokens": usage.get("input_tokens"),
                    "output_tokens": usage.get("output_tokens"),
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "tool_calls": len(response.tool_calls)})
    return _with_call_ids(response, f"{what}-{len(state.get('messages', []))}",
                          _call_ids_used(state.get("messages", [])),
                          _argument_bytes_used(state.get("messages", [])))


#: Tool call arguments larger than this (as JSON) never enter the state: no tool takes that
#: much, and every checkpoint would carry them again.
MAX_TOOL_ARGUMENT_CHARS = 50_000
#: Tool arguments are flat objects with lists of strings; deeper nesting is refused, since
#: the checkpointer cannot store arbitrarily deep values.
MAX_TOOL_ARGUMENT_DEPTH = 8
#: A model's text longer than this is cut before it enters the state.
MAX_MODEL_TEXT_CHARS = 20_000
#: Tool calls one model message may carry; the next few are answered as refused, and any
#: beyond those are dropped from the message (no ToolMessage is owed for a call never kept).
MAX_TOOL_CALLS_PER_MESSAGE = 8
MAX_REFUSED_CALLS_KEPT = 8
#: Argument bytes (as JSON) across one message's calls, and across the whole email.
MAX_ARGUMENT_BYTES_PER_MESSAGE = 64_000
MAX_ARGUMENT_BYTES_PER_EMAIL = 256_000
#: Text kept of a refused call's raw arguments, error, name or id.
_MAX_CALL_FIELD_CHARS = 300


def _call_ids_used(messages: list[Any]) -> set[str]:
    used: set[str] = set()
    for message in messages:
        if isinstance(message, AIMessage):
            used.update(str(c.get("id")) for c in message.tool_calls if c.get("id"))
            used.update(str(c.get("id")) for c in message.invalid_tool_calls if c.get("id"))
        elif isinstance(message, ToolMessage):
            used.add(str(message.tool_call_id))
    return used


def _argument_problem(args: object) -> str | None:
    depth, stack = 0, [(args, 1)]
    while stack:
        value, level = stack.pop()
        depth = max(depth, level)
        if depth > MAX_TOOL_ARGUMENT_DEPTH:
            return f"arguments nested deeper than {MAX_TOOL_ARGUMENT_DEPTH} levels"
        if isinstance(value, dict):
            stack.extend((v, level + 1) for v in value.values())
        elif isinstance(value, list | tuple):
            stack.extend((v, level + 1) for v in value)
    try:
        size = len(json.dumps(args, default=str))
    except (TypeError, ValueError):
        return "arguments are not plain JSON values"
    if size > MAX_TOOL_ARGUMENT_CHARS:
        return f"arguments of {size} characters; at most {MAX_TOOL_ARGUMENT_CHARS}"
    return None


def _with_call_ids(message: AIMessage, prefix: str, used: set[str] | None = None,
                   email_bytes: int = 0) -> AIMessage:
    """Every call gets an id of its own and arguments the state can hold.

    Some servers omit ids, and a hostile model reuses them: two calls sharing an id would share
    one ToolMessage and one audit key, hiding the second execution. Missing and repeated ids
    are replaced; oversized or deeply nested arguments become invalid calls the gate refuses.
    Whatever the model sends, what enters the state is bounded: at most
    ``MAX_TOOL_CALLS_PER_MESSAGE`` calls run per message (a few more are answered as refused,
    the rest dropped), arguments are capped per message and per email, content of any shape
    becomes bounded text, and provider extras are not kept.
    """
    seen = set(used or ())
    calls: list[Any] = []
    invalid: list[Any] = []
    message_bytes = 0
    proposed = [*message.tool_calls, *message.invalid_tool_calls]
    kept = proposed[: MAX_TOOL_CALLS_PER_MESSAGE + MAX_REFUSED_CALLS_KEPT]
    for index, call in enumerate(kept):
        call_id = str(call.get("id") or "")[:_MAX_CALL_FIELD_CHARS]
        if not call_id or call_id in seen:
            call_id, suffix = f"{prefix}-{index}", 0
            while call_id in seen:
                suffix += 1
                call_id = f"{prefix}-{index}-{suffix}"
        seen.add(call_id)
        name = str(call.get("name") or "")[:_MAX_CALL_FIELD_CHARS]
        if index >= len(message.tool_calls):
            invalid.append(invalid_tool_call(
                name=name, args=None, id=call_id,
                error=str(call.get("error") or "arguments are not valid JSON")[
                    :_MAX_CALL_FIELD_CHARS]))
            continue
        problem = _argument_problem(call.get("args"))
        size = _argument_bytes(call.get("args")) if problem is None else 0
        if problem is None and index >= MAX_TOOL_CALLS_PER_MESSAGE:
            problem = f"more than {MAX_TOOL_CALLS_PER_MESSAGE} tool calls in one message"
        elif problem is None and message_bytes + size > MAX_ARGUMENT_BYTES_PER_MESSAGE:
            problem = (f"the calls of one message carry more than "
                       f"{MAX_ARGUMENT_BYTES_PER_MESSAGE} bytes of arguments")
        elif problem is None and email_bytes + message_bytes + size > (
                MAX_ARGUMENT_BYTES_PER_EMAIL):
            problem = (f"{ARGUMENT_BUDGET_EXHAUSTED}: this email's tool calls may carry "
                       f"{MAX_ARGUMENT_BYTES_PER_EMAIL} bytes in all")
        if problem is None:
            message_bytes += size
            calls.append({**call, "id": call_id, "name": name})
        else:
            invalid.append(invalid_tool_call(name=name, args=None, id=call_id,
                                             error=problem))
    content = _bounded_content(message.content)
    if len(proposed) > len(kept):
        content = f"{content} [{len(proposed) - len(kept)} further tool calls dropped]"
    # Only what the graph reads is kept: provider extras (raw argument strings, reasoning
    # blobs, metadata) would otherwise ride along in every checkpoint.
    return AIMessage(
        content=content, tool_calls=calls, invalid_tool_calls=invalid,
        id=message.id, name=message.name, usage_metadata=message.usage_metadata,
        response_metadata=_small_mapping(message.response_metadata),
    )


def _argument_bytes(args: object) -> int:
    try:
        return len(json.dumps(args, default=str).encode())
    except (TypeError, ValueError):
        return MAX_ARGUMENT_BYTES_PER_EMAIL + 1


def _bounded_content(content: object) -> str:
    """A model's content of any shape (text, a list of blocks, anything) as bounded text."""
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        parts = []
        size = 0
        for block in content:
            part = block if isinstance(block, str) else (
                block.get("text") if isinstance(block, dict) else None)
            if isinstance(part, str):
                parts.append(part)
                size += len(part)
            if size > MAX_MODEL_TEXT_CHARS:
                break
        text = "\n".join(parts)  # images, audio and other blocks are not kept
    else:
        text = ""
    if len(text) > MAX_MODEL_TEXT_CHARS:
        text = text[:MAX_MODEL_TEXT_CHARS] + " [... cut by MediaVault]"
    return text


def _small_mapping(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {}
    try:
        return dict(value) if len(json.dumps(value, default=str)) <= 2_000 else {}
    except (TypeError, ValueError):
        return {}


def _argument_bytes_used(messages: list[Any]) -> int:
    """Argument bytes the model's kept tool calls carried so far in this email."""
    return sum(_argument_bytes(call.get("args")) for message in messages
               if isinstance(message, AIMessage) for call in message.tool_calls)


# ------------------------------------------------------------------------------------ ingest


def ingest(state: TriageState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Validate and normalise the email, resolve the sender, open the case."""
    email = InboundEmail.model_validate(state["email"])
    body = email.body
    if looks_like_html(body):
        body = html_to_text(body)
    fresh, quoted = split_quoted_history(body)
    email = email.model_copy(update={"body": fresh})
    services = node_services(runtime)
    customer = None
    if email.sender_verified:
        identity = services.business_db.resolve_sender(email.sender)
        customer = identity.model_dump(mode="json") if identity is not None else None
    thread_id = str(get_config().get("configurable", {}).get("thread_id")
                    or thread_id_for(email.email_id))
    store = services.case_store
    with store.atomic():
        store.record_email(email)
        store.open_case(email.email_id, thread_id=thread_id, sender=email.sender,
                        customer_id=customer["customer_id"] if customer else None,
                        received_at=email.received_at)
    email_dict = email.model_dump(mode="json")
    _audit({"email": email_dict, "thread_id": thread_id}, runtime, "email.received", "ingest",
           details={"verified_customer": customer is not None, "flags": list(email.input_flags),
                    "body_chars": len(email.body)})
    return {
        "email": email_dict,
        "thread_id": thread_id,
        "customer": customer,
        "quoted_history": quoted,
        "messages": [SystemMessage(content=system_prompt()),
                     HumanMessage(content=render_email(email_dict, quoted))],
        "model_calls": 0,
        "tool_calls": 0,
        "draft_attempts": 0,
        "revisions": 0,
        "started_at": time.time(),
    }


# ------------------------------------------------------------------------------ safety_check


def safety_check(state: TriageState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Deterministic risk rules; a forced escalation here cannot be undone later."""
    email = state["email"]
    risk = assess_risk(str(email.get("subject", "")), str(email.get("body", "")),
                       quoted=state.get("quoted_history", ""))
    if runtime.context.risk_classifier:
        risk = raise_only(risk, _classifier_flags(state, runtime))
    customer = state.get("customer")
    risk_record = {
        "forced_escalation": risk.forced_escalation,
        "reason_code": risk.reason_code,
        "queue": risk.queue,
        "level": risk.level,
        "flags": [flag.model_dump(mode="json") for flag in risk.flags],
    }
    if not risk.forced_escalation and _was_truncated(email):
        # Part of the email was never read, by the rules or the model: a person reads it all.
        risk_record.update(forced_escalation=True, reason_code="other", level="high",
                           queue=policy_rules().queue_for("other"),
                           unread_part="the email was too long to check in full")
    facts = {
        "sender_verified": customer is not None,
        "customer_id": customer["customer_id"] if customer else None,
        "customer_first_name": customer["first_name"] if customer else None,
        "forced_escalation": risk.forced_escalation,
        "forced_reason_code": risk.reason_code,
        "risk_categories": sorted({flag.category for flag in risk.flags}),
    }
    _audit(state, runtime, "safety.check", "safety", actor="system",
           outcome="success", details={"level": risk.level, "reason_code": risk.reason_code,
                                       "forced": risk.forced_escalation})
    return {"risk": risk_record,
            "messages": [HumanMessage(content="Case facts from MediaVault systems:\n"
                                      + render_facts(facts))]}


_TRUNCATION_NOTE = TRUNCATION_MARKER.split("{", 1)[0].strip()


def _was_truncated(email: dict[str, Any]) -> bool:
    return "truncated" in (email.get("input_flags") or ()) or _TRUNCATION_NOTE in str(
        email.get("body", ""))


class RiskClassification(BaseModel):
    """A model's reading of the risks in an email (it can only add to the rules' findings)."""

    categories: list[RiskCategory] = Field(
        default_factory=list,
        description="Risk categories present: legal_threat, safety_concern, harassment, "
        "privacy_request, media_inquiry, fraud_chargeback. Empty when none.",
    )
    evidence: str = Field(default="", max_length=200, description="The words that show it.")


def _classifier_flags(state: TriageState, runtime: Runtime[Context]) -> list[RiskFlag]:
    """Risk flags from the model classifier; a failing or malformed classifier adds nothing."""
    structured = node_services(runtime).model_with_output(RiskClassification)
    try:
        result = structured.invoke([*state["messages"], HumanMessage(
            content="[MediaVault instruction] Classify the risks in the email above.")])
    except Exception:  # the rules' assessment stands on its own
        return []
    if not isinstance(result, RiskClassification):
        return []
    evidence = result.evidence or "model classifier"
    return [RiskFlag(category=category, evidence=evidence, where="body", source="classifier")
            for category in result.categories]


# ------------------------------------------------------------------------------- investigate


def investigate(state: TriageState, runtime: Runtime[Context]) -> dict[str, Any]:
    """One turn of the bounded tool loop: the model proposes read-only tool calls."""
    context = runtime.context
    calls = int(state.get("model_calls", 0))
    if state.get("budget_exceeded"):  # the gate spent the tool budget: no further turns
        return {}
    if calls >= context.max_model_calls:
        return {"budget_exceeded": f"model call budget of {context.max_model_calls} exhausted"}
    if time.time() - float(state.get("started_at", time.time())) > context.time_budget_seconds:
        return {"budget_exceeded": f"time budget of {context.time_budget_seconds:g}s exhausted"}
    model = node_services(runtime).model_with_tools(INVESTIGATION_TOOLS)
    try:
        response = _invoke(model, [*state["messages"], _instruction("investigate")], state,
                           runtime, "investigate")
    except Exception as problem:  # a model outage ends in escalation, never in a crash
        return {"budget_exceeded": f"model unavailable: {_short(problem)}",
                "model_calls": calls + 1}
    return {"messages": [response], "model_calls": calls + 1}


def route_after_investigate(state: TriageState) -> str:
    if state.get("budget_exceeded"):
        return "decide"
    message = last_ai_message(state.get("messages", []))
    if message is not None and (message.tool_calls or message.invalid_tool_calls):
        return "investigation_gate"
    return "decide"


def investigation_gate(state: TriageState, runtime: Runtime[Context]) -> dict[str, Any]:
    """The approval gate before the investigation tools."""
    return run_gate(state, runtime, "investigate")


def route_after_investigation_gate(state: TriageState) -> str:
    if state.get("approved_calls"):
        return "investigation_tools"
    return "decide" if state.get("budget_exceeded") else "investigate"


# ------------------------------------------------------------------------------------ decide


def decide(state: TriageState, runtime: Runtime[Context]) -> dict[str, Any]:
    """A structured decision; code enforces forced escalation and the policy's routes."""
    risk = state.get("risk") or {}
    forced = risk.get("reason_code") if risk.get("forced_escalation") else None
    budget = state.get("budget_exceeded")
    proposed: TriageDecision | None = None
    problem: str | None = None
    if forced is None and budget is None:
        structured = node_services(runtime).model_with_output(TriageDecision)
        try:
            result = structured.invoke([*state["messages"], _instruction("decide")])
            proposed = result if isinstance(result, TriageDecision) else None
            if proposed is None:
                problem = "the model's decision could not be read"
        except Exception as error:
            problem = f"the model's decision could not be read: {_short(error)}"
    decision = enforce_decision(proposed, forced_reason_code=forced, budget_exceeded=budget,
                                problem=problem)
    _audit(state, runtime, "triage.decision", "decide", outcome="success",
           reason=decision.overridden,
           details={"route": decision.route, "reason_code": decision.reason_code,
                    "queue": decision.queue})
    update: dict[str, Any] = {"decision": decision.model_dump(mode="json"),
                              "model_calls": int(state.get("model_calls", 0)) + 1}
    if decision.route == "escalate":
        update["escalation_reason"] = (risk.get("unread_part") or decision.overridden
                                       or decision.rationale)
    return update


def route_after_decide(state: TriageState) -> str:
    return "draft" if state["decision"]["route"] == "draft" else "escalate"


# ------------------------------------------------------------------------------------- draft


def draft(state: TriageState, runtime: Runtime[Context]) -> dict[str, Any]:
    """The model writes the structured content of the reply (the draft tool renders it)."""
    attempts = int(state.get("draft_attempts", 0)) + 1
    extra = ""
    if state.get("draft_problems"):
        extra = "Fix these problems of the previous draft: " + "; ".join(state["draft_problems"])
    model = node_services(runtime).model_with_tools([DRAFT_CUSTOMER_EMAIL])
    try:
        response = _invoke(model, [*state["messages"], _instruction("draft", extra)], state,
                           runtime, "draft")
    except Exception as problem:
        return {"draft_attempts": attempts, "must_escalate": True,
                "escalation_reason": f"model unavailable while drafting: {_short(problem)}"}
    return {"messages": [response], "draft_attempts": attempts}


def _retries_left(state: TriageState, context: Context) -> bool:
    return int(state.get("draft_attempts", 0)) <= context.max_draft_retries


def route_after_draft(state: TriageState, runtime: Runtime[Context]) -> str:
    message = last_ai_message(state.get("messages", []))
    if state.get("must_escalate"):
        return "escalate"
    if message is not None and (message.tool_calls or message.invalid_tool_calls):
        return "draft_gate"
    return "draft" if _retries_left(state, runtime.context) else "escalate"


def draft_gate(state: TriageState, runtime: Runtime[Context]) -> dict[str, Any]:
    """The approval gate before the draft tool."""
    update = run_gate(state, runtime, "draft")
    denials = [r["reason"] for r in update["gate_log"] if r["verdict"] != "allow"]
    if update.get("must_escalate"):
        pass  # the gate gave the reason: the safety check forced an escalation
    elif denials and not update["approved_calls"]:
        update["draft_problems"] = denials
        if not _retries_left(state, runtime.context):
            update["escalation_reason"] = "draft failed validation: " + "; ".join(denials)
    return update


def route_after_draft_gate(state: TriageState, runtime: Runtime[Context]) -> str:
    if state.get("approved_calls"):
        return "draft_tool"
    if state.get("must_escalate") or not _retries_left(state, runtime.context):
        return "escalate"
    return "draft"


def _sender_contacts(state: TriageState, runtime: Runtime[Context]) -> set[str]:
    customer = customer_identity(state)
    contacts = {str(state["email"]["sender"])}
    if customer is None:
        return contacts
    with node_services(runtime).business_db.session(customer) as session:
        return contacts | set(session.sender_contacts())


def draft_tool(state: TriageState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Render and validate the approved draft; a valid one waits for review."""
    call = state["approved_calls"][0]
    email = state["email"]
    customer = state.get("customer") or {}
    request = parse_arguments(DRAFT_CUSTOMER_EMAIL, call["args"])
    assert isinstance(request, DraftRequest)
    outcome = prepare_draft(
        request,
        customer_name=customer.get("first_name"),
        sender_address=str(email["sender"]),
        subject=str(email.get("subject", "")),
        allowed_contacts=_sender_contacts(state, runtime),
        evidence=grounding_evidence(state, runtime),
    )
    report = outcome.report
    provenance = [fact.model_dump(mode="json") for fact in outcome.provenance]
    problems = [f"{p.code}: {p.detail}" for p in report.problems]
    store = node_services(runtime).case_store
    with store.atomic():  # the draft and the case's new status are recorded together
        version = store.record_draft(
            _email_id(state), text=outcome.reply.body, source="model", valid=report.valid,
            problems=problems, policy_refs=list(outcome.reply.policy_refs),
            provenance=provenance,
        )
        if report.valid:
            store.set_outcome(_email_id(state), route="draft",
                              reason_code=state["decision"]["reason_code"],
                              risk_flags=_risk_names(state), status="awaiting_review")
    _audit(state, runtime, "tool.execution", f"tool:{call['id']}", tool_call_id=call["id"],
           outcome="success" if report.valid else "failure",
           details={"tool": DRAFT_CUSTOMER_EMAIL, "valid": report.valid,
                    "problems": [p.code for p in report.problems], "draft_version": version})
    draft_record = {**outcome.reply.model_dump(mode="json"), "valid": report.valid,
                    "problems": problems, "version": version, "source": "model",
                    "provenance": provenance}
    update: dict[str, Any] = {"approved_calls": [], "draft": draft_record}
    if report.valid:
        update["messages"] = [ToolMessage(content="Draft is valid and saved for review.",
                                          tool_call_id=call["id"], name=DRAFT_CUSTOMER_EMAIL)]
        update["draft_problems"] = []
    else:
        update["messages"] = [ToolMessage(content="Draft failed validation: " + "; ".join(problems),
                                          tool_call_id=call["id"], name=DRAFT_CUSTOMER_EMAIL,
                                          status="error")]
        update["draft_problems"] = problems
        if not _retries_left(state, runtime.context):
            update["escalation_reason"] = "draft failed validation: " + "; ".join(problems)
    return update


def route_after_draft_tool(state: TriageState, runtime: Runtime[Context]) -> str:
    draft_record = state.get("draft") or {}
    if draft_record.get("valid"):
        return "human_review"
    return "draft" if _retries_left(state, runtime.context) else "escalate"


# ------------------------------------------------------------------------------ human_review


def review_request(state: TriageState) -> dict[str, Any]:
    """The HumanInTheLoopMiddleware-shaped request a reviewer answers."""
    draft_record = state.get("draft") or {}
    decision = state.get("decision") or {}
    problems = state.get("draft_problems") or []
    description = (f"Reply to {state['email']['sender']} ({decision.get('reason_code')}). "
                   f"Approve, edit or reject the draft.")
    if problems:
        description += " The last edit was not accepted: " + "; ".join(problems)
    return {
        "action_requests": [{
            "name": "send_customer_email",
            "args": {"to": draft_record.get("to"), "subject": draft_record.get("subject"),
                     "body": draft_record.get("body")},
            "description": description,
        }],
        "review_configs": [{
            "action_name": "send_customer_email",
            "allowed_decisions": ["approve", "edit", "reject", "escalate"],
        }],
        "email_id": _email_id(state),
    }


def human_review(state: TriageState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Wait for a reviewer (review mode permitting) and apply the decision."""
    decision = state["decision"]
    if not needs_human_review(runtime.context.review, decision["reason_code"]):
        return {"review_decisions": [{"type": "approve", "reviewer": "auto", "auto": True}],
                "draft_problems": [], "review_outcome": "approved"}
    response = interrupt(review_request(state))
    answers = response.get("decisions") if isinstance(response, dict) else None
    answer: dict[str, Any] = answers[0] if isinstance(answers, list) and answers and isinstance(
        answers[0], dict) else {"type": "invalid"}
    kind = answer.get("type")
    reviewer = str(answer.get("reviewer") or "reviewer")
    review_index = len(state.get("review_decisions", []))
    review_id = f"{state.get('thread_id')}:review:{review_index}"
    store = node_services(runtime).case_store
    email_id = _email_id(state)
    draft_record = dict(state.get("draft") or {})
    record: dict[str, Any] = {"type": kind, "reviewer": reviewer, "review_id": review_id}

    if kind == "edit":
        edited = (answer.get("edited_action") or {}).get("args") or {}
        new_body = str(edited.get("body", ""))
        report = validate_reply(new_body, sender_address=str(state["email"]["sender"]),
                                allowed_contacts=_sender_contacts(state, runtime),
                                recipient=edited.get("to") or draft_record.get("to"))
        if not report.valid:
            problems = [f"{p.code}: {p.detail}" for p in report.problems]
            _audit(state, runtime, "review.edit_rejected", f"review:{review_index}:invalid",
                   outcome="failure", actor=reviewer, reason="; ".join(problems)[:300])
            return {"draft_problems": problems, "review_outcome": "ask_again"}
        size = edit_size(str(draft_record.get("body", "")), new_body)
        with store.atomic():  # the edited version and the decision are one commit
            version = store.record_draft(email_id, text=new_body, source="reviewer", valid=True,
                                         problems=[], policy_refs=list(draft_record.get(
                                             "policy_refs", [])))
            store.record_review(review_id, email_id, decision="edit", reviewer=reviewer,
                                edit_size=size)
        draft_record.update(body=new_body, version=version, source="reviewer")
        record["edit_size"] = size
        _audit(state, runtime, "review.decision", f"review:{review_index}", actor=reviewer,
               details={"decision": "edit", "edit_size": size})
        return {"review_decisions": [record], "draft": draft_record, "draft_problems": [],
                "review_outcome": "approved"}

    if kind == "approve":
        store.record_review(review_id, email_id, decision="approve", reviewer=reviewer)
        _audit(state, runtime, "review.decision", f"review:{review_index}", actor=reviewer,
               details={"decision": "approve"})
        return {"review_decisions": [record], "draft_problems": [], "review_outcome": "approved"}

    if kind == "reject":
        category = answer.get("reason_category") or answer.get("reason") or "other"
        if category not in ("tone", "factual", "policy", "other"):
            category = "other"
        message = str(answer.get("message") or "")[:1000]
        store.record_review(review_id, email_id, decision="reject", reviewer=reviewer,
                            reason_category=category, message=message)
        _audit(state, runtime, "review.decision", f"review:{review_index}", actor=reviewer,
               details={"decision": "reject", "reason_category": category})
        record.update(reason_category=category, message=message)
        revisions = int(state.get("revisions", 0)) + 1
        # One revision by the model, then the case closes as rejected.
        return {"review_decisions": [record], "revisions": revisions,
                "draft_problems": [f"a reviewer rejected the draft ({category}): {message}"],
                "draft_attempts": 0, "review_outcome": "revise" if revisions <= 1 else "closed"}

    if kind == "escalate":
        queue = str(answer.get("queue") or "")
        if queue not in policy_rules().queues:
            return {"draft_problems": [f"unknown queue {queue!r}; use one of "
                                       f"{sorted(policy_rules().queues)}"],
                    "review_outcome": "ask_again"}
        message = str(answer.get("message") or "escalated by a reviewer")[:500]
        store.record_review(review_id, email_id, decision="escalate", reviewer=reviewer,
                            message=message)
        _audit(state, runtime, "review.decision", f"review:{review_index}", actor=reviewer,
               details={"decision": "escalate", "queue": queue})
        record.update(queue=queue, message=message)
        decision = {**state["decision"], "route": "escalate", "queue": queue}
        return {"review_decisions": [record], "decision": decision,
                "escalation_reason": f"reviewer escalated: {message}", "review_outcome": "escalate"}

    return {"draft_problems": ["the review answer was not understood; answer with "
                               "approve, edit, reject or escalate"], "review_outcome": "ask_again"}


def route_after_review(state: TriageState) -> str:
    return {
        "ask_again": "human_review",
        "revise": "draft",
        "escalate": "escalate",
    }.get(str(state.get("review_outcome")), "finalize")


# ---------------------------------------------------------------------------------- escalate


def escalate(state: TriageState, runtime: Runtime[Context]) -> dict[str, Any]:
    """The model writes the hand-off; the ticket tool fixes reason code and queue by policy."""
    decision = state.get("decision") or {}
    facts = {"decided_reason_code": decision.get("reason_code"),
             "escalation_reason": state.get("escalation_reason") or decision.get("rationale")}
    model = node_services(runtime).model_with_tools([CREATE_ESCALATION_TICKET])
    try:
        response = _invoke(model, [*state["messages"],
                                   _instruction("escalate", render_facts(facts))],
                           state, runtime, "escalate")
    except Exception as problem:
        response = AIMessage(content=f"model unavailable: {_short(problem)}")
    return {"messages": [response]}


def _fallback_ticket_args(state: TriageState) -> dict[str, Any]:
    decision = state.get("decision") or {}
    reason = state.get("escalation_reason") or decision.get("rationale") or "needs a human"
    return {"reason_code": decision.get("reason_code") or "other",
            "escalation_reason": str(reason)[:500],
            "investigation_summary": "Ticket written by MediaVault from the recorded evidence."}


def escalation_gate(state: TriageState, runtime: Runtime[Context]) -> dict[str, Any]:
    """The approval gate before the ticket tool. An escalation always ends in a ticket."""
    message = last_ai_message(state.get("messages", []))
    has_calls = message is not None and bool(message.tool_calls or message.invalid_tool_calls)
    update = run_gate(state, runtime, "escalate") if has_calls else {"gate_log": [],
                                                                     "approved_calls": []}
    approved = update.get("approved_calls") or []
    if approved:
        update["approved_calls"] = approved[:1]
        return update
    # The model's hand-off was missing or refused: the system writes one from the state, and
    # that call passes the same gate as any other.
    call = {"id": f"system-ticket-{len(state.get('messages', []))}",
            "name": CREATE_ESCALATION_TICKET, "args": _fallback_ticket_args(state)}
    verdict = judge_tool_call(call, gate_facts(state, runtime.context, "escalate"))
    record: GateVerdictRecord = {"phase": "escalate", "tool_call_id": str(call["id"]),
                                 "tool": CREATE_ESCALATION_TICKET, "verdict": verdict.verdict,
                                 "reason": verdict.reason or "system-written hand-off"}
    audit_verdicts(state, runtime, [record])
    update["gate_log"] = [*update.get("gate_log", []), record]
    update["approved_calls"] = [call] if verdict.verdict == "allow" else []
    return update


def ticket_tool(state: TriageState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Create the escalation ticket (idempotent per email) with the policy's routing."""
    call = state["approved_calls"][0]
    try:
        request = parse_arguments(CREATE_ESCALATION_TICKET, call["args"])
    except ValueError:
        request = parse_arguments(CREATE_ESCALATION_TICKET, _fallback_ticket_args(state))
    assert isinstance(request, EscalationRequest)
    decision = state.get("decision") or {}
    evidence = TicketEvidence(
        queries=[QueryEvidence(sql=e.get("sql", ""), row_count=e.get("row_count", 0))
                 for e in state.get("evidence", []) if e.get("sql")],
        policy_section_ids=sorted({sid for e in state.get("evidence", [])
                                   for sid in e.get("policy_section_ids", [])}),
        gate_denials=[f"{r['tool']}: {r['reason']}" for r in state.get("gate_log", [])
                      if r["verdict"] == "deny"][:10],
    )
    customer = state.get("customer")
    ticket = build_ticket(
        request, email_id=_email_id(state),
        customer_id=customer["customer_id"] if customer else None,
        evidence=evidence, now=datetime.now(UTC),
        forced_reason_code=decision.get("reason_code"),
    )
    ticket_record = ticket.model_dump(mode="json")
    reviewer_queue = decision.get("queue")
    if reviewer_queue and reviewer_queue in policy_rules().queues and state.get(
            "review_decisions"):
        ticket_record["suggested_routing"] = reviewer_queue
    node_services(runtime).case_store.record_ticket(_email_id(state), ticket_record)
    _audit(state, runtime, "tool.execution", f"tool:{call['id']}", tool_call_id=call["id"],
           details={"tool": CREATE_ESCALATION_TICKET, "ticket_id": ticket.ticket_id,
                    "queue": ticket_record["suggested_routing"]})
    return {"approved_calls": [], "ticket": ticket_record,
            "messages": [ToolMessage(content=f"Ticket {ticket.ticket_id} created for "
                                     f"{ticket_record['suggested_routing']}.",
                                     tool_call_id=call["id"], name=CREATE_ESCALATION_TICKET)]}


# ---------------------------------------------------------------------------------- finalize


def _risk_names(state: TriageState) -> list[str]:
    return [str(flag.get("category")) for flag in (state.get("risk") or {}).get("flags", [])]


def finalize(state: TriageState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Record exactly one outcome for the email (idempotent on its id)."""
    services = node_services(runtime)
    store = services.case_store
    email = state["email"]
    decision = state.get("decision") or {}
    ticket = state.get("ticket")
    reviews = state.get("review_decisions") or []
    last_review = reviews[-1] if reviews else {}
    outbox_path: str | None = None
    message: SentReply | None = None
    if ticket is not None:
        status, route, queue = "escalated", "escalate", ticket.get("suggested_routing")
    elif last_review.get("type") == "reject":
        status, route, queue = "rejected", "draft", None
    else:
        status, route, queue = "approved", "draft", None
        draft_record = state.get("draft") or {}
        message = services.outbox.write_reply(
            email_id=_email_id(state),
            to=str(draft_record.get("to") or email["sender"]),
            subject=str(email.get("subject", "")), body=str(draft_record.get("body", "")),
            in_reply_to=email.get("message_id"),
        )
        outbox_path = str(message.path)
    with store.atomic():  # the reply's record and the outcome are one commit
        if message is not None:
            store.record_outbox(_email_id(state), path=message.path,
                                message_id=message.message_id)
        store.set_outcome(_email_id(state), route=route, reason_code=decision.get("reason_code"),
                          risk_flags=_risk_names(state), status=status, queue=queue,
                          status_reason=state.get("escalation_reason"))
    outcome = {
        "email_id": _email_id(state),
        "thread_id": state.get("thread_id"),
        "status": status,
        "route": route,
        "reason_code": decision.get("reason_code"),
        "queue": queue,
        "ticket_id": ticket.get("ticket_id") if ticket else None,
        "outbox_path": outbox_path,
        "gate_denials": sum(1 for r in state.get("gate_log", []) if r["verdict"] == "deny"),
    }
    _audit(state, runtime, "case.outcome", "finalize", details={
        "status": status, "route": route, "reason_code": decision.get("reason_code"),
        "queue": queue})
    # The run ends here: its audit events go to the log now, in one append.
    return {"outcome": outcome, **write_pending(state, runtime)}


def _short(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 200 else text[:200] + "..."
