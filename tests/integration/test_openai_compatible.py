"""The graph against an OpenAI-compatible server: ``MEDIAVAULT_MODEL=openai:<name>`` and
``OPENAI_BASE_URL`` pointing at a local stub that speaks ``/v1/chat/completions``.

The stub answers like the offline rules model unless a test scripts something else: rate
limits, server errors, a server that never answers, a body that is not JSON, tool-call arguments
that are not JSON, tools that do not exist. Whatever the server does, every email ends in
exactly one recorded outcome, and nothing the gate refuses ever runs.
"""

from __future__ import annotations

import itertools
import json
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk
from langgraph.checkpoint.memory import InMemorySaver
from openai_stub import ChatRequest, OpenAIStub, Script, StubReply, rules_script

from mediavault.agent.api import triage_email
from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.agent.models.factory import build_chat_model
from mediavault.agent.stores.audit import read_events, verify_audit_log
from mediavault.agent.stores.case_store import CaseStore
from mediavault.agent.wiring import build_graph
from mediavault.graph.context import ConfigurationError, Context

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
INBOX = REPO / "examples" / "inbox.csv"
EXPECTED = json.loads((REPO / "examples" / "inbox_expected.json").read_text())
MODEL_NAME = "stub-model"


def _inbox_email(email_id: str) -> Any:
    return next(e for e in read_inbox_csv(INBOX).emails if e.email_id == email_id)


#: A customer asking when a rental is due: drafted for review by a well-behaved model.
RENTAL_STATUS = "msg-006"
#: A legal threat: always escalated to tier2_legal.
LEGAL_THREAT = "msg-004"


@pytest.fixture
def serve(
    monkeypatch: pytest.MonkeyPatch, mediavault_home: Path
) -> Iterator[Callable[..., OpenAIStub]]:
    """Start a stub with a script and point the agent's settings at it, as a user would."""
    started: list[OpenAIStub] = []
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LANGSMITH_TRACING",
                 "LANGCHAIN_TRACING_V2", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY"):
        monkeypatch.delenv(name, raising=False)

    def start(script: Script = rules_script, *, timeout: float = 10.0,
              retries: int = 2) -> OpenAIStub:
        stub = OpenAIStub(script).start()
        started.append(stub)
        monkeypatch.setenv("MEDIAVAULT_MODEL", f"openai:{MODEL_NAME}")
        monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
        monkeypatch.setenv("MEDIAVAULT_MODEL_TIMEOUT", str(timeout))
        monkeypatch.setenv("MEDIAVAULT_MODEL_MAX_RETRIES", str(retries))
        return stub

    yield start
    for stub in started:
        stub.stop()


@pytest.fixture
def settings(demo_db_path: Path) -> Callable[[], Context]:
    # Built after the stub started: the model name comes from the environment, like a user's.
    return lambda: Context(db=str(demo_db_path))


def once_in(phase: str, reply: StubReply, *, times: int = 1) -> Script:
    """A script that answers the first ``times`` requests of ``phase`` with ``reply``."""
    lock = threading.Lock()
    left = [times]

    def script(request: ChatRequest) -> StubReply:
        with lock:
            if request.phase == phase and left[0] > 0:
                left[0] -= 1
                return reply
        return rules_script(request)

    return script


def always(reply: StubReply) -> Script:
    return lambda request: reply


def _case(context: Context, email_id: str) -> Any:
    case = CaseStore(context.cases_path).get_case(email_id)
    assert case is not None, f"no case recorded for {email_id}"
    return case


def _gaps(requests: list[ChatRequest]) -> list[float]:
    return [b.received_at - a.received_at for a, b in itertools.pairwise(requests)]


# ------------------------------------------------------------------------------ a good server


def test_the_sample_inbox_triages_through_an_openai_compatible_server_as_in_process(
    serve: Callable[..., OpenAIStub], settings: Callable[[], Context], tmp_path: Path
) -> None:
    emails = read_inbox_csv(INBOX).emails
    # The same model in-process (the rules model) is the reference: through the wire, every
    # email must take the same route for the same reason.
    in_process = settings().with_overrides(home=tmp_path / "in-process", model="rules")
    expected = {e.email_id: triage_email(e, context=in_process) for e in emails}
    stub = serve()
    context = settings()
    assert context.model == f"openai:{MODEL_NAME}"
    for email in emails:
        result = triage_email(email, context=context)
        reference = expected[email.email_id]
        assert (result.status, result.route, result.reason_code, result.queue) == (
            reference.status, reference.route, reference.reason_code, reference.queue
        ), email.email_id
        assert result.status in ("awaiting_review", "escalated"), email.email_id
    # Every model call went to the configured server and model, and the conversation the graph
    # sent was one the real API accepts (every tool call answered by exactly one tool result).
    assert stub.requests and stub.protocol_errors == []
    assert {r.model for r in stub.requests} == {MODEL_NAME}
    assert {r.phase for r in stub.requests} >= {"investigate", "decide", "draft", "escalate"}
    # The decision comes back as a forced tool call, which every tool-calling server supports,
    # never as a response format that many OpenAI-compatible servers lack.
    for decide in stub.requests_in("decide"):
        assert decide.tool_names == ["TriageDecision"]
        assert "response_format" not in decide.body
        assert decide.body.get("tool_choice", {}).get("function", {}).get("name") == (
            "TriageDecision")
    # No API key is needed for a local server; the client still sends a placeholder.
    assert {r.headers.get("authorization") for r in stub.requests} == {"Bearer not-needed"}
    statuses = CaseStore(context.cases_path).count_by_status()
    assert sum(statuses.values()) == len(emails)
    assert verify_audit_log(context.audit_path).ok


def test_streamed_answers_with_tool_calls_drive_the_graph_to_the_review(
    serve: Callable[..., OpenAIStub], settings: Callable[[], Context],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stub = serve()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-placeholder")
    context = settings()
    graph = build_graph().compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "streamed"}}
    streamed_tool_calls: set[str] = set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Token streaming (as LangGraph Studio asks for it) makes ChatOpenAI stream from the
        # server.
        for message, metadata in graph.stream(
            {"email": _inbox_email(RENTAL_STATUS).model_dump(mode="json")}, config,
            context=context, stream_mode="messages",
        ):
            if isinstance(message, AIMessageChunk) and message.tool_call_chunks:
                streamed_tool_calls.add(str(metadata["langgraph_node"]))
    # langchain-openai's streamed structured output may warn while serialising its parsed value
    # (langchain-ai/langchain#35538): harmless, and the only warning tolerated here.
    unexpected = [w for w in caught if "PydanticSerializationUnexpectedValue" not in str(w.message)]
    assert unexpected == []
    assert stub.requests and all(r.stream for r in stub.requests)
    assert stub.protocol_errors == []
    assert {r.headers.get("authorization") for r in stub.requests} == {
        "Bearer sk-local-placeholder"}
    # The decision is a forced tool call too, so it streams like the others.
    assert streamed_tool_calls == {"investigate", "decide", "draft"}
    state = graph.get_state(config)
    assert state.next == ("human_review",)
    assert state.values["decision"]["reason_code"] == EXPECTED[RENTAL_STATUS]["reason_code"]
    request = state.interrupts[0].value
    assert request["action_requests"][0]["args"]["body"] == state.values["draft"]["body"]


# ----------------------------------------------------------------------- an unreliable server


def test_a_rate_limit_is_retried_after_the_delay_the_server_asks_for(
    serve: Callable[..., OpenAIStub], settings: Callable[[], Context]
) -> None:
    stub = serve(once_in("investigate", StubReply.error(429, "slow down", retry_after_ms=300)))
    result = triage_email(_inbox_email(RENTAL_STATUS), context=settings())
    assert result.status == "awaiting_review"
    assert result.reason_code == EXPECTED[RENTAL_STATUS]["reason_code"]
    first, second = stub.requests[:2]
    assert (first.phase, second.phase) == ("investigate", "investigate")
    assert second.received_at - first.received_at >= 0.3


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        (StubReply.error(429, "rate limit reached", retry_after_ms=50), "RateLimitError"),
        (StubReply.error(500, "the model crashed"), "Error code: 500"),
        (StubReply.error(503, "overloaded"), "Error code: 503"),
        (StubReply(status=200, raw_body="<html>502 Bad Gateway</html>"), "JSONDecodeError"),
    ],
    ids=["429", "500", "503", "not-json"],
)
def test_a_failing_server_ends_in_an_escalation_that_says_why(
    serve: Callable[..., OpenAIStub], settings: Callable[[], Context], reply: StubReply,
    says: str,
) -> None:
    stub = serve(always(reply), retries=1)
    context = settings()
    result = triage_email(_inbox_email(RENTAL_STATUS), context=context)

    assert result.status == "escalated"
    assert result.ticket is not None
    reason = result.ticket["escalation_reason"]
    assert "model unavailable" in reason and says in reason
    case = _case(context, RENTAL_STATUS)
    assert case.status == "escalated" and "model unavailable" in (case.status_reason or "")
    # Statuses are retried (one retry here) with backoff; a body that is not JSON is not.
    phases = [r.phase for r in stub.requests]
    attempts = 1 if reply.status == 200 else 2
    assert phases == ["investigate"] * attempts + ["escalate"] * attempts
    if reply.status >= 500:
        # exponential backoff: 0.5 s less up to 25% jitter before the first retry
        assert min(_gaps(stub.requests[:2])) >= 0.37
    assert verify_audit_log(context.audit_path).ok


def test_a_server_that_never_answers_times_out_and_the_email_is_escalated(
    serve: Callable[..., OpenAIStub], settings: Callable[[], Context]
) -> None:
    stub = serve(always(StubReply.hang(5.0)), timeout=0.3, retries=1)
    context = settings()
    result = triage_email(_inbox_email(RENTAL_STATUS), context=context)
    assert result.status == "escalated"
    assert result.ticket is not None
    assert "model unavailable: OpenAITimeoutError" in result.ticket["escalation_reason"]
    assert [r.phase for r in stub.requests] == ["investigate"] * 2 + ["escalate"] * 2


def test_a_legal_threat_is_escalated_even_when_the_server_is_down(
    serve: Callable[..., OpenAIStub], settings: Callable[[], Context]
) -> None:
    serve(always(StubReply.error(500)), retries=0)
    result = triage_email(_inbox_email(LEGAL_THREAT), context=settings())
    assert (result.status, result.reason_code, result.queue) == (
        "escalated", "legal_threat", EXPECTED[LEGAL_THREAT]["queue"])


# --------------------------------------------------------------------------- a hostile model


def test_tool_call_arguments_that_are_not_json_are_denied_and_the_model_is_told(
    serve: Callable[..., OpenAIStub], settings: Callable[[], Context]
) -> None:
    broken = StubReply.tool_call("run_sql_query", '{"query": "SELECT * FROM customer',
                                 call_id="call_broken")
    stub = serve(once_in("investigate", broken))
    context = settings()
    result = triage_email(_inbox_email(RENTAL_STATUS), context=context)

    denial = next(r for r in result.gate_log if r["tool_call_id"] == "call_broken")
    assert denial["verdict"] == "deny" and "not valid JSON" in denial["reason"]
    # The next request carries the denial as the tool result for that call.
    answers = [m for m in stub.requests[1].messages if m.get("tool_call_id") == "call_broken"]
    assert len(answers) == 1 and "Denied by the approval gate" in answers[0]["content"]
    assert stub.protocol_errors == []
    executed = [e for e in read_events(context.audit_path)
                if e.action == "tool.execution" and e.tool_call_id == "call_broken"]
    assert executed == []
    assert result.status in ("awaiting_review", "escalated")


@pytest.mark.parametrize(
    ("phase", "tool", "expected_status"),
    [
        ("investigate", "refund_customer", "awaiting_review"),
        ("draft", "send_email_now", "awaiting_review"),
        ("escalate", "delete_customer_account", "escalated"),
    ],
)
def test_tools_the_model_invents_are_denied_and_never_run(
    serve: Callable[..., OpenAIStub], settings: Callable[[], Context], phase: str, tool: str,
    expected_status: str,
) -> None:
    email = RENTAL_STATUS if phase != "escalate" else LEGAL_THREAT
    invented = StubReply.tool_call(tool, {"customer_id": 1, "amount": 500}, call_id="call_x")
    stub = serve(once_in(phase, invented))
    context = settings()
    result = triage_email(_inbox_email(email), context=context)

    verdicts = [r for r in result.gate_log if r["tool"] == tool]
    assert [r["verdict"] for r in verdicts] == ["deny"]
    assert tool in verdicts[0]["reason"]
    assert result.status == expected_status
    assert result.reason_code == EXPECTED[email]["reason_code"]
    assert stub.protocol_errors == []
    assert not [e for e in read_events(context.audit_path)
                if e.action == "tool.execution" and e.tool_call_id == "call_x"]


def test_a_model_that_only_invents_tools_gets_nothing_run_and_the_email_escalated(
    serve: Callable[..., OpenAIStub], settings: Callable[[], Context]
) -> None:
    stub = serve(always(StubReply.tool_call("transfer_funds", {"to": "attacker", "amount": 9e9})))
    context = settings()
    result = triage_email(_inbox_email(RENTAL_STATUS), context=context)
    assert result.status == "escalated"
    assert result.gate_log and all(
        r["verdict"] == "deny" for r in result.gate_log if r["tool"] == "transfer_funds")
    executed = [e for e in read_events(context.audit_path) if e.action == "tool.execution"]
    # Only the system-written escalation ticket runs; the model's calls never do.
    assert [e.details["tool"] for e in executed] == ["create_escalation_ticket"]
    assert stub.protocol_errors == []


# ---------------------------------------------------------------------------- bad settings


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MEDIAVAULT_MODEL_TIMEOUT", "soon"), ("MEDIAVAULT_MODEL_TIMEOUT", "-1"),
     ("MEDIAVAULT_MODEL_MAX_RETRIES", "many"), ("MEDIAVAULT_MODEL_MAX_RETRIES", "50")],
)
def test_unusable_client_settings_are_refused_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        build_chat_model(f"openai:{MODEL_NAME}")


def test_client_settings_reach_the_openai_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("MEDIAVAULT_MODEL_TIMEOUT", "2.5")
    monkeypatch.setenv("MEDIAVAULT_MODEL_MAX_RETRIES", "0")
    model = build_chat_model(f"openai:{MODEL_NAME}")
    assert (model.request_timeout, model.max_retries) == (2.5, 0)  # type: ignore[attr-defined]


def test_an_answer_length_cap_reaches_servers_that_read_max_tokens(
    serve: Callable[..., OpenAIStub], settings: Callable[[], Context],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # langchain-openai sends the cap as max_completion_tokens; llama.cpp's server reads only
    # max_tokens and, without it, let a small model run on for thousands of tokens.
    monkeypatch.setenv("MEDIAVAULT_MODEL_MAX_TOKENS", "64")
    stub = serve()
    triage_email(_inbox_email(RENTAL_STATUS), context=settings())
    assert stub.requests
    assert {r.body.get("max_tokens") for r in stub.requests} == {64}
