"""A chat model driven by a script: the seam tests use to replace the model.

Like an HTTP client's mock transport, it lets a test play any model, including a hostile one
that ignores its instructions, against the real graph. Production code never checks whether it
is being tested; it simply receives a different model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import Field

from mediavault.agent.models.offline_chat import InProcessChatModel

#: A script gets the conversation and the names of the tools bound for this call.
Script = Callable[[list[BaseMessage], list[str]], AIMessage]


class ScriptedChatModel(InProcessChatModel):
    """Answers every call with ``script(messages, bound_tool_names)``; records each call."""

    script: Script
    calls: list[list[str]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "mediavault-scripted"

    def _answer(self, messages: list[BaseMessage], tools: list[str]) -> AIMessage:
        self.calls.append(tools)
        return self.script(messages, tools)


def tool_call_message(name: str, args: Any, call_id: str | None = "call-1") -> AIMessage:
    """An AIMessage carrying one tool call (``args`` may be anything a hostile model sends)."""
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id,
                                              "type": "tool_call"}])
