"""Forbidden phrases and staff-only policy text: what a reply must never say."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from mediavault.policies import policy_rules
from mediavault.tools.drafting.reading import words as _words

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

