"""Where the test data lives: importable by test modules as ``sakila_paths``.

(Test modules must not import ``conftest``: with several conftest files the name is ambiguous.)
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The original Sakila data set lives beside the checkout, never inside it.
ORIGINAL_SAKILA = Path(
    os.environ.get(
        "MEDIAVAULT_SAKILA_ORIGINAL", REPO_ROOT.parent / "shared" / "sakila" / "sakila.db"
    )
)
ORIGINAL_SAKILA_AS_OF = date(2006, 2, 20)
DEMO_AS_OF = date(2026, 3, 2)
DEMO_SEED = 42


def require_original_sakila() -> Path:
    """The original Sakila file; skipped locally when absent, a failure in CI."""
    if ORIGINAL_SAKILA.exists():
        return ORIGINAL_SAKILA
    if os.environ.get("CI") == "true":
        pytest.fail(f"original Sakila database missing at {ORIGINAL_SAKILA} (needed when CI=true)")
    pytest.skip(f"original Sakila database not found at {ORIGINAL_SAKILA}")
