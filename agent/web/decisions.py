"""Apply a reviewer's decision from the console, once, to the draft the reviewer saw.

The review desk (:mod:`agent.ops.review_desk`) does the work: one decision at a time per state
directory, refused edits with their reasons, "already decided" for the second of two
reviewers. The console adds the review token its forms carry (see
:func:`~agent.web.case_view.review_token`), checked under the desk's decision lock so that
checking and deciding are one step, across requests and processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mediavault.agent.ops import review_desk
from mediavault.agent.web.case_view import review_token
from mediavault.graph.context import Context

Result = Literal["done", "invalid", "already_decided", "stale", "not_found"]
Kind = Literal["approve", "edit", "reject", "escalate"]

@dataclass(frozen=True)
class DecisionOutcome:
    """What became of a decision: applied, refused with reasons, or too late."""

    result: Result
    message: str
    status: str | None = None
    problems: tuple[str, ...] = field(default=())

    @property
    def applied(self) -> bool:
        return self.result == "done"


@dataclass(frozen=True)
class Decision:
    """A decision as a form or an API call states it."""

    kind: Kind
    reviewer: str
    body: str | None = None
    reason_category: str | None = None
    message: str | None = None
    queue: str | None = None


def _apply(context: Context, email_id: str, decision: Decision) -> review_desk.ReviewOutcome:
    who = decision.reviewer
    if decision.kind == "approve":
        return review_desk.approve_draft(email_id, reviewer=who, context=context)
    if decision.kind == "edit":
        return review_desk.edit_draft(email_id, decision.body or "", reviewer=who, context=context)
    if decision.kind == "reject":
        return review_desk.reject_draft(
            email_id,
            reason=decision.reason_category or "",
            message=decision.message or "",
            reviewer=who,
            context=context,
        )
    return review_desk.escalate_case(
        email_id,
        queue=decision.queue or "",
        message=decision.message,
        reviewer=who,
        context=context,
    )


def apply_decision(
    context: Context, email_id: str, decision: Decision, *, expected_token: str | None = None
) -> DecisionOutcome:
    """Apply ``decision``; its reviewer is recorded in the case store and the audit log.

    With ``expected_token`` the decision applies only to the draft that token names.
    """
    try:
        with review_desk.deciding(context, email_id):
            if expected_token is not None:
                current = review_desk.show_case(email_id, context)
                if current.awaiting_review and review_token(current) != expected_token:
                    return DecisionOutcome(
                        "stale",
                        "The draft changed since you opened it (another reviewer "
                        "acted). Read the current draft and decide again.",
                        status=current.status,
                    )
            outcome = _apply(context, email_id, decision)
    except review_desk.CaseNotFound as problem:
        return DecisionOutcome("not_found", str(problem))
    except review_desk.EditRefused as problem:
        return DecisionOutcome(
            "invalid",
            "The edit was not accepted; the draft is unchanged.",
            status="awaiting_review",
            problems=problem.problems,
        )
    except review_desk.InvalidDecision as problem:
        return DecisionOutcome(
            "invalid", f"The decision was refused: {problem}", problems=(str(problem),)
        )
    except review_desk.DraftChanged as problem:
        return DecisionOutcome("stale", f"The draft changed since you opened it: {problem}")
    except review_desk.NoReviewWaiting as problem:
        # ReviewAlreadyDecided included: the second of two reviewers lands here.
        return DecisionOutcome("already_decided", f"Not recorded: {problem}.")
    return DecisionOutcome("done", outcome.summary + ".", status=outcome.status)
