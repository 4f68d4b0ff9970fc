"""The Email Triage graph end to end: routes, the gate, budgets, reviews and persistence."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from mediavault.agent.api import ReviewDecision, resume, triage_email
from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.agent.models.rules_model import RulesChatModel
from mediavault.agent.models.scripted_model import ScriptedChatModel, tool_call_message
from mediavault.agent.stores.audit import read_events, verify_audit_log
from mediavault.agent.stores.case_store import CaseStore
from mediavault.agent.wiring import build_graph
from mediavault.graph.builder import NODE_NAMES
from mediavault.graph.context import Context

REPO = Path(__file__).resolve().parents[2]
INBOX = REPO / "examples" / "inbox.csv"
EXPECTED = json.loads((REPO / "examples" / "inbox_expected.json").read_text())


@pytest.fixture
def context(demo_db_path: Path, mediavault_home: Path) -> Context:
    return Context(home=mediavault_home, db=str(demo_db_path))


def _email(
    email_id: str, subject: str, body: str, sender: str = "nobody@example.org"
) -> dict[str, Any]:
    return {
        "email_id": email_id,
        "received_at": "2026-03-01T09:00:00Z",
        "from": sender,
        "subject": subject,
        "body": body,
    }


def _inbox_email(email_id: str) -> Any:
    return next(e for e in read_inbox_csv(INBOX).emails if e.email_id == email_id)


def _cases(context: Context) -> list[sqlite3.Row]:
    with sqlite3.connect(context.cases_path) as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute("SELECT * FROM cases").fetchall()
    connection.close()
    return rows


def _count(context: Context, table: str) -> int:
    connection = sqlite3.connect(context.cases_path)
    try:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        connection.close()


# ------------------------------------------------------------------------- shape of the graph


def test_graph_nodes_match_the_stages_named_in_the_skill() -> None:
    skill = (REPO / "skills" / "email-triage" / "SKILL.md").read_text()
    table = skill.split("## Stages in the graph", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"^\|\s*`([a-z_]+)`", table, re.M)
    compiled = build_graph().compile().get_graph()
    nodes = [n for n in compiled.nodes if not n.startswith("__")]
    assert sorted(nodes) == sorted(named)
    assert tuple(named) == NODE_NAMES


def test_every_tool_node_has_a_gate_as_its_only_entrance() -> None:
    graph = build_graph().compile().get_graph()
    entrances: dict[str, set[str]] = {}
    for edge in graph.edges:
        entrances.setdefault(edge.target, set()).add(edge.source)
    assert entrances["investigation_tools"] == {"investigation_gate"}
    assert entrances["draft_tool"] == {"draft_gate"}
    assert entrances["ticket_tool"] == {"escalation_gate"}


# ---------------------------------------------------------------------------- sample inbox


def test_sample_inbox_routes_as_labelled_with_the_rules_model(context: Context) -> None:
    emails = read_inbox_csv(INBOX).emails
    assert len(emails) >= 12
    got = {}
    for email in emails:
        result = triage_email(email, context=context)
        got[email.email_id] = (result.route, result.reason_code, result.queue, result.status)
    for email_id, label in EXPECTED.items():
        route, reason, queue, status = got[email_id]
        assert (route, reason) == (label["route"], label["reason_code"]), email_id
        if label["route"] == "escalate":
            assert (status, queue) == ("escalated", label["queue"]), email_id
        else:
            assert status == "awaiting_review", email_id
    # one case per email, each with exactly one outcome
    cases = _cases(context)
    assert len(cases) == len(emails)
    assert all(case["status"] in ("awaiting_review", "escalated") for case in cases)
    assert verify_audit_log(context.audit_path).ok


def test_running_the_inbox_again_adds_no_rows(context: Context) -> None:
    emails = read_inbox_csv(INBOX).emails
    for email in emails:
        triage_email(email, context=context)
    tables = ("emails", "cases", "drafts", "tickets", "reviews", "outbox")
    before = {table: _count(context, table) for table in tables}
    audit_lines = len(context.audit_path.read_text().splitlines())
    again = [triage_email(email, context=context) for email in emails]
    assert all(result.already_recorded for result in again)
    assert {table: _count(context, table) for table in tables} == before
    assert before["cases"] == len(emails)
    assert len(context.audit_path.read_text().splitlines()) == audit_lines


def test_triaging_an_email_again_returns_the_recorded_outcome(context: Context) -> None:
    email = _inbox_email("msg-004")
    first = triage_email(email, context=context)
    again = triage_email(email, context=context)
    assert again.already_recorded and again.status == first.status == "escalated"
    assert _count(context, "cases") == 1
    assert _count(context, "tickets") == 1


def test_the_draft_reads_like_a_reply_and_cites_the_data(context: Context) -> None:
    result = triage_email(_inbox_email("msg-014"), context=context)
    assert result.status == "awaiting_review"
    assert result.draft is not None
    body = result.draft["body"]
    assert "MediaVault Support Team" in body
    assert "$2.00" in body
    assert result.draft["to"] == _inbox_email("msg-014").sender


# ------------------------------------------------------------------- the pilot's first case


def _hostile_drafter(messages: list[BaseMessage], tools: list[str]) -> AIMessage:
    """A model that wants to draft a friendly reply to everything, threats included."""
    turn = len(messages)
    if "create_escalation_ticket" in tools:
        return tool_call_message(
            "create_escalation_ticket",
            {
                "reason_code": "other",
                "escalation_reason": "customer unhappy",
                "investigation_summary": "nothing found",
                "suggested_routing": "tier1_general",
            },
            f"t-{turn}",
        )
    already_denied = any(isinstance(m, ToolMessage) and m.status == "error" for m in messages)
    if already_denied:
        return AIMessage(content="The gate says this must be escalated.")
    return tool_call_message(
        "draft_customer_email",
        {
            "summary": "your message",
            "findings": ["All good."],
            "policy_refs": [],
            "policy_points": [],
            "next_steps": ["Nothing to do."],
            "tone": "neutral",
        },
        f"d-{turn}",
    )


def test_a_model_that_drafts_a_reply_to_a_sue_email_is_denied_and_escalated(
    context: Context,
) -> None:
    model = ScriptedChatModel(script=_hostile_drafter)
    email = _email("sue-1", "Last warning", "Fix my bill or I will sue you. My lawyer is ready.")
    result = triage_email(email, context=context, model=model)
    assert result.status == "escalated"
    assert result.queue == "tier2_legal"
    assert result.reason_code == "legal_threat"
    denials = [r for r in result.gate_log if r["verdict"] == "deny"]
    assert any("must be escalated, not drafted" in r["reason"] for r in denials)
    assert result.ticket is not None and result.ticket["suggested_routing"] == "tier2_legal"
    assert _count(context, "drafts") == 0
    events = read_events(context.audit_path, email_id="sue-1")
    assert any(
        e.action == "gate.verdict" and e.reason and "must be escalated" in e.reason for e in events
    )


# -------------------------------------------------------------- no tool runs without a verdict


@pytest.fixture
def executed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Record every tool execution (tool name, call id) at the tool implementations."""
    import mediavault.graph.gates
    import mediavault.graph.nodes

    log: list[tuple[str, str]] = []
    real_investigation = mediavault.graph.gates.run_investigation_tool
    real_prepare = mediavault.graph.nodes.prepare_draft
    real_build = mediavault.graph.nodes.build_ticket

    def recording_investigation(tool: str, args: Any, env: Any) -> Any:
        log.append((tool, "investigation"))
        return real_investigation(tool, args, env)

    def recording_prepare(*args: Any, **kwargs: Any) -> Any:
        log.append(("draft_customer_email", "draft"))
        return real_prepare(*args, **kwargs)

    def recording_build(*args: Any, **kwargs: Any) -> Any:
        log.append(("create_escalation_ticket", "ticket"))
        return real_build(*args, **kwargs)

    monkeypatch.setattr(mediavault.graph.gates, "run_investigation_tool", recording_investigation)
    monkeypatch.setattr(mediavault.graph.nodes, "prepare_draft", recording_prepare)
    monkeypatch.setattr(mediavault.graph.nodes, "build_ticket", recording_build)
    return log


def test_no_tool_executes_without_an_allow_verdict(
    context: Context, executed: list[tuple[str, str]]
) -> None:
    for email_id in EXPECTED:
        triage_email(_inbox_email(email_id), context=context)
    events = read_events(context.audit_path)
    allowed = [
        e for e in events if e.action == "gate.verdict" and e.details.get("verdict") == "allow"
    ]
    executions = [e for e in events if e.action == "tool.execution"]
    assert len(executed) == len(executions)
    allowed_ids = {e.tool_call_id for e in allowed}
    assert executions
    for event in executions:
        assert event.tool_call_id in allowed_ids


def test_a_call_waiting_for_review_runs_only_after_approval_even_across_resume(
    context: Context, executed: list[tuple[str, str]]
) -> None:
    strict = context.with_overrides(review_tools=("run_sql_query",))
    email = _inbox_email("msg-006")
    first = triage_email(email, context=strict)
    assert first.status == "awaiting_review"
    request = first.review_request
    assert request is not None
    assert request["action_requests"][0]["name"] == "run_sql_query"
    assert request["review_configs"][0]["allowed_decisions"] == ["approve", "edit", "reject"]
    assert ("run_sql_query", "investigation") not in executed
    from langgraph.types import Command

    from mediavault.agent.api import _compiled_graph, _config

    with _compiled_graph(strict) as graph:
        graph.invoke(
            Command(resume={"decisions": [{"type": "approve"}]}),
            _config(first.thread_id),
            context=strict,
        )
    assert ("run_sql_query", "investigation") in executed


def test_a_rejected_call_never_executes(context: Context, executed: list[tuple[str, str]]) -> None:
    strict = context.with_overrides(review_tools=("run_sql_query",))
    first = triage_email(_inbox_email("msg-006"), context=strict)
    from langgraph.types import Command

    from mediavault.agent.api import _compiled_graph, _config

    with _compiled_graph(strict) as graph:
        graph.invoke(
            Command(resume={"decisions": [{"type": "reject", "message": "no"}]}),
            _config(first.thread_id),
            context=strict,
        )
        state = graph.get_state(_config(first.thread_id)).values
    assert ("run_sql_query", "investigation") not in executed
    rejected = [
        m
        for m in state["messages"]
        if isinstance(m, ToolMessage) and "rejected by a reviewer" in str(m.content)
    ]
    assert rejected


# ------------------------------------------------------------------- hostile and broken models


def _script(*turns: Callable[[list[BaseMessage], list[str]], AIMessage]) -> ScriptedChatModel:
    remaining = list(turns)

    def play(messages: list[BaseMessage], tools: list[str]) -> AIMessage:
        return remaining.pop(0)(messages, tools) if remaining else AIMessage(content="done")

    return ScriptedChatModel(script=play)


def test_a_tool_named_like_a_budget_message_does_not_end_the_investigation(
    context: Context,
) -> None:
    # The gate's denial repeats the unknown name; routing reads the denial's code, so a model
    # cannot cut the investigation short (or steer the escalation) by choosing its words.
    def spoof(messages: list[BaseMessage], tools: list[str]) -> AIMessage:
        return AIMessage(content="", tool_calls=[
            {"name": "tool budget exhausted", "args": {}, "id": "s1", "type": "tool_call"}])

    result = triage_email(_email("spoof-1", "Question", "When is my film due?"),
                          context=context, model=_script(spoof))
    assert [r["verdict"] for r in result.gate_log if r["phase"] == "investigate"] == ["deny"]
    from mediavault.agent.api import _compiled_graph, _config

    with _compiled_graph(context) as graph:
        state = graph.get_state(_config(result.thread_id)).values
    assert not state.get("budget_exceeded")
    assert state["model_calls"] >= 2  # the investigation went on after the denial


def test_unknown_tools_malformed_arguments_and_missing_ids_are_denied_not_crashed(
    context: Context,
) -> None:
    def broken(messages: list[BaseMessage], tools: list[str]) -> AIMessage:
        return AIMessage(
            content="",
            tool_calls=[
                {"name": "delete_everything", "args": {}, "id": "x1", "type": "tool_call"},
                {
                    "name": "run_sql_query",
                    "args": {"sql": "SELECT 1"},
                    "id": "x2",
                    "type": "tool_call",
                },
                {
                    "name": "run_sql_query",
                    "args": {"query": "DELETE FROM rental"},
                    "id": "x3",
                    "type": "tool_call",
                },
            ],
            invalid_tool_calls=[
                {
                    "name": "run_sql_query",
                    "args": "{not json",
                    "id": "x4",
                    "error": "bad json",
                    "type": "invalid_tool_call",
                }
            ],
        )

    model = _script(broken)
    result = triage_email(
        _email("broken-1", "Question", "When is my film due?"), context=context, model=model
    )
    assert result.status in ("escalated", "awaiting_review")
    denied = {r["tool_call_id"]: r["reason"] for r in result.gate_log if r["verdict"] == "deny"}
    assert "unknown tool" in denied["x1"]
    assert "invalid arguments" in denied["x2"]
    assert "SQL refused" in denied["x3"]
    assert "not valid JSON" in denied["x4"]


def test_a_model_that_never_stops_calling_tools_is_escalated_not_drafted(
    context: Context,
) -> None:
    def greedy(messages: list[BaseMessage], tools: list[str]) -> AIMessage:
        if "run_sql_query" in tools:
            return AIMessage(
                content="",
                tool_calls=[
                    {
                        "name": "get_current_date",
                        "args": {},
                        "id": f"g-{len(messages)}-{i}",
                        "type": "tool_call",
                    }
                    for i in range(4)
                ],
            )
        if "TriageDecision" in tools:
            return tool_call_message(
                "TriageDecision", {"route": "draft", "reason_code": "rental_status"}
            )
        return AIMessage(content="")

    result = triage_email(
        _email("greedy-1", "Due date?", "When is my film due?"),
        context=context,
        model=ScriptedChatModel(script=greedy),
    )
    assert result.status == "escalated"
    assert result.draft is None
    assert _count(context, "drafts") == 0
    with sqlite3.connect(context.cases_path) as connection:
        reason = connection.execute("SELECT status_reason FROM cases").fetchone()[0]
    connection.close()
    assert "budget" in reason


def test_a_model_outage_ends_in_an_escalation_with_a_clear_reason(context: Context) -> None:
    def down(messages: list[BaseMessage], tools: list[str]) -> AIMessage:
        raise ConnectionError("model server unreachable")

    result = triage_email(
        _email("down-1", "Due date?", "When is my film due?"),
        context=context,
        model=ScriptedChatModel(script=down),
    )
    assert result.status == "escalated"
    assert result.ticket is not None
    assert "model unavailable" in result.ticket["escalation_reason"]


# ------------------------------------------------------------------------------ the reviewer


def test_approve_writes_the_reply_to_the_outbox(context: Context) -> None:
    first = triage_email(_inbox_email("msg-003"), context=context)
    assert first.status == "awaiting_review"
    done = resume("msg-003", ReviewDecision(type="approve", reviewer="ana"), context=context)
    assert done.status == "approved"
    outbox = list(context.outbox_path.glob("*.eml"))
    assert len(outbox) == 1
    assert "MediaVault Support Team" in outbox[0].read_text()


def test_an_invalid_edit_is_refused_with_reasons_and_the_review_stays_open(
    context: Context,
) -> None:
    first = triage_email(_inbox_email("msg-003"), context=context)
    body = first.draft["body"] if first.draft else ""
    bad = body.replace("MediaVault Support Team", "We guarantee it!\nMediaVault Support Team")
    again = resume("msg-003", ReviewDecision(type="edit", body=bad), context=context)
    assert again.status == "awaiting_review"
    assert again.review_request is not None
    assert "forbidden_phrase" in again.review_request["action_requests"][0]["description"]
    good = body.replace("MediaVault Support Team", "Enjoy the film!\nMediaVault Support Team")
    done = resume("msg-003", ReviewDecision(type="edit", body=good), context=context)
    assert done.status == "approved"
    assert done.draft is not None and "Enjoy the film!" in done.draft["body"]
    case = CaseStore(context.cases_path).get_case("msg-003")
    assert case is not None and case.status == "approved"
    assert [d.source for d in case.drafts] == ["model", "reviewer"]
    assert [r.decision for r in case.reviews] == ["edit"]
    assert case.reviews[0].edit_size and case.reviews[0].edit_size > 0
    assert case.outbox is not None
    assert "Enjoy the film!" in Path(case.outbox.path).read_text()


def test_reject_sends_the_draft_back_for_one_revision(context: Context) -> None:
    triage_email(_inbox_email("msg-003"), context=context)
    revised = resume(
        "msg-003",
        ReviewDecision(type="reject", reason_category="tone", message="warmer please"),
        context=context,
    )
    assert revised.status == "awaiting_review"
    closed = resume(
        "msg-003",
        ReviewDecision(type="reject", reason_category="tone", message="still not right"),
        context=context,
    )
    assert closed.status == "rejected"
    assert _count(context, "reviews") == 2
    case = CaseStore(context.cases_path).get_case("msg-003")
    assert case is not None
    assert [r.reason_category for r in case.reviews] == ["tone", "tone"]
    assert case.outbox is None


def test_a_reviewer_can_escalate_instead(context: Context) -> None:
    triage_email(_inbox_email("msg-003"), context=context)
    done = resume(
        "msg-003",
        ReviewDecision(type="escalate", queue="communications", message="this is a journalist"),
        context=context,
    )
    assert done.status == "escalated"
    assert done.queue == "communications"


def test_the_readme_diagram_is_generated_from_the_graph() -> None:
    from mediavault.graph.builder import readme_with_diagram

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "```mermaid" in readme
    assert readme == readme_with_diagram(readme), "run `make diagram` to refresh README.md"


def _classifier(categories: list[str]) -> Callable[[list[BaseMessage], list[str]], AIMessage]:
    rules = RulesChatModel()

    def play(messages: list[BaseMessage], tools: list[str]) -> AIMessage:
        if "RiskClassification" in tools:
            return tool_call_message("RiskClassification",
                                     {"categories": categories, "evidence": "model says so"},
                                     f"risk-{len(messages)}")
        # Everything else is the offline model's usual answer.
        answer = rules.invoke(messages, tools=[{"type": "function", "function": {"name": name}}
                                               for name in tools])
        assert isinstance(answer, AIMessage)
        return answer

    return play


def test_a_model_classifier_can_raise_the_risk(context: Context) -> None:
    raised = context.with_overrides(risk_classifier=True,
                                    chat_model=ScriptedChatModel(script=_classifier(
                                        ["media_inquiry"])))
    result = triage_email(_inbox_email("msg-003"), context=raised)
    assert result.status == "escalated"
    assert result.queue == "communications"


def test_a_model_classifier_cannot_lower_the_risk(context: Context) -> None:
    lowered = context.with_overrides(risk_classifier=True,
                                     chat_model=ScriptedChatModel(script=_classifier([])))
    result = triage_email(_inbox_email("msg-004"), context=lowered)
    assert result.status == "escalated"
    assert result.queue == "tier2_legal"


def test_an_email_too_long_to_read_in_full_goes_to_a_person(context: Context) -> None:
    filler = "I have a question about my rental history. " * 600
    body = filler + "\nAnd by the way I will sue you all."
    result = triage_email(_email("long-1", "Question", body), context=context)
    assert result.status == "escalated"
    assert result.queue == "tier1_general"
    assert result.ticket is not None
    assert "too long to check in full" in result.ticket["escalation_reason"]
    assert _count(context, "drafts") == 0


@pytest.mark.parametrize("source", ["dict", "record"])
def test_the_stored_truncation_marker_counts_the_characters_really_omitted(
    context: Context, source: str
) -> None:
    # The API validates the email and the graph's ingest reads it again: the cap must apply
    # once, so the stored marker names the characters the customer wrote beyond it.
    from mediavault.agent.stores.case_store import CaseStore
    from mediavault.graph.inbound_email import MAX_BODY_CHARS, TRUNCATION_MARKER, InboundEmail

    body = "Where is my refund? " * 1100  # 22,000 characters
    fields = _email("long-marker", "Refund", body)
    email = InboundEmail.from_fields(**fields) if source == "record" else fields
    triage_email(email, context=context)
    stored = CaseStore(context.cases_path).get_case("long-marker")
    assert stored is not None
    omitted = len(body) - MAX_BODY_CHARS
    assert stored.email.body == body[:MAX_BODY_CHARS] + TRUNCATION_MARKER.format(dropped=omitted)
    assert stored.email.body.count("characters omitted") == 1
