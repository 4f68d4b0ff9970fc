"""Shared fixtures: the generated demo database and, when present, the original Sakila file."""

from __future__ import annotations

import os
from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def original_sakila_path() -> Path:
    return require_original_sakila()


@pytest.fixture(scope="session")
def demo_db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo database built once per test session (default seed, a fixed business date)."""
    from tools.demo_database import build_demo_database

    path = tmp_path_factory.mktemp("demo") / "sakila_demo.sqlite"
    build_demo_database(path, seed=DEMO_SEED, as_of=DEMO_AS_OF)
    return path


@pytest.fixture
def mediavault_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty MEDIAVAULT_HOME, with no MEDIAVAULT_* variable leaking in from the shell."""
    for name in list(os.environ):
        if name.startswith("MEDIAVAULT_") and name != "MEDIAVAULT_SAKILA_ORIGINAL":
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("MEDIAVAULT_HOME", str(home))
    yield home
