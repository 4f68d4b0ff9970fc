"""Text folding: one way to see through look-alike letters, invisible characters and spacing.

The safety check and the draft checks (DLP, forbidden phrases) both match words against text a
person, or an attacker, wrote. Before matching, text is folded so that what *looks* the same
*compares* the same:

- Unicode NFKC (full-width and compatibility forms, ligatures);
- invisible and formatting characters removed (zero-width spaces and joiners, bidi controls,
  soft hyphens, variation selectors);
- digits of every script made ASCII digits;
- look-alike letters of other scripts (Cyrillic, Greek, Armenian, Cherokee, Lisu, mathematical
  alphanumerics...) mapped to the Latin letter they imitate, from Unicode's TR39 confusables
  data as shipped by the maintained ``confusable-homoglyphs`` package (ASCII itself is never
  remapped, so ``0`` stays a digit);
- case folded, accents optionally removed, runs of whitespace made one space.

:func:`rejoin_split_letters` and :func:`undo_leetspeak` are separate steps: a phone-number check
must not turn ``0`` into ``o``, while a threat check must read ``l4wy3r`` as ``lawyer``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import cache
from importlib.resources import files

__all__ = [
    "fold",
    "fold_for_words",
    "fold_lookalikes",
    "rejoin_split_letters",
    "skeleton_char",
    "strip_accents",
    "strip_invisible",
    "undo_leetspeak",
]

# Characters that render as nothing (or as a plain space) but split a word for a naive matcher.
_INVISIBLE_EXTRA = {
    "\u00ad",  # soft hyphen
    "\u034f",  # combining grapheme joiner
    "\u115f", "\u1160", "\u3164", "\uffa0",  # Hangul fillers
    "\u17b4", "\u17b5",  # Khmer inherent vowels
    "\u180e",  # Mongolian vowel separator
}
_SPACES = re.compile(r"\s+")


@cache
def _confusable_to_latin() -> dict[str, str]:
    """Each non-ASCII character that Unicode lists as confusable with an ASCII one, mapped to it."""
    data = json.loads(
        files("confusable_homoglyphs").joinpath("confusables.json").read_text(encoding="utf-8")
    )
    mapping: dict[str, str] = {}
    for char, homoglyphs in data.items():
        if len(char) != 1 or char.isascii():
            continue
        for homoglyph in homoglyphs:
            target = homoglyph["c"]
            if len(target) == 1 and target.isascii() and (target.isalnum() or target in "@."):
                mapping[char] = target
                break
    return mapping


def skeleton_char(char: str) -> str:
    """The ASCII character ``char`` imitates, or ``char`` itself."""
    if char.isascii():
        return char
    digit = unicodedata.decimal(char, None)
    if digit is not None:
        return str(digit)
    return _confusable_to_latin().get(char, char)


def strip_invisible(text: str) -> str:
    """Remove zero-width, bidi-control, soft-hyphen and other invisible characters."""
    return "".join(
        ch
        for ch in text
        if ch not in _INVISIBLE_EXTRA
        and unicodedata.category(ch) != "Cf"
        and not ("\ufe00" <= ch <= "\ufe0f")  # variation selectors
    )


def strip_accents(text: str) -> str:
    """``é`` -> ``e``, ``ł`` -> ``l``: accents removed so words match plainly."""
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return stripped.translate(_UNDECOMPOSABLE)


# Letters NFD does not split into base + accent.
_UNDECOMPOSABLE = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D",
                                 "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE"})


def fold(text: str, *, accents: bool = True) -> str:
    """Fold ``text`` for comparison: NFKC, invisibles out, ASCII look-alikes, case, spaces.

    With ``accents=False`` accents are removed as well (multilingual word matching).
    """
    if text.isascii():  # the common case: nothing to normalise but case and spaces
        return _SPACES.sub(" ", text.casefold()).strip()
    text = strip_invisible(unicodedata.normalize("NFKC", text))
    text = "".join(skeleton_char(ch) for ch in text)
    if not accents:
        text = strip_accents(text)
    return _SPACES.sub(" ", text.casefold()).strip()


# Single letters separated by one separator: "s u e", "l.a.w.y.e.r", "a-t-t-o-r-n-e-y", or one
# letter a line. Three letters at least, so "a b" in ordinary prose is left alone.
_SPLIT_LETTERS = re.compile(r"(?<![\w])(?:\w[ .\-_*/|\n·•]{1,2}){2,}\w(?![\w])")


def rejoin_split_letters(text: str) -> str:
    """Join letters written apart to slip past a word match: ``s u e`` -> ``sue``."""
    return _SPLIT_LETTERS.sub(lambda m: re.sub(r"[^\w]", "", m.group(0)), text)


_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b",
                       "@": "a", "$": "s", "!": "i", "|": "l", "+": "t"})
# A token mixing letters with leet digits/symbols ("l4wy3r", "$ue", "a+torney").
_LEET_TOKEN = re.compile(r"[\w@$!|+]*[a-z][\w@$!|+]*")


def undo_leetspeak(text: str) -> str:
    """Read ``l4wy3r`` as ``lawyer`` in tokens that mix letters and leet characters.

    Plain numbers ("$29.98", "2006") are left alone: only tokens that contain a letter change.
    """

    def _word(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.isalpha():
            return token
        return token.translate(_LEET)

    return _LEET_TOKEN.sub(_word, text)


def fold_for_words(text: str) -> str:
    """The most forgiving fold, for matching risk words: also rejoins split letters and leet."""
    folded = fold(text, accents=False)
    return undo_leetspeak(rejoin_split_letters(folded))


# Characters that imitate ASCII punctuation or letters but that neither NFKC nor the TR39 data
# map to ASCII: dashes, ideographic full stops, and the small-capital letters (ʀ, ᴀ...).
_EXTRA_LOOKALIKES = str.maketrans({
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
    "\u2015": "-", "\u2212": "-", "\ufe63": "-", "\uff0d": "-",
    "\u3002": ".", "\uff61": ".", "\ufe12": ".", "\u2024": ".", "\u00b7": ".",
    "\u2027": ".", "\u30fb": ".",
})
# CJK numerals, which a reader takes as digits in a phone number or a house number.
_CJK_DIGITS = str.maketrans({"〇": "0", "零": "0", "一": "1", "二": "2", "三": "3", "四": "4",
                             "五": "5", "六": "6", "七": "7", "八": "8", "九": "9"})


@cache
def _small_capital(char: str) -> str:
    name = unicodedata.name(char, "")
    prefix = "LATIN LETTER SMALL CAPITAL "
    if name.startswith(prefix) and len(name) == len(prefix) + 1:
        return name[-1].lower()
    return char


def fold_lookalikes(text: str, *, cjk_digits: bool = False) -> str:
    """``text`` with every look-alike made the ASCII character it imitates, *case and spacing
    kept* (the data-loss checks need capitals to see "12 Harbor Avenue" and line breaks).

    On top of what :func:`fold` does: dashes become ``-``, ideographic and other full stops
    ``.``, small-capital letters plain letters, and with ``cjk_digits`` CJK numerals digits.
    ASCII digits stay digits. Unlike :func:`fold`, nothing is lower-cased.
    """
    if text.isascii():
        return text
    text = strip_invisible(unicodedata.normalize("NFKC", text)).translate(_EXTRA_LOOKALIKES)
    if cjk_digits:  # before the confusables, which read 〇 as the letter O
        text = text.translate(_CJK_DIGITS)
    return "".join(_small_capital(skeleton_char(ch)) for ch in text)
