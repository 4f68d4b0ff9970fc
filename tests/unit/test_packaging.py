"""An installed wheel works outside the checkout: policies, the skill and the schema ship inside."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_carries_its_data_and_works_outside_the_checkout(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(REPO)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("mediavault_agent-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in ("policies/mediavault_policies.md", "policies/policy_rules.toml",
                 "agent/web/templates/case.html", "evals/datasets/demo.jsonl",
                 "policies/risk_rules.toml", "skills/email-triage/SKILL.md",
                 "tools/business_db/sakila_schema.sql", "agent/mail/sample_inbox.csv"):
        assert f"mediavault/{data}" in names
    # One import root: nothing but the mediavault package (and its metadata) at the top.
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"mediavault"}
    assert not any(name.endswith((".db", ".sqlite")) for name in names)

    site = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
         str(wheel)], capture_output=True, text=True, timeout=300, check=False,
    )
    assert installed.returncode == 0, installed.stderr
    # A service with its own `tools` and `graph` packages imports them beside this project.
    for name in ("tools", "graph"):
        (site / name).mkdir()
        (site / name / "__init__.py").write_text(f"OWNER = 'the service ({name})'\n")
    probe = (
        "import tools, graph\n"
        "from mediavault import policies\n"
        "import mediavault.tools.policy_retrieval as p\n"
        "import mediavault.tools.business_db.demo_database as d\n"
        "import mediavault.graph.builder\n"
        "assert tools.OWNER == \"the service (tools)\" and graph.OWNER == \"the service (graph)\"\n"
        f"assert policies.__file__.startswith({str(site)!r})\n"
        "print(len(p.default_policy_library().sections()), policies.policy_rules().communication"
        ".sign_off)\n"
        "d.build_demo_database(__import__('pathlib').Path('demo.sqlite'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    ran = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
    assert "MediaVault Support Team" in ran.stdout
    assert (tmp_path / "demo.sqlite").stat().st_size > 1_000_000
