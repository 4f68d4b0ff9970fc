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


def _readme_settings_rows() -> dict[str, str]:
    """Each variable named in the first cell of a README table row, with its row."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    rows: dict[str, str] = {}
    for line in readme.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell):
                rows[name] = line
    return rows


def test_every_setting_is_documented_in_the_readme() -> None:
    from mediavault.graph.settings import environment_variables

    declared = set(environment_variables())
    documented = _readme_settings_rows()
    assert sorted(declared - set(documented)) == []  # declared, but missing from the tables
    assert sorted(set(documented) - declared) == []  # documented, but read by nothing


def test_the_readme_states_each_settings_default() -> None:
    from mediavault.graph.settings import Settings

    rows = _readme_settings_rows()
    for field_name in ("model", "review", "model_timeout", "model_max_retries"):
        default = Settings.model_fields[field_name].default
        shown = f"{default:g}" if isinstance(default, float) else str(default)
        assert f"`{shown}`" in rows[Settings.variable(field_name)], field_name
