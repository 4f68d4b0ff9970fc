"""What the customer asks, and whether a reply answers all of it and reads as a lead would sign.

The decision lists the customer's asks (:class:`CustomerAsk`: the intent, the entities it names,
the sentence it comes from) whatever the model. Before a draft may wait for review it is checked
here against those asks: a reply that skips one is refused, so a model cannot answer a question
the customer did not ask while ignoring the one they did. The checks read the reply text only,
never the model's own claim about what it answered.

The communication guidelines in the policy (answer first, one apology, no bare commands) are
checked where a rule can check them: a duplicated apology and a bare "You must ...".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mediavault.tools.drafting.problems import ValidationProblem

AskSentence = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                               max_length=500)]
Entity = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]

#: Entity kinds an ask may name, written ``kind:value`` (``film:ARCTIC PILGRIM``).
ENTITY_KINDS = ("film", "amount", "date", "store", "rental")


class CustomerAsk(BaseModel):
    """One thing the customer asks or requests."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    intent: str = Field(description="The reason code this ask belongs to, e.g. rental_status, "
                        "or policy_question for a question the policy answers.")
    sentence: AskSentence = Field(description="The customer's sentence the ask comes from.")
    entities: list[Entity] = Field(
        default_factory=list, max_length=10,
        description="What the ask names, as kind:value with kind one of film, amount, date, "
        "store, rental (e.g. 'film:ARCTIC PILGRIM', 'amount:$4.99', 'date:2026-02-06').")

    def named(self, kind: str) -> list[str]:
        """The values of the entities of one kind."""
        prefix = f"{kind}:"
        return [e[len(prefix):].strip() for e in self.entities if e.startswith(prefix)]


# What an answer to each kind of ask carries, on the reply text folded to lower case: a date
# for a due date, an amount for a fee, a stock statement for an availability question.
_MONTH_DATE = (r"\b(?:january|february|march|april|may|june|july|august|september|october|"
               r"november|december) \d{1,2}, \d{4}\b")
_ANSWER_SHAPES: dict[str, re.Pattern[str]] = {
    "rental_status": re.compile(_MONTH_DATE + r"|no rentals?|not (?:currently )?checked out|"
                                r"was returned"),
    "billing_question": re.compile(r"\$\d"),
    "late_fee_dispute": re.compile(r"\$\d|" + _MONTH_DATE),
    "catalog_question": re.compile(r"\bstock|\bcatalog|\bcop(?:y|ies)\b|\$\d|\brated\b"),
    "policy_question": re.compile(r"\$\d|\bdays?\b|\bpolicy\b"),
    "praise": re.compile(r"\bthank|kind words|\bglad\b"),
    "complaint": re.compile(r"\bsorry\b|\bapologi"),
    "account_change": re.compile(r"\baccount\b|home store"),
}


def ask_is_answered(ask: CustomerAsk, reply_text: str) -> bool:
    """Whether ``reply_text`` carries an answer to ``ask``: every film it names, and the kind
    of fact its intent calls for."""
    folded = " ".join(reply_text.casefold().split())
    if any(title.casefold() not in folded for title in ask.named("film")):
        return False
    shape = _ANSWER_SHAPES.get(ask.intent)
    return shape is None or bool(shape.search(folded))


def unanswered_asks(asks: Sequence[CustomerAsk], reply_text: str) -> list[ValidationProblem]:
    """One ``ask_unanswered`` problem per ask the reply does not answer."""
    return [
        ValidationProblem(code="ask_unanswered",
                          detail=f"the reply does not answer the customer's "
                          f"{ask.intent.replace('_', ' ')} ask: {_quote(ask.sentence)}")
        for ask in asks if not ask_is_answered(ask, reply_text)
    ]


_APOLOGY = re.compile(r"\b(?:sorry|apologi[sz]e|apologies)\b", re.I)
# A command with nothing to soften it ("You must return ..."), at the start of a sentence.
_BARE_IMPERATIVE = re.compile(r"(?:^|[.!?]\s+|\n\s*(?:-\s*)?)(you (?:must|have to|are required "
                              r"to)\b[^.!?\n]{0,60})", re.I)


def reply_quality_problems(reply_text: str) -> list[ValidationProblem]:
    """What the communication guidelines forbid that a rule can see: more than one apology, a
    bare command to the customer."""
    problems: list[ValidationProblem] = []
    sentences = [s for s in re.split(r"(?<=[.!?])\s+|\n+", reply_text) if s.strip()]
    apologies = [s for s in sentences if _APOLOGY.search(s)]
    if len(apologies) > 1:
        problems.append(ValidationProblem(
            code="duplicate_apology",
            detail=f"{len(apologies)} apologies; the guidelines ask for one"))
    for match in _BARE_IMPERATIVE.finditer(reply_text):
        problems.append(ValidationProblem(
            code="bare_imperative",
            detail=f"a bare command to the customer: {_quote(match.group(1))}; say what they "
            "can do and why"))
        break
    return problems


def check_reply(asks: Iterable[CustomerAsk], reply_text: str) -> list[ValidationProblem]:
    """Every ask answered, and the guidelines' checkable rules kept."""
    return [*unanswered_asks(list(asks), reply_text), *reply_quality_problems(reply_text)]


def _quote(text: str, limit: int = 90) -> str:
    one_line = " ".join(text.split())
    return '"' + (one_line if len(one_line) <= limit else one_line[: limit - 3] + "...") + '"'


__all__ = [
    "ENTITY_KINDS",
    "CustomerAsk",
    "ask_is_answered",
    "check_reply",
    "reply_quality_problems",
    "unanswered_asks",
]
