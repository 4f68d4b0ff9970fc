"""A chat model driven by a script: the seam tests use to replace the model.

Like an HTTP client's mock transport, it lets a test play any model, including a hostile one
that ignores its instructions, against the real graph. Production code never checks whether it
is being tested; it simply receives a different model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

#: A script gets the conversation and the names of the tools bound for this call.
Script = Callable[[list[BaseMessage], list[str]], AIMessage]


class ScriptedChatModel(BaseChatModel):
    """Answers every call with ``script(messages, bound_tool_names)``; records each call."""

    script: Script
    calls: list[list[str]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "mediavault-scripted"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        names = [t["function"]["name"] for t in kwargs.get("tools") or [] if "function" in t]
        self.calls.append(names)
        return ChatResult(generations=[ChatGeneration(message=self.script(messages, names))])


def tool_call_message(name: str, args: Any, call_id: str | None = "call-1") -> AIMessage:
    """An AIMessage carrying one tool call (``args`` may be anything a hostile model sends)."""
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id,
                                              "type": "tool_call"}])
