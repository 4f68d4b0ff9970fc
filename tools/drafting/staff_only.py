"""Forbidden phrases and staff-only policy text: what a reply must never say."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from functools import cache

from mediavault.policies import policy_rules
from mediavault.tools.drafting.problems import ValidationProblem
from mediavault.tools.drafting.reading import words
from mediavault.tools.drafting.reading import words as _words
from mediavault.tools.text_folding import fold, fold_lookalikes, undo_leetspeak

# Characters commonly typed in place of a letter to slip past a filter ("gu4rant33").
_STAND_INS = {
    "a": "a4@", "b": "b8", "e": "e3", "g": "g9", "i": "i1!|", "l": "l1|", "o": "o0",
    "s": "s5$", "t": "t7+", "z": "z2",
}


_PHRASE_GAP = r"(?:(?![!|+$@])[\W_])"  # a separator that is not itself a stand-in letter


def _phrase_pattern(phrase: str) -> re.Pattern[str] | None:
    words = _words(phrase)
    if not words:
        return None
    letter_gap = _PHRASE_GAP + "{0,2}"  # "g u a r a n t e e", "gu-arantee", "g.u.a.r.a.n.t.e.e"
    word_gap = _PHRASE_GAP + "{0,4}"
    parts = [
        letter_gap.join(f"[{re.escape(_STAND_INS.get(ch, ch))}]+" for ch in word) for word in words
    ]
    # Long last words also match their inflections ("guaranteed", "promises"); a short one
    # must end there, or "as an ai" would match "as an aide". A match starts only where a word
    # does, which also keeps the search linear on long runs of look-alike characters.
    end = "" if len(words[-1]) >= 4 else r"(?![a-z0-9])"
    return re.compile(r"(?<![a-z0-9!|+$@])" + word_gap.join(parts) + end)


@cache
def forbidden_patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    patterns = []
    for phrase in policy_rules().communication.forbidden_phrases:
        pattern = _phrase_pattern(phrase)
        if pattern is not None:
            patterns.append((phrase, pattern))
    return tuple(patterns)


# Staff-only lines are long sentences; a run of this many of their words in a reply is a leak,
# while shorter runs ("a refund before") are ordinary language.
_INTERNAL_WINDOW = 8


def internal_windows(phrases: Iterable[str]) -> set[tuple[str, ...]]:
    windows: set[tuple[str, ...]] = set()
    for phrase in phrases:
        words = _words(phrase)
        size = min(len(words), _INTERNAL_WINDOW)
        windows.update(tuple(words[i : i + size]) for i in range(len(words) - size + 1) if size)
    return windows


def repeats_internal_text(text: str, windows: set[tuple[str, ...]]) -> bool:
    words = _words(text)
    for size in {len(window) for window in windows}:
        if any(tuple(words[i : i + size]) in windows for i in range(len(words) - size + 1)):
            return True
    return False


def _default_internal_phrases() -> tuple[str, ...]:
    try:
        from mediavault.tools.policy_retrieval import internal_policy_phrases
    except ImportError:
        # Retrieval not installed: only the explicit phrases a caller passes are checked.
        return ()
    return tuple(internal_policy_phrases())


def resolve_internal(internal_phrases: Iterable[str] | None) -> tuple[str, ...]:
    if internal_phrases is None:
        return _default_internal_phrases()
    return tuple(internal_phrases)


_SENTENCE_BREAK = re.compile(r"(?<=[.!?;])\s+|\n+")


def strip_internal_policy_text(text: str, internal_phrases: Iterable[str] | None = None) -> str:
    """``text`` without the sentences that repeat a staff-only policy line.

    ``internal_phrases`` defaults to the shipped policy's ``Internal:`` lines.
    """
    windows = internal_windows(resolve_internal(internal_phrases))
    if not windows:
        return text.strip()
    kept = [
        sentence.strip()
        for sentence in _SENTENCE_BREAK.split(text)
        if sentence.strip() and not repeats_internal_text(sentence, windows)
    ]
    return " ".join(kept)



# --------------------------------------------------------------------------------------------
# Staff-only material beyond the literal lines: the machinery of support (queues, reason
# codes, routing, ticket ids), staff-only instructions in other words, and other people.

_STOP_WORDS = frozenset(
    """
    a an the and or but if so of to in on at by for from with without as is are was were
    be been being it its this that these those there their they them we our us you your i
    me my he she his her not no nor do does did done have has had will would can could may
    might must shall should than then when whether which who whom what why how all any
    each every some one only also even just very about into over under again still such
    more most other same per up down out off here
    """.split()  # noqa: SIM905
)


def _stem(word: str) -> str:
    for suffix in ("ations", "ation", "ingly", "ings", "ing", "edly", "ies", "ied", "ed", "es",
                   "s", "ly", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _content_stems(text: str) -> list[str]:
    return [_stem(w) for w in words(text) if w not in _STOP_WORDS and len(w) > 1]


@cache
def _policy_overlap_model() -> tuple[tuple[frozenset[str], ...], tuple[frozenset[str], ...],
                                     dict[str, float]]:
    """Content stems of each staff-only line and each customer-facing sentence, with weights
    (rarer stems in the policy weigh more)."""
    try:
        from mediavault.tools.policy_retrieval import default_policy_library
    except ImportError:
        return (), (), {}
    library = default_policy_library()
    internal = tuple(frozenset(_content_stems(line)) for line in library.internal_phrases())
    public: list[frozenset[str]] = []
    for section in library.sections():
        for sentence in re.split(r"(?<=[.!?;:])\s+|\n+", section.customer_text):
            stems = frozenset(_content_stems(sentence))
            if stems:
                public.append(stems)
    documents = [*internal, *public]
    counts: dict[str, int] = {}
    for document in documents:
        for stem in document:
            counts[stem] = counts.get(stem, 0) + 1
    weights = {stem: math.log(1 + len(documents) / count) for stem, count in counts.items()}
    return internal, tuple(public), weights


#: A sentence repeats a staff-only line when it shares this much weighted vocabulary with it,
#: and clearly more than with any customer-facing sentence of the policy.
_INTERNAL_OVERLAP = 9.0
_INTERNAL_MARGIN = 3.0


def paraphrases_internal_text(sentence: str) -> bool:
    """Whether ``sentence`` says what a staff-only policy line says, in other words."""
    internal, public, weights = _policy_overlap_model()
    stems = set(_content_stems(sentence))
    if not stems or not internal:
        return False

    def score(document: frozenset[str]) -> float:
        return sum(weights.get(stem, 0.0) for stem in stems & document)

    best_internal = max(score(document) for document in internal)
    best_public = max((score(document) for document in public), default=0.0)
    return best_internal >= _INTERNAL_OVERLAP and best_internal >= best_public + _INTERNAL_MARGIN


def _code_pattern(code: str) -> str:
    # "tier2_legal" also as "Tier2-Legal", "tier 2 legal"; "trust_safety" as "Trust & Safety".
    parts = re.findall(r"[a-z]+|\d+", code.casefold())
    return r"(?<![a-z0-9])" + r"[\s_\-.&/]*(?:and[\s_\-]*)?".join(parts) + r"(?![a-z0-9])"


@cache
def _support_vocabulary() -> re.Pattern[str]:
    """Queue names and reason codes from the policy companion, in any spelling."""
    rules = policy_rules()
    names = {*rules.queues, *rules.routing, *rules.reason_codes} - {"default"}
    multi = sorted((n for n in names if re.search(r"[_\d]", n)), key=len, reverse=True)
    return re.compile("|".join(_code_pattern(name) for name in multi))


# Words of the support machinery, never of a reply to a customer.
_SUPPORT_JARGON = re.compile(
    r"(?<![a-z])(?:queues?|routed|routing|reason[\s_-]*codes?|reason\s*=|auto[\s_-]*approv\w*|"
    r"sla|priority\s+p\d|ticket|tkt|internal(?:ly)?(?:\s+notes?)?\s*:|internal\s+notes?|"
    r"staff[\s-]*only|staff\s+(?:note|handbook|instructions?)|note\s+to\s+self|vip|"
    r"flagged|(?:a|with)\s+\w+\s+flag|identity\s+unverified|unverified|withheld|mismatch|"
    r"we(?:'ve|\s+have)\s+been\s+told|not\s+allowed\s+to\s+(?:say|tell|confirm)|instructed|"
    r"barred|override|escalated\s+to|drafts?\s+never|this\s+draft|my\s+tools|"
    r"tier\s*-?\s*\d|p[0-4]\s+priority|my\s+instructions|system\s+prompt|my\s+prompt|"
    r"i\s+(?:was|am|have\s+been)\s+told|i(?:'m|\s+am)\s+not\s+(?:allowed|permitted)|"
    r"not\s+permitted\s+to\s+(?:say|tell|mention|disclose))(?![a-z])"
)
# Ticket and case ids ("MV-48213", "TKT-2026-00917", "PR-3391", "INC0045521").
_TICKET_ID = re.compile(r"\b[A-Z]{2,5}-?\d{3,}(?:-\d+)*\b")
# Another person: a reply concerns only the customer who wrote.
_THIRD_PARTY = re.compile(
    r"(?<![a-z])(?:he|she|him|his|hers|her|himself|herself|someone\s+else|somebody\s+else|"
    r"(?:another|other|previous|earlier|different|second|the\s+last)\s+"
    r"(?:member|customer|renter|client|person|household|borrower|subscriber|account\s+holder)s?|"
    r"a\s+member|"
    r"husband|wife|spouse|partner's|neighbou?rs?|roommate|flatmate|card\s*holder|"
    r"customer\s*(?:#|no\.?|id|number)?\s*\d+|account\s*(?:#|no\.?|number)\s*\d+|"
    r"lives\s+on\s+your\s+street)(?![a-z])"
)


def find_staff_only_material(text: str) -> list[ValidationProblem]:
    """Support machinery, paraphrased staff-only lines and other people, in a reply text."""
    problems: list[ValidationProblem] = []
    view = fold_lookalikes(text)
    lowered = " ".join(view.casefold().split())
    if _support_vocabulary().search(lowered) or _SUPPORT_JARGON.search(lowered):
        problems.append(ValidationProblem(
            code="internal_policy_text",
            detail="mentions how support works inside (queues, reason codes, routing, notes)"))
    if _TICKET_ID.search(view):
        problems.append(ValidationProblem(
            code="internal_policy_text", detail="a ticket or case reference"))
    if any(paraphrases_internal_text(s) for s in re.split(r"(?<=[.!?;:])\s+|\n+", view)):
        problems.append(ValidationProblem(
            code="internal_policy_text", detail="says what a staff-only policy line says"))
    if _THIRD_PARTY.search(lowered):
        problems.append(ValidationProblem(
            code="third_party", detail="mentions a person other than the customer"))
    return problems


def _stems_of_forbidden() -> list[str]:
    return [
        phrase.casefold().strip().rstrip("e")
        for phrase in policy_rules().communication.forbidden_phrases
        if " " not in phrase.strip()
    ]


def _near(word: str, target: str) -> bool:
    """One letter added, dropped or changed ("gurantee", "guarrantee")."""
    if abs(len(word) - len(target)) > 1 or len(target) < 7:
        return False
    previous = list(range(len(target) + 1))
    for i, a in enumerate(word, 1):
        current = [i]
        for j, b in enumerate(target, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1] <= 1


def find_forbidden_words(text: str) -> list[ValidationProblem]:
    """Forbidden words in any inflection or near-spelling, and forbidden phrases written
    without spaces, on every reading of the folded text."""
    problems: list[ValidationProblem] = []
    plain = fold(fold_lookalikes(text), accents=False)
    # Spaced-out letters are read by the phrase patterns; here leetspeak ("prom1se") is undone.
    # Word by word: a word longer than any forbidden one cannot hide one behind leetspeak,
    # and reading a run of thousands of symbols as one word would take quadratic time.
    views = {plain, " ".join(undo_leetspeak(w) if len(w) <= 40 else w for w in plain.split())}
    stems = _stems_of_forbidden()
    phrases = policy_rules().communication.forbidden_phrases
    for view in views:
        tokens = re.findall(r"[a-z]+", view)
        for token in set(tokens):
            for phrase, stem in zip(
                (p for p in phrases if " " not in p.strip()), stems, strict=True
            ):
                if token.startswith(stem) or _near(token, phrase.casefold()):
                    problems.append(ValidationProblem(
                        code="forbidden_phrase", detail=f'contains "{phrase}"'))
        squeezed = "".join(tokens)
        for phrase in phrases:
            joined = re.sub(r"[^a-z]", "", phrase.casefold())
            if " " in phrase.strip() and len(joined) >= 10 and joined in squeezed:
                problems.append(ValidationProblem(
                    code="forbidden_phrase", detail=f'contains "{phrase}"'))
    return list(dict.fromkeys(problems))
