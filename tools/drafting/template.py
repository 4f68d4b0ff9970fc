"""The house template: the model's content laid out, addressed to the sender, signed."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from mediavault.policies import policy_rules
from mediavault.tools.drafting.content import CustomerReply, DraftRequest
from mediavault.tools.drafting.reading import one_line as _one_line
from mediavault.tools.email_fields import MAX_SUBJECT_CHARS, split_sender

_HONORIFICS = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam"})
_NAME_TOKEN = re.compile(r"^[^\W\d_]+(?:['’-][^\W\d_]+)*$")
_REPLY_PREFIX = re.compile(r"^(?:\s*(?:re|aw|sv)\s*(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_SUMMARY_LEAD = re.compile(
    r"^(?:thank you for writing to us about|your (?:message|e-?mail|note|letter) "
    r"(?:about|regarding|concerning|on))\s+",
    re.IGNORECASE,
)
_LOWER_FIRST = frozenset(
    {"your", "the", "a", "an", "some", "this", "that", "these", "those", "how", "why", "what",
     "whether", "when", "where", "which", "late", "our"}
)
_BULLET_LEAD = re.compile(r"^(?:[-*•·]\s+|\d+[.)]\s+)")
APOLOGY = "We are sorry for the trouble and frustration this has caused you."
FALLBACK_SUBJECT = "Your message to MediaVault"


def greeting_name(customer_name: str | None) -> str | None:
    """The first name to greet, or None when the name is missing or does not look like one.

    Names from the database are often upper case ("MARY SMITH"), so case is tidied; anything
    that is not plainly a name (brackets, digits, markup) is dropped in favour of "Hello,".
    """
    if not customer_name:
        return None
    tokens = unicodedata.normalize("NFKC", customer_name).split()
    while tokens and tokens[0].rstrip(".").lower() in _HONORIFICS:
        tokens.pop(0)
    if not tokens or len(tokens[0]) > 40 or not _NAME_TOKEN.match(tokens[0]):
        return None
    first = tokens[0]
    if first.isupper() or first.islower():
        first = first.title()
    return first


def reply_subject(subject: str) -> str:
    """``Re: <subject>`` on one line, never ``Re: Re:``."""
    text = _one_line(re.sub(r"[\x00-\x1f\x7f\x85\u2028\u2029]", " ", subject))
    text = _REPLY_PREFIX.sub("", text).strip() or FALLBACK_SUBJECT
    return f"Re: {text}"[:MAX_SUBJECT_CHARS]


def _summary_clause(summary: str) -> str:
    clause = _SUMMARY_LEAD.sub("", _one_line(summary)).rstrip(" .!?;:,")
    first, _, rest = clause.partition(" ")
    # "Your late fee" reads "about your late fee"; "ACADEMY DINOSAUR" and names stay as written.
    capitalised = first[:1].isupper() and (len(first) == 1 or first[1:].islower())
    if first.lower() in _LOWER_FIRST and capitalised:
        clause = f"{first.lower()} {rest}".rstrip()
    return clause or "your message"


def _bullets(items: Iterable[str]) -> list[str]:
    lines = []
    for item in items:
        text = _BULLET_LEAD.sub("", _one_line(item))
        if text:
            lines.append(f"- {text}")
    return lines


def compose_reply(
    request: DraftRequest, *, customer_name: str | None, sender_address: str, subject: str
) -> CustomerReply:
    """Lay the model's content out in the house template, addressed to the sender.

    The recipient is always ``sender_address``, whatever ``request.to`` says; the caller checks
    ``request.to`` through :func:`validate_reply` (see :func:`prepare_draft`).
    """
    _, recipient = split_sender(sender_address)
    name = greeting_name(customer_name)
    paragraphs: list[list[str]] = [[f"Hello {name}," if name else "Hello,"]]
    opening = f"Thank you for writing to us about {_summary_clause(request.summary)}."
    # The policy asks for the apology before anything is explained.
    paragraphs.append([f"{APOLOGY} {opening}" if request.tone == "apologetic" else opening])
    for heading, items in (
        ("Here is what we found:", request.findings),
        ("What our policy says:", request.policy_points),
        ("What happens next:", request.next_steps),
    ):
        bullets = _bullets(items)
        if bullets:
            paragraphs.append([heading, *bullets])
    paragraphs.append(["Kind regards,", policy_rules().communication.sign_off])
    body = "\n\n".join("\n".join(lines) for lines in paragraphs) + "\n"
    return CustomerReply(
        to=recipient,
        subject=reply_subject(subject),
        body=body,
        policy_refs=list(dict.fromkeys(request.policy_refs)),
    )

