"""The demo's second act: one email run again with the overconfident demonstration model.

The run writes to its own state directory (``<home>/demonstration``) and reads the same demo
database, so the real outcomes stay untouched and a second ``mediavault demo`` returns the
recorded run instead of repeating it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from mediavault.agent.api import TriageResult, triage_email
from mediavault.agent.ops.case_trace import CaseTrace
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


@dataclass(frozen=True)
class DemoStory:
    """What ``mediavault demo`` tells after its outcome table, as data."""

    trace: CaseTrace
    inbox: DemoTally
    demonstration_home: Path
    demonstration_trace: CaseTrace | None = None
    demonstration: DemoTally | None = None
    #: Why the demonstration could not run (the outcomes and the first trace still stand).
    demonstration_problem: str | None = None

    @property
    def closing(self) -> str:
        return closing_line(self.inbox, self.demonstration)

    def as_dict(self) -> dict[str, Any]:
        """The story for ``demo --json``."""
        def traced(trace: CaseTrace | None) -> dict[str, Any] | None:
            if trace is None:
                return None
            return {**trace.model_dump(mode="json"), "gate_denials": trace.gate_denials}

        from mediavault.agent.models.demonstration_model import DEMONSTRATION_MODEL_LABEL

        return {
            "trace": traced(self.trace),
            "demonstration": {
                "model": DEMONSTRATION_MODEL_LABEL,
                "home": str(self.demonstration_home),
                "trace": traced(self.demonstration_trace),
                "counts": asdict(self.demonstration) if self.demonstration else None,
                "problem": self.demonstration_problem,
            },
            "counts": asdict(self.inbox),
            "closing": self.closing,
        }


def tell_demo_story(
    context: Context, results: Sequence[TriageResult], first: InboundEmail
) -> DemoStory:
    """The first email's trace, the same email run with the demonstration model, the counts.

    ``results`` are the inbox's outcomes; ``first`` is the email whose story is told.
    """
    from mediavault.agent.ops.case_trace import case_trace

    staged = demonstration_context(context)
    story = DemoStory(trace=case_trace(first.email_id, context),
                      inbox=demo_tally(results, context), demonstration_home=staged.home)
    try:
        result = run_demonstration(first, context)
    except Exception as problem:  # the story is a bonus; the outcomes and first trace stand
        return replace(story, demonstration_problem=f"{type(problem).__name__}: {problem}")
    return replace(story, demonstration_trace=case_trace(first.email_id, staged),
                   demonstration=demo_tally([result], staged))


__all__ = ["DemoStory", "DemoTally", "closing_line", "demo_tally", "demonstration_context",
           "demonstration_home", "run_demonstration", "tell_demo_story"]
