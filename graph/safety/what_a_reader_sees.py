"""The safety check's view of one email: its readable parts, its language, its findings.

Ingest keeps the email's main body (new text and quoted history apart) and its extra parts
(``InboundEmail.parts``: an alternative that says more than the body, other inline parts, text
attachments, forwarded messages). This module hands all of them to the risk rules, decides
whether the configured model can answer the email's language, and words the findings for the
ticket, the case view and the review console.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mediavault.graph.context import Context
from mediavault.graph.safety.rules import RiskAssessment, Where
from mediavault.tools.text_language import LanguageGuess, detect_language

__all__ = ["answerable_language", "email_language", "reader_parts", "risk_findings"]

_PART_KINDS: dict[str, Where] = {
    "alternative": "alternative",
    "inline_part": "inline_part",
    "attachment": "attachment",
    "forwarded": "forwarded",
}
#: The offline model's LangChain type: it answers English only.
OFFLINE_MODEL_TYPE = "mediavault-rules"
#: Characters of new text given to the language identifier (enough to judge, cheap to run).
_LANGUAGE_SAMPLE_CHARS = 2_000


def reader_parts(email: Mapping[str, Any]) -> list[tuple[Where, str, str]]:
    """``(where, label, text)`` for every extra part of an ingested email dict."""
    parts: list[tuple[Where, str, str]] = []
    for part in email.get("parts") or ():
        kind = _PART_KINDS.get(str(part.get("kind", "")), "attachment")
        parts.append((kind, str(part.get("label", ""))[:200], str(part.get("text", ""))))
    return parts


def email_language(email: Mapping[str, Any]) -> LanguageGuess:
    """The language of the new text (subject and body, not quoted history)."""
    text = f"{email.get('subject', '')}\n{email.get('body', '')}"
    return detect_language(text[:_LANGUAGE_SAMPLE_CHARS])


def answerable_language(language: LanguageGuess, context: Context) -> bool:
    """Whether the configured model can answer an email in ``language``.

    A hosted model writes any language; the offline rules model only English. A guess the
    identifier is not sure of counts as English (see ``tools.text_language``).
    """
    if language.is_english:
        return True
    model = context.chat_model
    if model is not None:
        return str(getattr(model, "_llm_type", "")) != OFFLINE_MODEL_TYPE
    return context.model.strip() != "rules"


def risk_findings(assessment: RiskAssessment) -> list[str]:
    """One line per flag, most severe first: category, rule, part and the matched words."""
    return [flag.describe() for flag in assessment.flags]
