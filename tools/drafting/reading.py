"""How the checks read a reply: as a person sees it, look-alike letters and invisibles undone.

The folding itself is the shared module's (:mod:`mediavault.tools.text_folding`: NFKC, the
TR39 confusables of every script, invisibles, digits of every script); here accents are
removed as well, so "gúarantee" reads as "guarantee". Letter case is kept.
"""

from __future__ import annotations

import re
import unicodedata

from mediavault.tools.text_folding import fold_lookalikes

# Braille blank and other characters that render as nothing but are not format characters.
_INVISIBLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180e\u2800\u3164\uffa0")


def fold_text(text: str) -> str:
    """The text as a reader perceives it: compatibility forms, invisibles and accents removed,
    look-alike letters mapped to Latin. Letter case is kept."""
    if text.isascii():  # nothing to fold, and most replies are plain ASCII
        return text
    text = fold_lookalikes(text)
    text = "".join(
        ch
        for ch in unicodedata.normalize("NFKD", text)
        if unicodedata.category(ch) not in ("Cf", "Mn", "Me") and ch not in _INVISIBLE
    )
    return unicodedata.normalize("NFC", text)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", fold_text(text).casefold())


def one_line(text: str) -> str:
    return " ".join(text.split())
