"""The validator every reply passes, the model's and a reviewer's edit alike."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from email.utils import getaddresses

from mediavault.policies import policy_rules
from mediavault.tools.drafting.dlp import (
    Contacts,
    find_contact_data,
    find_contact_leaks,
    find_links,
    find_markup_and_placeholders,
)
from mediavault.tools.drafting.problems import ValidationProblem, ValidationReport
from mediavault.tools.drafting.reading import fold_text
from mediavault.tools.drafting.reading import one_line as _one_line
from mediavault.tools.drafting.staff_only import (
    find_forbidden_words,
    find_staff_only_material,
    forbidden_patterns,
    internal_windows,
    repeats_internal_text,
    resolve_internal,
)
from mediavault.tools.email_fields import split_sender


def _recipient_problem(recipient: str | None, sender: str) -> ValidationProblem | None:
    if recipient is None:
        return None
    problem = ValidationProblem(
        code="wrong_recipient", detail="a reply may only be addressed to the sender of the e-mail"
    )
    if not recipient.strip():
        return None
    if re.search(r"[\r\n]", recipient):
        return problem
    addresses = [address for _, address in getaddresses([recipient]) if address]
    if len(addresses) != 1 or addresses[0].strip().casefold() != sender:
        return problem
    return None


def _mask_titles(folded: str, film_titles: Iterable[str]) -> str:
    for title in sorted({_one_line(t) for t in film_titles if t.strip()}, key=len, reverse=True):
        words = [re.escape(word) for word in fold_text(title).split()]
        folded = re.sub(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", " ", folded, flags=re.I)
    return folded


# A reply longer than this is invalid anyway (too_long); reading only this much keeps a huge
# pasted edit from tying up the validator, and never makes an invalid reply look valid.
_MAX_SCANNED_CHARS = 20_000


def validate_reply(
    text: str,
    *,
    sender_address: str,
    allowed_contacts: Collection[str] = (),
    recipient: str | None = None,
    internal_phrases: Iterable[str] | None = None,
    film_titles: Iterable[str] = (),
) -> ValidationReport:
    """Check a reply text (composed or edited by a reviewer) before anyone may send it.

    ``allowed_contacts`` are the sender's own details that a reply may repeat (their phone
    number, postal address, other addresses on file); the sender's address always is.
    ``recipient`` is the address the reply would go to, when someone chose one.
    ``internal_phrases`` default to the shipped policy's staff-only lines. ``film_titles`` are
    catalog titles mentioned in the reply: a title such as "CONFIDENTIAL HARBOR" is a name, not
    a forbidden phrase, so exact titles are not read for phrases or addresses.
    """
    sender = split_sender(sender_address)[1]
    communication = policy_rules().communication
    problems: list[ValidationProblem] = []

    recipient_problem = _recipient_problem(recipient, sender)
    if recipient_problem is not None:
        problems.append(recipient_problem)

    length = len(text.strip())
    if length < communication.draft_min_chars:
        problems.append(
            ValidationProblem(
                code="too_short",
                detail=f"{length} characters; a reply has at least {communication.draft_min_chars}",
            )
        )
    if length > communication.draft_max_chars:
        problems.append(
            ValidationProblem(
                code="too_long",
                detail=f"{length} characters; a reply has at most {communication.draft_max_chars}",
            )
        )

    # Every character of a reply short enough to be valid is read.
    scanned = text.strip()[: max(_MAX_SCANNED_CHARS, communication.draft_max_chars)]
    folded = fold_text(scanned)
    lines = [line for line in fold_text(text).splitlines() if line.strip()]
    last_line = lines[-1].strip(" \t-–—_*.,!:;\"'").casefold() if lines else ""
    if _one_line(last_line) != _one_line(fold_text(communication.sign_off).casefold()):
        problems.append(
            ValidationProblem(
                code="missing_sign_off",
                detail=f'the reply must end with "{communication.sign_off}" on its own line',
            )
        )

    readable = _mask_titles(folded, film_titles)
    lowered = " ".join(readable.casefold().split())
    for phrase, pattern in forbidden_patterns():
        if pattern.search(lowered):
            problems.append(
                ValidationProblem(code="forbidden_phrase", detail=f'contains "{phrase}"')
            )

    windows = internal_windows(resolve_internal(internal_phrases))
    if windows and repeats_internal_text(scanned, windows):
        # The detail never repeats the staff-only text itself.
        problems.append(
            ValidationProblem(
                code="internal_policy_text", detail="repeats a staff-only policy instruction"
            )
        )

    problems.extend(find_forbidden_words(readable))
    problems.extend(find_staff_only_material(readable))
    problems.extend(find_markup_and_placeholders(folded))
    problems.extend(find_links(folded))
    contacts = Contacts(sender, [*allowed_contacts, *communication.mediavault_addresses])
    problems.extend(find_contact_leaks(readable, contacts))
    problems.extend(find_contact_data(_mask_titles(scanned, film_titles), contacts))
    return ValidationReport.from_problems(problems)
