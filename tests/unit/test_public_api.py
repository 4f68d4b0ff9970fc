"""The public surface other services import: every exported name resolves and is documented."""

from __future__ import annotations

import inspect

import pytest

from mediavault import agent


@pytest.mark.parametrize("name", agent.__all__)
def test_every_export_resolves_and_has_a_docstring(name: str) -> None:
    value = getattr(agent, name)
    assert inspect.getdoc(value), f"agent.{name} has no docstring"


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError):
        _ = agent.no_such_thing  # type: ignore[attr-defined]


def test_importing_agent_loads_neither_the_graph_nor_a_model_client() -> None:
    import subprocess
    import sys

    code = ("import sys, mediavault, mediavault.agent; "
            "assert 'langchain_openai' not in sys.modules; "
            "assert 'mediavault.graph.builder' not in sys.modules; print('ok')")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=False)
    assert ran.returncode == 0, ran.stderr


def test_every_setting_is_documented_in_the_readme() -> None:
    from pathlib import Path

    from mediavault.graph.context import ENVIRONMENT_VARIABLES

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    missing = [name for name in ENVIRONMENT_VARIABLES if f"`{name}`" not in readme]
    assert missing == []
