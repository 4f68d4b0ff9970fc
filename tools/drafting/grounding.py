"""Grounding: every fact in a draft must come from this email's evidence.

A reply may state only what the records, the policy or the customer's own message say. The
model's content (summary, findings, policy points, next steps) is read for factual tokens:

* film titles (the catalogue writes them in capitals: "MIDNIGHT ORCHARD");
* amounts ("$3.00", "4.99 dollars"), dates in any common format, times of day;
* numbers: counts ("3 started days", "2 copies"), ids ("rental #15829", "store 2");
* names: capitalised words in the middle of a sentence ("Riverton", "Priya").

Each must be found in a source: a row of a query result, a policy section, the business date,
or the customer's message. Amounts and counts the policy computes from the records (started
days late, the fee they make, capped at the replacement cost) count as found in that row. A
fact found nowhere is *untraceable*, and a draft with one is refused with the list, so the model
can correct it; the provenance of every traced fact is kept with the draft for reviewers.

Nothing here trusts the model: the evidence is read from the tool results the graph recorded,
never from what the model says it found.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from mediavault.tools.drafting.problems import ValidationProblem
from mediavault.tools.text_folding import fold_lookalikes

FactKind = Literal["title", "amount", "date", "time", "number", "name"]
SourceKind = Literal["query_row", "policy_section", "customer_message", "business_date",
                     "tool_result", "template"]


class FactProvenance(BaseModel):
    """Where one fact of a draft came from, for the reviewer's screen."""

    model_config = ConfigDict(frozen=True)

    fact: str
    kind: FactKind
    source: SourceKind
    #: Which one: "run_sql_query <call id>, row 2", a policy section id, "customer message".
    reference: str


class GroundingReport(BaseModel):
    """Every fact found in a draft: traced ones with their source, and the untraceable ones."""

    model_config = ConfigDict(frozen=True)

    traced: list[FactProvenance]
    untraceable: list[str]

    @property
    def grounded(self) -> bool:
        return not self.untraceable

    def problems(self) -> list[ValidationProblem]:
        """One validation problem listing the untraceable facts, or none."""
        if self.grounded:
            return []
        listed = ", ".join(f'"{fact}"' for fact in self.untraceable[:12])
        return [ValidationProblem(
            code="ungrounded_fact",
            detail=f"facts found in no record, policy section or the customer's message: {listed}; "
            "state only what the evidence shows")]


# --------------------------------------------------------------------------------------------
# Evidence: the sources a fact may come from.

_SOURCE_PRIORITY: tuple[SourceKind, ...] = (
    "query_row", "business_date", "policy_section", "tool_result", "customer_message", "template")


@dataclass
class _Source:
    kind: SourceKind
    reference: str
    text: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class GroundingEvidence:
    """What one email's draft may draw on. Build it with :meth:`from_tool_results`."""

    sources: list[_Source] = field(default_factory=list)
    #: Amounts and counts the policy derives from a row, with that row's reference.
    derived: dict[str, tuple[SourceKind, str]] = field(default_factory=dict)
    fee_per_started_day: Decimal = Decimal("1.00")
    business_date: date | None = None

    def add_text(self, kind: SourceKind, reference: str, text: str) -> None:
        if text and text.strip():
            self.sources.append(_Source(kind, reference, text))

    def add_row(self, reference: str, row: Mapping[str, Any]) -> None:
        text = " ".join(f"{key} {value}" for key, value in row.items() if value is not None)
        self.sources.append(_Source("query_row", reference, text, dict(row)))
        self._derive_from_row(reference, row)

    def add_tool_result(self, tool: str, call_id: str, content: str) -> None:
        """A ToolMessage's content: query rows, policy hits, or plain text."""
        try:
            payload = json.loads(content)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("rows"), list):
            for index, row in enumerate(payload["rows"]):
                if isinstance(row, dict):
                    self.add_row(f"{tool} {call_id}, row {index + 1}", row)
            self._derive_totals(f"{tool} {call_id}", payload["rows"])
            if "row_count" in payload:
                self.derived.setdefault(
                    _number_key(str(payload["row_count"])),
                    ("query_row", f"{tool} {call_id}, row count"))
            return
        if isinstance(payload, list) and all(isinstance(hit, dict) for hit in payload):
            for hit in payload:
                section = str(hit.get("section_id") or "policy")
                self.add_text("policy_section", section,
                              f"{hit.get('title', '')}\n{hit.get('text', '')}")
            return
        if tool == "get_current_date":
            self.add_text("business_date", "business date", content)
            return
        self.add_text("tool_result", f"{tool} {call_id}", content)

    def _derive_from_row(self, reference: str, row: Mapping[str, Any]) -> None:
        # The late-fee arithmetic of the policy: started days past due, the fee they make,
        # capped at the replacement cost; plus the whole days and hours between the row's times.
        times = [t for t in (_as_datetime(v) for v in row.values()) if t is not None]
        due = _as_datetime(row.get("due_date"))
        returned = _as_datetime(row.get("return_date"))
        ends = [returned] if returned is not None else []
        if returned is None and due is not None and self.business_date is not None:
            # Still out: the days past due count up to the business date (its start or end).
            ends = [datetime.combine(self.business_date, datetime.min.time()),
                    datetime.combine(self.business_date, datetime.max.time())]
            times.extend(ends)
        cap = _as_decimal(row.get("replacement_cost"))
        for first in times:
            for second in times:
                if second <= first:
                    continue
                seconds = (second - first).total_seconds()
                days, rest = divmod(seconds, 86400)
                for number in (days, math.ceil(seconds / 86400), rest // 3600,
                               (rest % 3600) // 60, seconds // 3600):
                    self.derived.setdefault(_number_key(str(int(number))), ("query_row", reference))
        for end in ends:
            if due is None or end <= due:
                continue
            started = math.ceil((end - due).total_seconds() / 86400)
            fee = self.fee_per_started_day * started
            if cap is not None:
                fee = min(fee, cap)
            self.derived.setdefault(_amount_key(fee), ("query_row", reference))
            self.derived.setdefault(_number_key(str(started)), ("query_row", reference))

    def _derive_totals(self, reference: str, rows: list[Any]) -> None:
        # "Two payments of $0.99, $1.98 in all": a column's total over the rows is a fact of
        # those rows.
        totals: dict[str, Decimal] = {}
        for row in rows:
            if not isinstance(row, dict):
                continue
            for key, value in row.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    totals[key] = totals.get(key, Decimal(0)) + Decimal(str(value))
        for total in totals.values():
            self.derived.setdefault(_amount_key(total), ("query_row", f"{reference}, total"))

    @classmethod
    def from_tool_results(
        cls,
        tool_results: Iterable[tuple[str, str, str]],
        *,
        customer_message: str,
        policy_sections: Iterable[tuple[str, str]] = (),
        fee_per_started_day: Decimal | float = Decimal("1.00"),
        business_date: date | None = None,
    ) -> GroundingEvidence:
        """Evidence from ``(tool, call id, content)`` results, the customer's message and the
        policy's customer-facing sections ``(section id, text)``."""
        evidence = cls(fee_per_started_day=Decimal(str(fee_per_started_day)),
                       business_date=business_date)
        evidence.add_text("customer_message", "customer message", customer_message)
        for section_id, text in policy_sections:
            evidence.add_text("policy_section", section_id, text)
        if business_date is not None:
            evidence.add_text("business_date", "business date", business_date.isoformat())
        for tool, call_id, content in tool_results:
            evidence.add_tool_result(tool, call_id, content)
        return evidence

    def film_titles(self) -> list[str]:
        """Titles found in query rows (for the validator's title masking)."""
        titles = []
        for source in self.sources:
            for key, value in source.values.items():
                if "title" in key.lower() and isinstance(value, str):
                    titles.append(value)
        return titles

    # ----------------------------------------------------------------- looking facts up

    def _indexed(self) -> list[tuple[_Source, _SourceFacts]]:
        if not hasattr(self, "_index"):
            # Records first: a title the customer named and a row holds is cited by its row.
            ordered = sorted(self.sources, key=lambda s: _SOURCE_PRIORITY.index(s.kind))
            self._index = [(s, _SourceFacts.of(s.text)) for s in ordered]
        return self._index

    def find(self, kind: FactKind, key: str) -> tuple[SourceKind, str] | None:
        for source, facts in self._indexed():
            if key in facts.by_kind(kind):
                return source.kind, source.reference
        if kind in ("amount", "number") and key in self.derived:
            return self.derived[key]
        return None


# --------------------------------------------------------------------------------------------
# Facts: how they are read from text, in one canonical form so sources and drafts compare.

_MONTHS = {name: number for number, names in enumerate((
    ("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",),
    ("jun", "june"), ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"),
    ("oct", "october"), ("nov", "november"), ("dec", "december")), start=1) for name in names}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DATE_PATTERNS = (
    re.compile(r"\b(?P<year>\d{4})-(?P<mnum>\d{1,2})-(?P<day>\d{1,2})"),
    re.compile(r"\b(?P<day>\d{1,2})[/.](?P<mnum>\d{1,2})[/.](?P<year>\d{4})\b"),
    re.compile(r"\b(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH
               + r"(?:,?\s+(?P<year>\d{4}))?", re.IGNORECASE),
    re.compile(_MONTH + r"\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(?P<year>\d{4}))?",
               re.IGNORECASE),
)
_TIME = re.compile(r"\b(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::\d{2})?(?:\s*(?P<ampm>[ap]\.?m\.?))?",
                   re.IGNORECASE)
_AMOUNT = re.compile(
    r"[$€£]\s?(?P<a>\d[\d,]*(?:\.\d+)?)|(?P<b>\d[\d,]*(?:\.\d+)?)\s?(?:usd|eur|gbp|dollars?)\b",
    re.IGNORECASE)
_TITLE = re.compile(r"\b[A-Z][A-Z0-9'&:-]+(?:[ \t]+[A-Z0-9][A-Z0-9'&:-]+)*\b")
_NUMBER = re.compile(r"(?<![\d.,])\d+(?:\.\d+)?(?![\d])")


def _amount_key(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"


def _number_key(text: str) -> str:
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return text
    return str(value.normalize()) if value == value.to_integral() else str(value)


def _as_datetime(value: object) -> datetime | None:
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}", value):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")[:19])
    except ValueError:
        return None


def _as_decimal(value: object) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None


@dataclass
class _SourceFacts:
    titles: set[str]
    amounts: set[str]
    dates: set[str]
    times: set[str]
    numbers: set[str]
    words: set[str]

    def by_kind(self, kind: FactKind) -> set[str]:
        return {"title": self.titles, "amount": self.amounts, "date": self.dates,
                "time": self.times, "number": self.numbers, "name": self.words}[kind]

    @classmethod
    def of(cls, text: str) -> _SourceFacts:
        text = fold_lookalikes(text)
        amounts = {_amount_key(Decimal(_amount_text(m))) for m in _AMOUNT.finditer(text)}
        # A bare decimal in a record ("amount 4.99") is an amount too.
        amounts |= {_amount_key(Decimal(m.group()))
                    for m in re.finditer(r"(?<![\d.])\d+\.\d+(?![\d.])", text)}
        return cls(
            titles={_title_key(m.group()) for m in _TITLE.finditer(text)} | _title_phrases(text),
            amounts=amounts,
            dates={key for key, _ in _dates(text)} | {"*" + key[4:] for key, _ in _dates(text)},
            times={_time_key(m) for m in _TIME.finditer(text)},
            numbers={_number_key(m.group()) for m in _NUMBER.finditer(text)},
            words={w.casefold() for w in re.findall(r"[^\W\d_]+", text)},
        )


def _amount_text(match: re.Match[str]) -> str:
    return (match.group("a") or match.group("b")).replace(",", "")


def _title_key(text: str) -> str:
    return " ".join(re.findall(r"[A-Z0-9']+", text.upper()))


def _title_phrases(text: str) -> set[str]:
    # "Academy Dinosaur" in a customer's message names the same film as "ACADEMY DINOSAUR".
    words = re.findall(r"[A-Za-z0-9']+", text)
    phrases: set[str] = set()
    for size in (1, 2, 3, 4):
        for i in range(len(words) - size + 1):
            phrases.add(" ".join(words[i : i + size]).upper())
    return phrases


def _dates(text: str) -> list[tuple[str, tuple[int, int]]]:
    """``(key, span)`` for every date: key "YYYY-MM-DD", or "*-MM-DD" without a year."""
    found: list[tuple[str, tuple[int, int]]] = []
    taken: list[tuple[int, int]] = []
    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            if any(s < match.end() and match.start() < e for s, e in taken):
                continue
            parts = match.groupdict()
            month = _MONTHS.get((parts.get("month") or "").casefold().rstrip(".")) or int(
                parts.get("mnum") or 0)
            day = int(parts["day"])
            if not (1 <= month <= 12 and 1 <= day <= 31):
                continue
            year = parts.get("year") or "*"
            found.append((f"{year}-{month:02d}-{day:02d}", match.span()))
            taken.append(match.span())
    return found


def _time_key(match: re.Match[str]) -> str:
    hour, minute = int(match.group("hour")), int(match.group("minute"))
    ampm = (match.group("ampm") or "").casefold().replace(".", "")
    if ampm == "pm" and hour < 12:
        hour += 12
    if ampm == "am" and hour == 12:
        hour = 0
    return f"{hour:02d}:{minute:02d}"


# Capitalised words that are not names: the template's words, weekdays, and words a sentence
# may begin with after a comma or a dash.
_ORDINARY_CAPITALS = frozenset(
    {"i", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
     "mediavault", "ok"})


@dataclass
class _DraftFact:
    text: str
    kind: FactKind
    key: str
    alternatives: tuple[str, ...] = ()


def extract_facts(text: str) -> list[_DraftFact]:
    """The factual tokens of a draft text, each with its canonical key."""
    text = fold_lookalikes(text)
    facts: list[_DraftFact] = []
    masked = list(text)

    def mask(span: tuple[int, int]) -> None:
        for i in range(*span):
            masked[i] = " "

    for match in _TITLE.finditer(text):
        words = match.group().split()
        letters = re.sub(r"[^A-Z]", "", match.group())
        if len(letters) < 3 and len(words) < 2:
            continue  # "I", "A", "OK"
        facts.append(_DraftFact(match.group(), "title", _title_key(match.group())))
        mask(match.span())
    for key, span in _dates(text):
        year_less = key if key.startswith("*") else "*" + key[4:]
        facts.append(_DraftFact(text[span[0]:span[1]], "date", key, (year_less,)
                                if key.startswith("*") else ()))
        mask(span)
    for match in _TIME.finditer(text):
        facts.append(_DraftFact(match.group(), "time", _time_key(match)))
        mask(match.span())
    for match in _AMOUNT.finditer(text):
        value = Decimal(_amount_text(match))
        facts.append(_DraftFact(match.group(), "amount", _amount_key(value)))
        mask(match.span())
    rest = "".join(masked)
    for match in _NUMBER.finditer(rest):
        key = _number_key(match.group())
        facts.append(_DraftFact(match.group(), "number", key))
    for match in re.finditer(r"[^\W\d_][\w'’-]*", rest):
        word = match.group()
        if not word[0].isupper() or word.isupper() or word.casefold() in _ORDINARY_CAPITALS:
            continue
        before = rest[: match.start()].rstrip(" \t\"'(“‘")
        if not before or before[-1] in ".!?:;\n-—–•*":
            continue  # the first word of a sentence or a bullet
        facts.append(_DraftFact(word, "name", word.casefold()))
    return facts


#: Numbers too small to be facts of their own ("1 hour", "2 stores"): words like "one".
_TRIVIAL_NUMBERS = frozenset({"0", "1", "2"})


def ground_text(text: str, evidence: GroundingEvidence) -> GroundingReport:
    """Trace every fact of ``text`` (the model's content of a draft) to the evidence."""
    traced: list[FactProvenance] = []
    untraceable: list[str] = []
    for fact in extract_facts(text):
        if fact.kind == "number" and fact.key in _TRIVIAL_NUMBERS:
            continue
        found = None
        for key in (fact.key, *fact.alternatives):
            found = evidence.find(fact.kind, key)
            if found is not None:
                break
        if found is None and fact.kind == "date" and fact.key.startswith("*"):
            found = _year_less_date(evidence, fact.key)
        if found is None:
            untraceable.append(fact.text)
            continue
        traced.append(FactProvenance(fact=fact.text, kind=fact.kind, source=found[0],
                                     reference=found[1]))
    return GroundingReport(traced=list(dict.fromkeys(traced)),
                           untraceable=list(dict.fromkeys(untraceable)))


def _year_less_date(evidence: GroundingEvidence, key: str) -> tuple[SourceKind, str] | None:
    month_day = key[1:]
    for source, facts in evidence._indexed():
        if any(d.endswith(month_day) for d in facts.dates):
            return source.kind, source.reference
    return None


def draft_content_text(parts: Sequence[str]) -> str:
    """The model's own content of a draft, one sentence per line, for grounding."""
    return "\n".join(part.strip() for part in parts if part and part.strip())


__all__ = [
    "FactProvenance",
    "GroundingEvidence",
    "GroundingReport",
    "draft_content_text",
    "extract_facts",
    "ground_text",
]
