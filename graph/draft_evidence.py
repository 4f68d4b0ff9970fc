"""The evidence a draft may draw on, read from the state (never from what the model claims).

Grounding (``tools.drafting.grounding``) needs the tool results of this email's investigation,
the customer's own message and the customer-facing policy text. They are collected here from
the recorded ToolMessages, so a fact the model invents has nowhere to come from.
"""

from __future__ import annotations

from functools import cache

from langchain_core.messages import ToolMessage
from langgraph.runtime import Runtime

from mediavault.graph.context import Context
from mediavault.graph.ports import node_services
from mediavault.graph.state import TriageState
from mediavault.policies import policy_rules
from mediavault.tools.agent_tools import INVESTIGATION_TOOLS
from mediavault.tools.drafting.grounding import GroundingEvidence


@cache
def _policy_sections() -> tuple[tuple[str, str], ...]:
    from mediavault.tools.policy_retrieval import default_policy_library

    return tuple(
        (section.id, f"{section.title}\n{section.customer_text}")
        for section in default_policy_library().sections()
    )


def grounding_evidence(state: TriageState, runtime: Runtime[Context]) -> GroundingEvidence:
    """This email's evidence: investigation results, the customer's message, the policy."""
    email = state["email"]
    results = [
        (str(message.name), str(message.tool_call_id), str(message.content))
        for message in state.get("messages", [])
        if isinstance(message, ToolMessage) and message.name in INVESTIGATION_TOOLS
        and message.status != "error"
    ]
    customer = state.get("customer") or {}
    own_words = "\n".join(
        str(part) for part in (email.get("subject"), email.get("body"),
                               email.get("sender_name"), customer.get("first_name"),
                               customer.get("last_name")) if part
    )
    try:
        today = node_services(runtime).business_date()
    except Exception:  # no business database (a unit test's context): dates still trace to rows
        today = None
    return GroundingEvidence.from_tool_results(
        results,
        customer_message=own_words,
        policy_sections=_policy_sections(),
        fee_per_started_day=policy_rules().late_fees.fee_per_started_day,
        business_date=today,
    )
