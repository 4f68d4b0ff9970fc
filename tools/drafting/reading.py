"""How the checks read a reply: as a person sees it, look-alike letters and invisibles undone."""

from __future__ import annotations

import re
import unicodedata

# Letters from other scripts that render like Latin ones; NFKC keeps them distinct.
_HOMOGLYPHS = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
        "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i",
        "ј": "j", "ԁ": "d", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ь": "b", "г": "r",
        "п": "n", "А": "A", "В": "B", "Е": "E", "Ё": "E", "К": "K", "М": "M", "Н": "H",
        "О": "O", "Р": "P", "С": "C", "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "І": "I",
        "Ї": "I", "Ј": "J", "Ԁ": "D", "Һ": "H", "Ӏ": "I", "Ԛ": "Q", "Ԝ": "W",
        # Greek
        "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v",
        "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "Α": "A", "Β": "B",
        "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
        "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
        # Latin oddities and full stops that NFKC leaves alone
        "ı": "i", "ȷ": "j", "ɡ": "g", "ɑ": "a", "ʟ": "L", "。": ".", "｡": ".", "︒": ".",
    }
)
# Invisible characters that are not format characters (category Cf is removed wholesale).
_INVISIBLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180e\u2800\u3164\uffa0")


def fold_text(text: str) -> str:
    """The text as a reader perceives it: compatibility forms, invisibles and accents removed,
    look-alike letters mapped to Latin. Letter case is kept."""
    if text.isascii():  # nothing to fold, and most replies are plain ASCII
        return text
    text = unicodedata.normalize("NFKC", text)
    text = "".join(
        ch
        for ch in unicodedata.normalize("NFKD", text)
        if unicodedata.category(ch) not in ("Cf", "Mn", "Me") and ch not in _INVISIBLE
    )
    return unicodedata.normalize("NFC", text).translate(_HOMOGLYPHS)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", fold_text(text).casefold())


def one_line(text: str) -> str:
    return " ".join(text.split())

