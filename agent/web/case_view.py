"""Small facts the console shows about a case beyond the review desk's case file."""

from __future__ import annotations

from datetime import datetime

from mediavault.agent.ops.review_desk import CaseFile
from mediavault.agent.stores.case_store import CaseRecord
from mediavault.policies import policy_rules


def review_token(case: CaseFile | CaseRecord) -> str:
    """Names the draft a reviewer is looking at: it changes with every new draft or decision.

    A decision sent with an older token was made on something the reviewer no longer sees.
    The draft version alone is not enough: a revision after a rejection may repeat the text
    (and so the version), but the reviewer has not seen that rejection.
    """
    draft = case.draft if isinstance(case, CaseFile) else case.latest_draft
    return f"v{draft.version if draft else 0}-r{len(case.reviews)}"


def team_queue(case: CaseRecord) -> str | None:
    """The queue that handles the case: its escalation queue, else the policy's for its code."""
    if case.queue:
        return case.queue
    if case.ticket and case.ticket.queue:
        return case.ticket.queue
    return policy_rules().queue_for(case.reason_code) if case.reason_code else None


def age_text(since: datetime, now: datetime) -> str:
    """A short, human age such as ``3 d 4 h``, ``2 h 5 min`` or ``just now``."""
    seconds = int((now - since).total_seconds())
    if seconds < 60:
        return "just now"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if days:
        return f"{days} d {hours % 24} h"
    if hours:
        return f"{hours} h {minutes % 60} min"
    return f"{minutes} min"
