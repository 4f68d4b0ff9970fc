"""Customer replies: the template that writes them and the validator every reply must pass.

The model never writes the e-mail itself. It supplies structured content (:class:`DraftRequest`)
and :func:`compose_reply` lays it out in the house template, addressed to the sender and signed
as the policy says. :func:`validate_reply` then checks the text the way a careful reviewer
would, and the same function checks a reviewer's edited text before it is sent:

* the policy's forbidden phrases, in any disguise (case, spacing, zero-width characters,
  Cyrillic or Greek look-alike letters, accents, digits standing in for letters);
* the sign-off, the length bounds and left-over template placeholders;
* staff-only policy text (the policy document's ``Internal:`` lines);
* data loss: e-mail addresses, phone numbers and street addresses other than the sender's own,
  and links, images or HTML of any kind.

Everything is plain text; the checks assume the text may have been written by an attacker who
got instructions into the customer's e-mail.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from pydantic import BaseModel, ConfigDict, Field

from mediavault.tools.drafting.content import CustomerReply, DraftRequest
from mediavault.tools.drafting.grounding import (
    FactProvenance,
    GroundingEvidence,
    draft_content_text,
    ground_text,
)
from mediavault.tools.drafting.problems import ValidationProblem, ValidationReport
from mediavault.tools.drafting.reading import fold_text
from mediavault.tools.drafting.staff_only import resolve_internal, strip_internal_policy_text
from mediavault.tools.drafting.template import APOLOGY, compose_reply, greeting_name, reply_subject
from mediavault.tools.drafting.validation import validate_reply


class DraftOutcome(BaseModel):
    """A composed reply, the validator's verdict on it, and where each of its facts came from
    (when evidence was given)."""

    model_config = ConfigDict(frozen=True)

    reply: CustomerReply
    report: ValidationReport
    provenance: list[FactProvenance] = Field(default_factory=list)


def prepare_draft(
    request: DraftRequest,
    *,
    customer_name: str | None,
    sender_address: str,
    subject: str,
    allowed_contacts: Collection[str],
    internal_phrases: Iterable[str] | None = None,
    film_titles: Iterable[str] = (),
    evidence: GroundingEvidence | None = None,
) -> DraftOutcome:
    """Compose the reply for ``request`` and validate it.

    Staff-only sentences are dropped from the policy points before composing; the recipient the
    model asked for (``request.to``) is checked, while the reply itself always goes to the sender.
    With ``evidence``, every fact of the model's content must trace to it (see
    :mod:`~mediavault.tools.drafting.grounding`); the outcome lists each fact's source.
    """
    phrases = resolve_internal(internal_phrases)
    points = [
        kept
        for point in request.policy_points
        if (kept := strip_internal_policy_text(point, phrases))
    ]
    reply = compose_reply(
        request.model_copy(update={"policy_points": points}),
        customer_name=customer_name,
        sender_address=sender_address,
        subject=subject,
    )
    report = validate_reply(
        reply.body,
        sender_address=sender_address,
        allowed_contacts=allowed_contacts,
        recipient=request.to,
        internal_phrases=phrases,
        film_titles=[*film_titles, *(evidence.film_titles() if evidence else ())],
    )
    if evidence is None:
        return DraftOutcome(reply=reply, report=report)
    content = draft_content_text(
        [request.summary, *request.findings, *points, *request.next_steps])
    grounding = ground_text(content, evidence)
    if not grounding.grounded:
        report = ValidationReport.from_problems([*report.problems, *grounding.problems()])
    return DraftOutcome(reply=reply, report=report, provenance=grounding.traced)


__all__ = [
    "APOLOGY",
    "CustomerReply",
    "DraftOutcome",
    "DraftRequest",
    "FactProvenance",
    "GroundingEvidence",
    "ValidationProblem",
    "ValidationReport",
    "compose_reply",
    "fold_text",
    "greeting_name",
    "prepare_draft",
    "reply_subject",
    "strip_internal_policy_text",
    "validate_reply",
]

