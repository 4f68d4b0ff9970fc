"""MediaVault support agent: triage support email safely, review drafts, audit.

The public Python API, importable from the package root::

    from mediavault import Context, triage_email

    result = triage_email({"email_id": "e1", "received_at": "2026-03-01T09:00:00Z",
                           "from": "customer@example.com", "subject": "Due date?",
                           "body": "When is my film due back?"})

The layers are subpackages: ``mediavault.agent`` (the application: API, stores, models, CLI,
web console), ``mediavault.graph`` (the Email Triage state machine and the ports it needs),
``mediavault.tools`` (tools and the data-safety layer), ``mediavault.policies``,
``mediavault.skills`` and ``mediavault.evals``. Names are resolved lazily, so importing the
package loads neither the graph nor a model client.
"""

from __future__ import annotations

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
    if name in __all__:
        from mediavault import agent

        return getattr(agent, name)
    raise AttributeError(f"module 'mediavault' has no attribute {name!r}")
