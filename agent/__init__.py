"""MediaVault support agent: the public Python API.

    from agent import triage_email, resume, pending_reviews, Context

    result = triage_email({"email_id": "e1", "received_at": "2026-03-01T09:00:00",
                           "from": "customer@example.com", "subject": "...", "body": "..."})

Names are imported lazily so that ``import agent`` stays cheap and free of import cycles.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.api import (
        NoPendingReview,
        ReviewDecision,
        TriageResult,
        atriage_email,
        pending_reviews,
        resume,
        triage_email,
    )
    from agent.batch import run_triage_batch, triage_batch
    from agent.context import ConfigurationError, Context
    from agent.emails import InboundEmail
    from agent.review_desk import (
        approve_draft,
        edit_draft,
        escalate_case,
        list_pending_reviews,
        reject_draft,
        show_case,
    )
    from graph.builder import build_graph
    from graph.decision import TriageDecision
    from tools.drafting import CustomerReply, DraftRequest
    from tools.escalation_ticket import EscalationTicket

_EXPORTS = {
    "atriage_email": "agent.api",
    "triage_batch": "agent.batch",
    "run_triage_batch": "agent.batch",
    "list_pending_reviews": "agent.review_desk",
    "show_case": "agent.review_desk",
    "approve_draft": "agent.review_desk",
    "edit_draft": "agent.review_desk",
    "reject_draft": "agent.review_desk",
    "escalate_case": "agent.review_desk",
    "triage_email": "agent.api",
    "resume": "agent.api",
    "pending_reviews": "agent.api",
    "TriageResult": "agent.api",
    "ReviewDecision": "agent.api",
    "NoPendingReview": "agent.api",
    "Context": "agent.context",
    "ConfigurationError": "agent.context",
    "InboundEmail": "agent.emails",
    "build_graph": "graph.builder",
    "TriageDecision": "graph.decision",
    "DraftRequest": "tools.drafting",
    "CustomerReply": "tools.drafting",
    "EscalationTicket": "tools.escalation_ticket",
}

__all__ = [
    "ConfigurationError",
    "Context",
    "CustomerReply",
    "DraftRequest",
    "EscalationTicket",
    "InboundEmail",
    "NoPendingReview",
    "ReviewDecision",
    "TriageDecision",
    "TriageResult",
    "approve_draft",
    "atriage_email",
    "build_graph",
    "edit_draft",
    "escalate_case",
    "list_pending_reviews",
    "pending_reviews",
    "reject_draft",
    "resume",
    "run_triage_batch",
    "show_case",
    "triage_batch",
    "triage_email",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agent' has no attribute {name!r}")
    return getattr(import_module(module), name)
