"""The demo's second act: one email run again with the overconfident demonstration model.

The run writes to its own state directory (``<home>/demonstration``) and reads the same demo
database, so the real outcomes stay untouched and a second ``mediavault demo`` returns the
recorded run instead of repeating it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mediavault.agent.api import TriageResult, triage_email
from mediavault.agent.ops.review_desk import case_store_if_any
from mediavault.graph.context import Context
from mediavault.graph.inbound_email import InboundEmail

DEMONSTRATION_FOLDER = "demonstration"


def demonstration_context(context: Context) -> Context:
    """``context`` with its own home under the real one and the same business database."""
    # Always files: the demonstration never writes into a shared Postgres state database.
    return replace(context, home=context.home / DEMONSTRATION_FOLDER,
                   db=str(context.db) if context.db else str(context.db_path), state_db=None)


def run_demonstration(email: InboundEmail, context: Context) -> TriageResult:
    """Triage ``email`` with the demonstration model in the demonstration home."""
    from mediavault.agent.models.demonstration_model import OverconfidentChatModel

    return triage_email(email, context=demonstration_context(context),
                        model=OverconfidentChatModel())


@dataclass(frozen=True)
class DemoTally:
    """What the closing line of the demo counts for one set of runs."""

    drafted: int
    escalated: int
    failed: int
    gate_refusals: int
    #: Replies written to the outbox without a person's approve or edit (review turned off).
    unreviewed_replies: int


def demo_tally(results: Sequence[TriageResult], context: Context) -> DemoTally:
    """Count outcomes and the gate's refusals; check every reply in the outbox for a review."""
    unreviewed = 0
    store = case_store_if_any(context)
    if store is not None:
        for case in store.list_cases(status="approved"):
            if case.outbox is not None and not any(
                    r.decision in ("approve", "edit") for r in case.reviews):
                unreviewed += 1
    return DemoTally(
        drafted=sum(1 for r in results if r.route == "draft"),
        escalated=sum(1 for r in results if r.status == "escalated"),
        failed=sum(1 for r in results if r.status == "failed"),
        gate_refusals=sum(r.gate_denials for r in results),
        unreviewed_replies=unreviewed,
    )


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def closing_line(inbox: DemoTally, demonstration: DemoTally | None = None) -> str:
    """The demo's last line: what happened, in the words of the story it tells."""
    line = (f"Sample inbox: {_plural(inbox.drafted, 'email')} drafted for review, "
            f"{inbox.escalated} escalated")
    if inbox.failed:
        line += f", {inbox.failed} failed"
    line += f", the gate refused {_plural(inbox.gate_refusals, 'call')}."
    if demonstration is not None:
        ending = "escalated" if demonstration.escalated else "not escalated"
        line += (f" Demonstration: the gate refused {_plural(demonstration.gate_refusals, 'call')}"
                 f" and the email was {ending}.")
    unreviewed = inbox.unreviewed_replies + (demonstration.unreviewed_replies
                                            if demonstration else 0)
    if unreviewed:
        line += (f" {_plural(unreviewed, 'reply', 'replies')} went to the outbox without a "
                 "reviewer (review is turned off for their reason codes).")
    else:
        line += " No reply was sent unreviewed."
    return line


def demonstration_home(context: Context) -> Path:
    """Where the demonstration run is recorded."""
    return context.home / DEMONSTRATION_FOLDER


__all__ = ["DemoTally", "closing_line", "demo_tally", "demonstration_context",
           "demonstration_home", "run_demonstration"]
