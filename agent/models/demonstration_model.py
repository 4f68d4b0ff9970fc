"""The demonstration model: an overconfident model, clearly labelled, for ``mediavault demo``.

The offline ``rules`` model never proposes a call the approval gate would refuse, so a run
with it never shows what the gate is for. This model behaves like the hosted model of the
story the demo tells: it investigates correctly (the ``rules`` model's own queries and policy
lookups), then, with a factual answer in hand, tries to send it as a reply
(``draft_customer_email``) even when the email must go to a person. When the gate refuses, it
reads the refusal and stops; the graph escalates and the model files the ticket.

It is deterministic and offline, and it is never a configurable ``--model``: it exists to be
watched, not to triage real mail.
"""

from __future__ import annotations

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from pydantic import Field

from mediavault.agent.models.offline_chat import InProcessChatModel
from mediavault.agent.models.rules_model import RulesChatModel

#: How the model is named wherever the demo prints it.
DEMONSTRATION_MODEL_LABEL = "demonstration model (scripted, overconfident; not a language model)"

DRAFT_TOOL = "draft_customer_email"
INVESTIGATION_MARKER = "run_sql_query"
#: What the model says after the gate refused its reply (it no longer proposes tool calls).
STANDING_DOWN = "The gate refused the reply; this email goes to a person instead."


class OverconfidentChatModel(InProcessChatModel):
    """Investigates like ``rules``, then proposes a reply during the investigation itself.

    It keeps no memory between calls: whether it already tried to reply is read from the
    conversation, so every run of the same email makes the same calls.
    """

    rules: RulesChatModel = Field(default_factory=RulesChatModel)

    @property
    def _llm_type(self) -> str:
        return "mediavault-demonstration"

    def _answer(self, messages: list[BaseMessage], tools: list[str]) -> AIMessage:
        if INVESTIGATION_MARKER not in tools:
            return self._rules_answer(messages, tools)
        if _reply_refused(messages):
            return AIMessage(content=STANDING_DOWN)
        investigating = self._rules_answer(messages, tools)
        if investigating.tool_calls:
            return investigating
        # The facts are in; an overconfident model answers the customer itself.
        drafted = self._rules_answer(messages, [DRAFT_TOOL])
        calls = [c for c in drafted.tool_calls if c["name"] == DRAFT_TOOL][:1]
        if not calls:
            return investigating
        call = {**calls[0], "id": "demo-reply-1"}
        return AIMessage(content="I have the facts; replying to the customer.", tool_calls=[call],
                         usage_metadata=drafted.usage_metadata)

    def _rules_answer(self, messages: list[BaseMessage], tools: list[str]) -> AIMessage:
        formatted = [{"type": "function", "function": {"name": name, "parameters": {}}}
                     for name in tools]
        answer = (self.rules.invoke(messages, tools=formatted) if tools
                  else self.rules.invoke(messages))
        assert isinstance(answer, AIMessage)
        return answer


def _reply_refused(messages: list[BaseMessage]) -> bool:
    """Whether the gate already answered one of this model's replies with an error."""
    return any(isinstance(m, ToolMessage) and m.name == DRAFT_TOOL and m.status == "error"
               for m in messages) or any(
        isinstance(m, ToolMessage) and m.tool_call_id == "demo-reply-1" for m in messages)


__all__ = ["DEMONSTRATION_MODEL_LABEL", "OverconfidentChatModel"]
