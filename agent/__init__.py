"""MediaVault support agent: the public Python API.

    from mediavault.agent import triage_email, resume, pending_reviews, Context

    result = triage_email({"email_id": "e1", "received_at": "2026-03-01T09:00:00",
                           "from": "customer@example.com", "subject": "...", "body": "..."})

Names are imported lazily so that ``import agent`` stays cheap and free of import cycles.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mediavault.agent.api import (
        NoPendingReview,
        ReviewDecision,
        TriageResult,
        atriage_email,
        pending_reviews,
        resume,
        triage_email,
    )
    from mediavault.agent.ops.batch import run_triage_batch, triage_batch
    from mediavault.agent.ops.review_desk import (
        approve_draft,
        edit_draft,
        escalate_case,
        list_pending_reviews,
        reject_draft,
        show_case,
    )
    from mediavault.agent.wiring import build_graph
    from mediavault.graph.context import ConfigurationError, Context
    from mediavault.graph.decision import TriageDecision
    from mediavault.graph.inbound_email import InboundEmail
    from mediavault.tools.drafting.reply import CustomerReply, DraftRequest
    from mediavault.tools.escalation_ticket import EscalationTicket

_EXPORTS = {
    "atriage_email": "mediavault.agent.api",
    "triage_batch": "mediavault.agent.ops.batch",
    "run_triage_batch": "mediavault.agent.ops.batch",
    "list_pending_reviews": "mediavault.agent.ops.review_desk",
    "show_case": "mediavault.agent.ops.review_desk",
    "approve_draft": "mediavault.agent.ops.review_desk",
    "edit_draft": "mediavault.agent.ops.review_desk",
    "reject_draft": "mediavault.agent.ops.review_desk",
    "escalate_case": "mediavault.agent.ops.review_desk",
    "triage_email": "mediavault.agent.api",
    "resume": "mediavault.agent.api",
    "pending_reviews": "mediavault.agent.api",
    "TriageResult": "mediavault.agent.api",
    "ReviewDecision": "mediavault.agent.api",
    "NoPendingReview": "mediavault.agent.api",
    "Context": "mediavault.graph.context",
    "ConfigurationError": "mediavault.graph.context",
    "InboundEmail": "mediavault.graph.inbound_email",
    "build_graph": "mediavault.agent.wiring",
    "TriageDecision": "mediavault.graph.decision",
    "DraftRequest": "mediavault.tools.drafting.reply",
    "CustomerReply": "mediavault.tools.drafting.reply",
    "EscalationTicket": "mediavault.tools.escalation_ticket",
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
