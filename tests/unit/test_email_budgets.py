"""One email costs a bounded amount whatever the model sends.

A hostile model answers every call with the most it can: hundreds of tool calls with huge
arguments, megabytes of content in every shape (text, lists of blocks), and provider extras
(``additional_kwargs``, ``response_metadata``). The checkpoint and case databases must grow by
at most 20 MB for the email, and what exceeds a cap is refused with a reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from mediavault.agent.api import triage_email
from mediavault.agent.models.scripted_model import ScriptedChatModel
from mediavault.graph.context import Context
from mediavault.graph.nodes import (
    MAX_ARGUMENT_BYTES_PER_MESSAGE,
    MAX_MODEL_TEXT_CHARS,
    MAX_TOOL_CALLS_PER_MESSAGE,
    _with_call_ids,
)

MEGABYTE = 1_000_000
GIANT = "x" * (2 * MEGABYTE)
SENDER = "dana.whitfield@example.com"


def _call(name: str, args: Any, index: int) -> dict[str, Any]:
    return {"name": name, "args": args, "id": f"c{index}", "type": "tool_call"}


def _maximum(tools: list[str]) -> AIMessage:
    """Everything at once, in the phase the bound tools reveal."""
    if "run_sql_query" in tools:
        calls = [_call("run_sql_query", {"query": f"SELECT '{GIANT[:20_000]}' AS x"}, i)
                 for i in range(500)]
    elif "draft_customer_email" in tools:
        calls = [_call("draft_customer_email", {"summary": "your rental", "findings": [GIANT]
                                                * 8}, i) for i in range(500)]
    elif "create_escalation_ticket" in tools:
        calls = [_call("create_escalation_ticket", {"reason_code": "other", "escalation_reason":
                                                    GIANT, "investigation_summary": GIANT}, i)
                 for i in range(500)]
    else:  # the decision: draft, so that every phase is paid for
        calls = [_call(tools[0], {"route": "draft", "reason_code": "rental_status",
                                  "rationale": "x" * 200, "policy_refs": []}, 0)]
    return AIMessage(
        content=[{"type": "text", "text": GIANT}, {"type": "image_url",
                                                   "image_url": {"url": GIANT}}] * 3,
        tool_calls=calls,
        additional_kwargs={"blob": GIANT, "tool_calls": [{"arguments": GIANT}] * 3},
        response_metadata={"blob": GIANT},
    )


def _state_bytes(home: Path) -> int:
    names = ("checkpoints.sqlite", "cases.sqlite")
    return sum(path.stat().st_size for path in home.iterdir()
               if any(path.name.startswith(name) for name in names))


@pytest.mark.slow
def test_a_model_sending_the_maximum_every_turn_grows_the_state_by_at_most_20_mb(
    demo_db_path: Path, mediavault_home: Path
) -> None:
    context = Context(home=mediavault_home, db=str(demo_db_path), review="none")
    model = ScriptedChatModel(script=lambda messages, tools: _maximum(tools))
    warm_up = {"email_id": "warm-up", "received_at": "2026-03-01T09:00:00Z", "from": SENDER,
               "subject": "Hello", "body": "Thanks for the great films."}
    triage_email(warm_up, context=context)  # creates the databases and their schema
    before = _state_bytes(mediavault_home)

    result = triage_email(
        {"email_id": "hostile-1", "received_at": "2026-03-01T09:00:00Z", "from": SENDER,
         "subject": "When is my film due?", "body": "Hi, when do I bring my rental back?"},
        context=context, model=model,
    )

    growth = _state_bytes(mediavault_home) - before
    print(f"state growth for one hostile email: {growth / MEGABYTE:.2f} MB")
    assert growth <= 20 * MEGABYTE, f"state grew by {growth / MEGABYTE:.1f} MB"
    assert result.status == "escalated"
    assert len(model.calls) <= 12  # model turns are bounded too
    refusals = [r["reason"] for r in result.gate_log if r["verdict"] == "deny"]
    assert any("bytes of arguments" in r or "argument budget" in r for r in refusals)


def test_only_a_bounded_number_of_calls_and_argument_bytes_enter_the_state() -> None:
    message = _maximum(["run_sql_query"])
    kept = _with_call_ids(message, "p")
    assert len(kept.tool_calls) <= MAX_TOOL_CALLS_PER_MESSAGE
    assert len(kept.tool_calls) + len(kept.invalid_tool_calls) <= 2 * MAX_TOOL_CALLS_PER_MESSAGE
    kept_bytes = sum(len(str(call["args"])) for call in kept.tool_calls)
    assert kept_bytes <= MAX_ARGUMENT_BYTES_PER_MESSAGE
    assert all(call["args"] is None for call in kept.invalid_tool_calls)
    assert "further tool calls dropped" in str(kept.content)
    assert kept.additional_kwargs == {} and kept.response_metadata == {}


def test_content_of_any_shape_is_cut_to_bounded_text() -> None:
    blocks: list[Any] = [{"type": "text", "text": "y" * MAX_MODEL_TEXT_CHARS}] * 50
    kept = _with_call_ids(AIMessage(content=blocks), "p")
    assert isinstance(kept.content, str)
    assert len(kept.content) <= MAX_MODEL_TEXT_CHARS + 100


def test_the_email_wide_argument_budget_refuses_calls_once_spent() -> None:
    args = {"query": "SELECT 1 AS x -- " + "z" * 30_000}
    message = AIMessage(content="", tool_calls=[_call("run_sql_query", args, 0)])
    kept = _with_call_ids(message, "p", email_bytes=250_000)
    assert kept.tool_calls == []
    assert "argument budget exhausted" in kept.invalid_tool_calls[0]["error"]
