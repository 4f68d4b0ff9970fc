"""The offline ``rules`` model against LangChain's standard chat-model unit tests.

Passing them means the model behaves like any other LangChain chat model wherever a graph, a
tracer or a caller expects one: it takes the standard constructor parameters, binds tools
(pydantic models, functions, JSON schemas, ``tool_choice``), offers structured output by every
method, reports the standard tracing parameters and builds fast.

Features the model does not have are declared through the suite's documented properties, never
by skipping tests. Two tests skip themselves by the suite's own rules because nothing in them
applies: ``test_init_from_env`` (the model reads no environment variable) and ``test_serdes``
(the model is not LangChain-serialisable; it is rebuilt from its name, ``rules``).
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_tests.unit_tests import ChatModelUnitTests

from mediavault.agent.models.rules_model import RulesChatModel


class TestRulesChatModelStandard(ChatModelUnitTests):
    """``ChatModelUnitTests`` for :class:`mediavault.agent.models.rules_model.RulesChatModel`."""

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return RulesChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model_name": "mediavault-rules"}

    # The graph binds its six tools and asks for a structured decision: both are required.
    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def structured_output_kwargs(self) -> dict[str, Any]:
        # Structured output rides on tool calling, the way the graph's decide node uses it.
        return {"method": "function_calling"}

    # The model reads text only: support email arrives as text after ingest.
    @property
    def supports_json_mode(self) -> bool:
        return False

    @property
    def supports_image_inputs(self) -> bool:
        return False

    @property
    def supports_image_urls(self) -> bool:
        return False

    @property
    def supports_pdf_inputs(self) -> bool:
        return False

    @property
    def supports_audio_inputs(self) -> bool:
        return False

    @property
    def supports_video_inputs(self) -> bool:
        return False

    @property
    def supports_image_tool_message(self) -> bool:
        return False

    @property
    def supports_pdf_tool_message(self) -> bool:
        return False

    @property
    def supports_anthropic_inputs(self) -> bool:
        return False

    # The graph's audit log records token usage; the model estimates it on every call.
    @property
    def returns_usage_metadata(self) -> bool:
        return True
