"""Policy retrieval: the policy document split into citable sections, found by area or by words.

The policy markdown follows two conventions, stated at the top of the document itself:

* every heading below the document title ends with a stable id, ``## Late fees {#late-fees}``;
  replies and tickets cite that id, so headings can be reworded without breaking citations;
* a line starting with ``Internal:`` is a staff-only instruction. It stays in a section's full
  ``text`` (for staff and for the model's instructions) but never in ``customer_text``, which is
  the only text drafting may quote. :func:`internal_policy_phrases` lists those lines so the
  draft validator can reject a reply that repeats one.

Searching by area returns that section directly; searching by words ranks the top-level
sections with BM25 over their customer-safe text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Literal

from rank_bm25 import BM25Okapi

from mediavault.policies import policy_document, policy_version

MAX_TOP_K = 10
#: BM25 parameters, the usual Okapi values; pinned here so scores do not drift with the library.
BM25_K1 = 1.5
BM25_B = 0.75

#: Friendly area names accepted besides the section ids themselves (``late_fees`` and
#: ``late-fees`` are the same area: underscores and spaces are read as hyphens).
POLICY_AREA_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "due-dates": "rentals",
        "returns": "rentals",
        "late-fee": "late-fees",
        "fees": "late-fees",
        "lost": "lost-items",
        "lost-item": "lost-items",
        "unreturned": "lost-items",
        "refunds": "waivers-refunds",
        "refund": "waivers-refunds",
        "waivers": "waivers-refunds",
        "waiver": "waivers-refunds",
        "fee-waivers": "waivers-refunds",
        "account-changes": "account",
        "identity": "account",
        "verification": "account",
        "email-change": "account",
        "data-requests": "privacy",
        "personal-data": "privacy",
        "escalations": "escalation",
        "routing": "escalation",
        "queues": "escalation",
        "stores": "membership",
        "tone": "communication",
        "communications": "communication",
    }
)

_HEADING = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<rest>.*?)\s*#*\s*$")
_HEADING_ID = re.compile(r"^(?P<title>.*?)\s*\{#(?P<id>[a-z0-9]+(?:[.-][a-z0-9]+)*)\}$")
_FENCE = re.compile(r"^\s*(```|~~~)")
# Tolerant on purpose: a bulleted, quoted or bold "Internal:" line must not leak to a customer.
_INTERNAL_LINE = re.compile(
    r"^\s*(?:[-*+>]\s*)*[*_]*internal[*_]*\s*:[*_]*\s*(?P<text>.*?)\s*$", re.IGNORECASE
)
_WORD = re.compile(r"[a-z0-9]+")
_BLANK_RUNS = re.compile(r"\n{3,}")

# Words too common to say anything about which policy applies.
_STOP_WORD_LIST = """
    a about after again all also am an and any are as at be because been before being but by
    can could dear did do does doing for from had has have having he hello her here hers hi him
    his how i if in into is it its just me more most my myself no nor not of off on once only or
    other our ours out over please same she should so some such than thank thanks that the their
    theirs them then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours
"""
_STOP_WORDS = frozenset(_STOP_WORD_LIST.split())


class PolicyDocumentError(ValueError):
    """The policy markdown breaks a convention retrieval relies on (missing or duplicate id)."""


@dataclass(frozen=True)
class PolicySection:
    """One headed section of the policy document.

    ``text`` is everything under the heading, nested subsections included (their headings
    without the id marker) and staff-only lines kept. ``customer_text`` is the same with every
    ``Internal:`` line removed: the only text a reply may quote.
    """

    id: str
    title: str
    level: int
    heading_path: tuple[str, ...]
    text: str
    customer_text: str
    internal_lines: tuple[str, ...]

    @property
    def is_area(self) -> bool:
        """True for a top-level section, one of the policy areas search ranks."""
        return len(self.heading_path) == 1


@dataclass(frozen=True)
class PolicyHit:
    """A search result: a section's customer-safe text, cited by id and policy version."""

    section_id: str
    heading_path: tuple[str, ...]
    title: str
    text: str
    #: BM25 score for word matches; 1.0 for a direct area match. Hits are already in rank order.
    score: float
    policy_version: str
    matched_by: Literal["area", "query"]

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form, as tool results carry it."""
        return {
            "section_id": self.section_id,
            "heading_path": list(self.heading_path),
            "title": self.title,
            "text": self.text,
            "score": round(self.score, 4),
            "policy_version": self.policy_version,
            "matched_by": self.matched_by,
        }


def internal_line_text(line: str) -> str | None:
    """The instruction on a staff-only ``Internal:`` line, or None for any other line."""
    match = _INTERNAL_LINE.match(line)
    return match.group("text") if match else None


def _stem(word: str) -> str:
    # A light suffix stripper so "returned", "returning" and "returns" meet; short words and
    # numbers stay as they are. Deliberately tiny: the corpus is one document.
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies"):
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if word.endswith("e") and len(word) >= 4:
        word = word[:-1]
    return word


def policy_tokens(text: str) -> list[str]:
    """Search terms of ``text``: lower-case words, stop words dropped, lightly stemmed."""
    folded = text.lower().replace("'", "").replace("\u2019", "")
    return [
        _stem(word)
        for word in _WORD.findall(folded)
        if len(word) > 1 and word not in _STOP_WORDS
    ]


@dataclass(frozen=True)
class _Heading:
    line_no: int
    level: int
    title: str
    id: str


def _find_headings(lines: list[str]) -> list[_Heading]:
    headings: list[_Heading] = []
    seen: dict[str, int] = {}
    in_fence = False
    for index, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else _HEADING.match(line)
        if match is None:
            continue
        level = len(match.group("hashes"))
        rest = match.group("rest")
        if level == 1:
            # The document title: it frames the document and is not a citable section.
            headings.append(_Heading(index, 1, rest, ""))
            continue
        with_id = _HEADING_ID.match(rest)
        if with_id is None:
            raise PolicyDocumentError(
                f"line {index + 1}: heading {rest!r} has no stable id; end it with "
                "{#an-id}, lower-case letters, digits, '-' and '.'"
            )
        section_id = with_id.group("id")
        if section_id in seen:
            raise PolicyDocumentError(
                f"line {index + 1}: section id {section_id!r} already used on line "
                f"{seen[section_id]}"
            )
        seen[section_id] = index + 1
        headings.append(_Heading(index, level, with_id.group("title").strip(), section_id))
    return headings


def _body(lines: list[str], offsets: list[int], nested_headings: list[_Heading]) -> list[str]:
    # Nested headings keep their markdown level but lose the id marker: readers see titles.
    nested = dict(zip(offsets, nested_headings, strict=True))
    body: list[str] = []
    for index, line in enumerate(lines):
        heading = nested.get(index)
        body.append(f"{'#' * heading.level} {heading.title}" if heading else line)
    return body


def _join(lines: list[str]) -> str:
    return _BLANK_RUNS.sub("\n\n", "\n".join(line.rstrip() for line in lines)).strip()


def parse_policy_sections(markdown: str) -> tuple[PolicySection, ...]:
    """Split policy markdown into sections, in document order, nested ones included.

    Raises :class:`PolicyDocumentError` when a heading has no ``{#id}`` or an id repeats.
    """
    lines = markdown.splitlines()
    headings = _find_headings(lines)
    sections: list[PolicySection] = []
    path: list[_Heading] = []
    for position, heading in enumerate(headings):
        if heading.level == 1:
            path.clear()
            continue
        while path and path[-1].level >= heading.level:
            path.pop()
        path.append(heading)
        end = next(
            (later for later in headings[position + 1 :] if later.level <= heading.level), None
        )
        stop = end.line_no if end else len(lines)
        first = heading.line_no + 1
        inside = [h for h in headings[position + 1 :] if h.line_no < stop]
        body = _body(lines[first:stop], [h.line_no - first for h in inside], inside)
        internal = tuple(
            text for line in body if (text := internal_line_text(line)) is not None and text
        )
        customer = [line for line in body if internal_line_text(line) is None]
        sections.append(
            PolicySection(
                id=heading.id,
                title=heading.title,
                level=heading.level,
                heading_path=tuple(h.title for h in path),
                text=_join(body),
                customer_text=_join(customer),
                internal_lines=internal,
            )
        )
    return tuple(sections)


def _normalise_area(area: str) -> str:
    return re.sub(r"[\s_]+", "-", area.strip().lower())


class PolicyLibrary:
    """The policy document, parsed once, searchable by policy area or by free words.

    Built from the shipped document by default. Any other markdown can be given (tests,
    drafts of a new policy); its version is then a content hash unless ``version`` is passed.
    """

    def __init__(self, markdown: str | None = None, *, version: str | None = None) -> None:
        if markdown is None:
            markdown = policy_document()
            version = version or policy_version()
        self._version = version or hashlib.sha256(markdown.encode()).hexdigest()[:12]
        self._sections = parse_policy_sections(markdown)
        if not self._sections:
            raise PolicyDocumentError("the policy document has no headed sections")
        self._by_id = {section.id: section for section in self._sections}
        self._areas = tuple(section for section in self._sections if section.is_area)
        # Preamble lines count too: a staff-only line anywhere must be known to the validator.
        self._internal = tuple(
            dict.fromkeys(
                text
                for line in markdown.splitlines()
                if (text := internal_line_text(line)) is not None and text
            )
        )
        corpus = [policy_tokens(f"{s.title}\n{s.customer_text}") for s in self._areas]
        # BM25Okapi divides by the mean document length; an all-empty corpus has nothing to rank.
        self._index = BM25Okapi(corpus, k1=BM25_K1, b=BM25_B) if any(corpus) else None

    @property
    def version(self) -> str:
        """The policy version every hit cites."""
        return self._version

    def sections(self) -> tuple[PolicySection, ...]:
        """Every section in document order, subsections included."""
        return self._sections

    def get(self, section_id: str) -> PolicySection:
        """The section with this id; KeyError naming the valid ids otherwise."""
        try:
            return self._by_id[section_id]
        except KeyError:
            raise KeyError(
                f"no policy section {section_id!r}; sections: {', '.join(self._by_id)}"
            ) from None

    def areas(self) -> tuple[str, ...]:
        """Area names :meth:`search` accepts: top-level section ids, then their aliases."""
        ids = [section.id for section in self._areas]
        aliases = sorted(
            alias.replace("-", "_")
            for alias, target in POLICY_AREA_ALIASES.items()
            if target in self._by_id
        )
        return (*ids, *aliases)

    def internal_phrases(self) -> tuple[str, ...]:
        """The text of every staff-only line, without its ``Internal:`` marker."""
        return self._internal

    def search(
        self, policy_area: str | None = None, query: str | None = None, top_k: int = 3
    ) -> list[PolicyHit]:
        """Find policy text by area, by words, or both; at most ``top_k`` hits, best first.

        An area (a section id or an alias such as ``late_fees``) yields that section first.
        A query ranks the top-level sections with BM25; sections sharing no word with it are
        left out, so the list may be shorter than ``top_k`` or empty. With both, the area's
        section leads and the query's best other sections follow.
        Raises ValueError for an unknown area, a blank request or ``top_k`` outside 1..10.
        """
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise ValueError(f"top_k must be a whole number from 1 to {MAX_TOP_K}, got {top_k!r}")
        area = policy_area if policy_area and policy_area.strip() else None
        words = query if query and query.strip() else None
        if area is None and words is None:
            raise ValueError(
                "policy search needs a policy area or a non-empty query; areas: "
                + ", ".join(self.areas())
            )
        hits: list[PolicyHit] = []
        if area is not None:
            hits.append(self._hit(self._resolve_area(area), 1.0, "area"))
        if words is not None:
            terms = policy_tokens(words)
            if not terms and not hits:
                raise ValueError(
                    f"query {words!r} has no searchable words (only stop words or punctuation); "
                    "describe the topic, e.g. 'late fee for a returned film'"
                )
            taken = {hit.section_id for hit in hits}
            hits.extend(
                self._hit(section, score, "query")
                for section, score in self._rank(terms)
                if section.id not in taken
            )
        return hits[:top_k]

    def _resolve_area(self, area: str) -> PolicySection:
        key = _normalise_area(area)
        section = self._by_id.get(POLICY_AREA_ALIASES.get(key, key))
        if section is None:
            raise ValueError(
                f"unknown policy area {area!r}; valid areas: {', '.join(self.areas())} "
                "(or any section id, e.g. late-fees.computation)"
            )
        return section

    def _rank(self, terms: list[str]) -> list[tuple[PolicySection, float]]:
        if self._index is None or not terms:
            return []
        scores = [float(score) for score in self._index.get_scores(terms)]
        # Ties keep document order, so the same query always gives the same answer.
        return sorted(
            (pair for pair in zip(self._areas, scores, strict=True) if pair[1] > 0),
            key=lambda pair: -pair[1],
        )

    def _hit(
        self, section: PolicySection, score: float, matched_by: Literal["area", "query"]
    ) -> PolicyHit:
        return PolicyHit(
            section_id=section.id,
            heading_path=section.heading_path,
            title=section.title,
            text=section.customer_text,
            score=score,
            policy_version=self._version,
            matched_by=matched_by,
        )


@cache
def default_policy_library() -> PolicyLibrary:
    """The shipped policy document, parsed once per process."""
    return PolicyLibrary()


def internal_policy_phrases() -> tuple[str, ...]:
    """Staff-only lines of the shipped policy (marker removed); a reply must contain none."""
    return default_policy_library().internal_phrases()
