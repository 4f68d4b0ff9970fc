"""The review mode: a typo must never turn human review off.

Any value that is not `all`, `none` or a list of the policy's reason codes is refused, in
``Context``, on every command line that takes ``--review`` and through ``MEDIAVAULT_REVIEW``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mediavault.cli import app
from mediavault.graph.approval_gate import needs_human_review
from mediavault.graph.context import ConfigurationError, Context
from mediavault.policies import reason_codes

runner = CliRunner()
TYPOS = ["yes", "bogus", "al", "nonee", "praise,complaints", "all,praise", "", " , "]


@pytest.mark.parametrize("value", TYPOS)
def test_context_refuses_a_review_mode_it_does_not_know(value: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        Context(review=value)
    message = str(refused.value)
    assert "all" in message and "none" in message and "rental_status" in message


@pytest.mark.parametrize(("value", "canonical"), [
    ("all", "all"), (" NONE ", "none"), ("Praise, complaint", "praise,complaint"),
    ("praise,praise", "praise"),
])
def test_context_accepts_and_normalises_the_valid_modes(value: str, canonical: str) -> None:
    assert Context(review=value).review == canonical


def test_the_environment_variable_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIAVAULT_REVIEW", "yes")
    with pytest.raises(ConfigurationError, match="'yes'"):
        Context()


def test_a_typo_that_reaches_the_gate_anyway_still_sends_every_draft_to_review() -> None:
    # Fail closed: the gate never reads an unknown code list as "review nothing".
    for code in reason_codes():
        assert needs_human_review("yes", code) is True
        assert needs_human_review("praise,bogus", code) is True
    assert needs_human_review("praise", "complaint") is False


@pytest.mark.parametrize("command", [
    ["triage", "examples/inbox.csv"], ["demo"], ["worker", "--state-db", "postgresql://x/y"],
    ["serve"],
])
def test_every_command_refuses_a_bad_review_mode_with_exit_2(
    mediavault_home: Path, demo_db_path: Path, command: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEDIAVAULT_DB", str(demo_db_path))
    flag = [] if command[0] == "serve" else ["--review", "yes"]
    if command[0] == "serve":  # the console takes its settings from the environment
        monkeypatch.setenv("MEDIAVAULT_REVIEW", "yes")
    result = runner.invoke(app, [*command, *flag])
    assert result.exit_code == 2, result.output
    assert "review mode 'yes' is not valid" in result.stderr
    assert "rental_status" in result.stderr
    assert not (mediavault_home / "outbox").exists()
