"""How much a reviewer changed a draft: the pilot's measure of the model's drafting quality."""

from __future__ import annotations

import difflib


def edit_size(old: str, new: str) -> int:
    """How many characters a reviewer changed between two draft texts (difflib opcodes)."""
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    changed = 0
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            # A replacement counts the longer side: "$5" -> "$50" changes one character.
            changed += max(i2 - i1, j2 - j1)
    return changed
