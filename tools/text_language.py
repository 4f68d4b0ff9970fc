"""Which language an email is written in, offline.

Uses py3langid (the maintained fork of langid.py), whose model ships inside the package: nothing
is downloaded at run time. The model loads once per process (about a second), on first use.

The offline model answers English only; the safety rules know the risk vocabulary of the
policy's languages. A message is called non-English only when the identifier is confident and
the text is long enough to judge, so a terse English note ("thx, GLASS FRONTIER due?") is not
sent to a person for being short.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any

__all__ = ["LANGUAGE_NAMES", "LanguageGuess", "detect_language"]

#: Languages the identifier chooses among: English, the languages the policy's risk vocabulary
#: covers, and other languages customers commonly write in (so they are not forced into one of
#: the first group).
LANGUAGE_NAMES: dict[str, str] = {
    "en": "English", "fr": "French", "es": "Spanish", "de": "German", "it": "Italian",
    "pt": "Portuguese", "nl": "Dutch", "pl": "Polish", "sv": "Swedish", "da": "Danish",
    "no": "Norwegian", "fi": "Finnish", "cs": "Czech", "ro": "Romanian", "hu": "Hungarian",
    "tr": "Turkish", "ru": "Russian", "uk": "Ukrainian", "el": "Greek", "ja": "Japanese",
    "zh": "Chinese", "ko": "Korean", "ar": "Arabic", "he": "Hebrew", "hi": "Hindi",
}
#: Below this many letters a guess is not trusted.
MIN_LETTERS = 20
#: A non-English guess must be at least this confident.
MIN_CONFIDENCE = 0.90

_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)
_LOCK = threading.Lock()


@dataclass(frozen=True)
class LanguageGuess:
    """An ISO 639-1 code, the identifier's confidence, and whether the guess is trusted."""

    code: str
    confidence: float
    trusted: bool

    @property
    def name(self) -> str:
        return LANGUAGE_NAMES.get(self.code, self.code)

    @property
    def is_english(self) -> bool:
        """English, or too little text to say otherwise."""
        return self.code == "en" or not self.trusted


@cache
def _identifier() -> Any:
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(LANGUAGE_NAMES))
    return identifier


def detect_language(text: str) -> LanguageGuess:
    """Guess the language of ``text`` (the new message, not quoted history)."""
    letters = len(_LETTERS.findall(text))
    if letters == 0:
        return LanguageGuess("en", 0.0, trusted=False)
    with _LOCK:  # the identifier keeps scratch arrays; one caller at a time
        code, confidence = _identifier().classify(text)
    confidence = float(confidence)
    trusted = letters >= MIN_LETTERS and (code == "en" or confidence >= MIN_CONFIDENCE)
    return LanguageGuess(str(code), confidence, trusted)
