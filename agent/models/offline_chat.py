"""The shared base of the chat models that run in-process: the offline rules and test scripts."""

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

ToolLike = dict[str, Any] | type | Callable[..., Any] | BaseTool

# Tool schemas are the same objects call after call (tools.agent_tools caches them); converting one
# to the OpenAI format walks its JSON schema, so the result is remembered per object.
_CONVERTED: dict[int, tuple[object, dict[str, Any]]] = {}


def _openai_tool(tool: ToolLike) -> dict[str, Any]:
    if isinstance(tool, dict):
        return convert_to_openai_tool(tool)
    remembered = _CONVERTED.get(id(tool))
    if remembered is not None and remembered[0] is tool:
        return remembered[1]
    converted = convert_to_openai_tool(tool)
    if len(_CONVERTED) < 256:
        _CONVERTED[id(tool)] = (tool, converted)
    return converted


class InProcessChatModel(BaseChatModel):
    """A chat model answered by Python code: ``_answer(messages, bound_tool_names)``.

    ``bind_tools`` and ``with_structured_output`` work as for any tool-calling model; the
    answer sees only the names of the tools bound for the call, which is how it knows the phase.
    """

    def bind_tools(
        self,
        tools: Sequence[ToolLike],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [_openai_tool(tool) for tool in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        names = [t["function"]["name"] for t in kwargs.get("tools") or [] if "function" in t]
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages, names))])

    def _answer(self, messages: list[BaseMessage], tools: list[str]) -> AIMessage:
        raise NotImplementedError
