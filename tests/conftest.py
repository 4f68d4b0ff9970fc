"""Shared fixtures: the generated demo database and, when present, the original Sakila file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sakila_paths import (
    DEMO_AS_OF,
    DEMO_SEED,
    require_original_sakila,
)


@pytest.fixture(scope="session")
def original_sakila_path() -> Path:
    return require_original_sakila()


@pytest.fixture(scope="session")
def demo_db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo database built once per test session (default seed, a fixed business date)."""
    from mediavault.tools.business_db.demo_database import build_demo_database

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/integration starts a server: it belongs to the slow tier.

    The fast tier is ``-m "not slow and not integration"`` (``make fast``); ``make unit`` and
    ``make test`` run it in parallel, then the rest one test at a time.
    """
    integration = Path(__file__).resolve().parent / "integration"
    for item in items:
        if integration in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)
