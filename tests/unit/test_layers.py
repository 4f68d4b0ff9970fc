"""The layers stay layered: evals -> agent -> graph -> tools -> policies/skills, one import root.

The check reads the source (tests/import_layers.py); the tests below also feed it bad imports,
so a check that stopped seeing anything would fail here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from import_layers import (
    REPO,
    arrows,
    check_file,
    module_name,
    project_files,
    violations,
)


def test_the_project_keeps_its_layers_and_its_import_root() -> None:
    problems = violations()
    assert not problems, "\n".join(str(p) for p in problems)


def test_the_check_reads_every_layer_and_the_tests() -> None:
    files = {path.relative_to(REPO).parts[0] for path in project_files()}
    assert {"agent", "graph", "tools", "evals", "policies", "tests", "notebooks"} <= files
    assert Path(__file__).resolve() in project_files()


def test_graph_depends_on_tools_and_policies_only() -> None:
    pairs = arrows()
    assert not [pair for pair in pairs if pair[0] == "graph" and pair[1] not in
                ("tools", "policies")]
    assert not [pair for pair in pairs if pair[0] == "tools" and pair[1] != "policies"]
    assert ("agent", "graph") in pairs  # the application builds and runs the graph


def _write(root: Path, relative: str, source: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("relative", "source", "expected"),
    [
        ("graph/nodes.py", "from mediavault.agent.stores.case_store import CaseStore\n",
         "graph must not import agent"),
        ("graph/nodes.py", "def f():\n    from mediavault.evals import runner\n",
         "graph must not import evals"),
        ("graph/nodes.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
         "    import mediavault.agent.api\n", "graph must not import agent"),
        ("graph/safety/rules.py", "from ...agent import api\n", "graph must not import agent"),
        ("tools/drafting/reply.py", "from mediavault.graph.context import Context\n",
         "tools must not import graph"),
        ("tools/agent_tools.py", "from mediavault import agent\n", "tools must not import agent"),
        ("policies/__init__.py", "from mediavault.tools.email_fields import EmailId\n",
         "policies must not import tools"),
        ("skills/__init__.py", "import mediavault.policies\n", "skills must not import policies"),
        ("agent/api.py", "from mediavault.evals.runner import run\n",
         "agent must not import evals"),
        ("agent/api.py", "from graph.nodes import ingest\n", "imports bare `graph.nodes`"),
        ("tests/unit/test_x.py", "import tools.agent_tools\n", "imports bare `tools.agent_tools`"),
        ("benchmarks/bench_x.py", "from agent import triage_email\n", "imports bare `agent`"),
    ],
)
def test_the_check_catches_an_import_that_breaks_a_rule(
    tmp_path: Path, relative: str, source: str, expected: str
) -> None:
    path = _write(tmp_path, relative, source)
    found = [str(v) for v in check_file(path, tmp_path)]
    assert any(expected in problem for problem in found), found


def test_the_check_reads_notebooks(tmp_path: Path) -> None:
    notebook = {"cells": [
        {"cell_type": "markdown", "source": ["import agent"]},
        {"cell_type": "code", "source": ["%pip install x\n", "from graph.builder import x\n"]},
    ]}
    path = _write(tmp_path, "notebooks/01.ipynb", json.dumps(notebook))
    found = [str(v) for v in check_file(path, tmp_path)]
    assert found == ["notebooks/01.ipynb:1: imports bare `graph.builder`; use "
                     "`mediavault.graph.builder`"]


@pytest.mark.parametrize(
    ("relative", "source"),
    [
        ("agent/api.py", "from mediavault.graph.nodes import ingest\n"),
        ("graph/nodes.py", "from mediavault.tools.agent_tools import parse_arguments\n"),
        ("graph/nodes.py", "from . import state\nfrom .safety import rules\n"),
        ("evals/runner.py", "from mediavault.agent.api import triage_email\n"),
        ("tools/agent_tools.py", "from mediavault.policies import policy_rules\n"),
        ("tests/unit/test_x.py", "import graphlib\nimport agents_sdk\n"),
    ],
)
def test_the_check_allows_downward_imports(tmp_path: Path, relative: str, source: str) -> None:
    assert check_file(_write(tmp_path, relative, source), tmp_path) == []


def test_module_names_follow_the_package_mapping() -> None:
    assert module_name(REPO / "agent" / "ops" / "batch.py") == "mediavault.agent.ops.batch"
    assert module_name(REPO / "graph" / "__init__.py") == "mediavault.graph"
    assert module_name(REPO / "mediavault" / "__init__.py") == "mediavault"
