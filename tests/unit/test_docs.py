"""The README's command documentation is tested, so it cannot drift from the CLI.

- Every command and every option has help text.
- Every command is in the README's command table, and every row of the table is a command.
- Every command in the table runs with ``--help``.
- The ```bash blocks marked ``<!-- docs-test: run -->`` are run line by line on a fresh state
  directory; a line ending in ``# exit N`` must exit with N, every other line with 0.
- Every command in the table appears in a marked block, except the few in
  :data:`NOT_RUN_FROM_THE_README`, each with the reason.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from mediavault.cli import app

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
RUN_MARKER = "<!-- docs-test: run -->"

#: Table commands the marked examples do not run, and why.
NOT_RUN_FROM_THE_README: dict[tuple[str, ...], str] = {
    ("studio",): "starts a long-running `langgraph dev` server; tests/unit/"
    "test_cli_cases_metrics_audit.py checks the command it builds instead",
    ("eval",): "runs the labelled dataset through the graph (tens of seconds); "
    "notebooks/02_evals_and_metrics.ipynb runs it on a sample and tests/unit/test_notebooks.py "
    "executes that notebook",
    ("serve",): "starts the review console's web server",
    ("redteam",): "runs the whole red-team suite (minutes); tests/unit/test_redteam.py runs the "
    "same library function and checks the command's output and exit status",
    ("worker",): "needs a PostgreSQL server; tests/integration/test_postgres_workers.py runs "
    "several workers on a throwaway cluster",
    ("local-model",): "starts a long-running llama.cpp server; tests/integration/"
    "test_local_model.py starts the same server and drives the graph through it",
    ("mail", "watch"): "needs an IMAP server; tests/integration/test_real_mail.py runs it "
    "against a throwaway Dovecot",
    ("mail", "send"): "needs an SMTP server; tests/integration/test_real_mail.py sends through "
    "a relay into a throwaway Dovecot",
    ("mail", "status"): "reads the mail ledger that `mail send` writes; "
    "tests/integration/test_real_mail.py checks its output",
    ("mail", "resolve"): "settles a send a crash interrupted; tests/integration/"
    "test_real_mail.py kills a dispatcher mid-send and resolves it",
}

CommandPath = tuple[str, ...]


def _subcommands(command: Any) -> dict[str, Any]:
    # Typer's command classes: a group is a command that has subcommands.
    return dict(getattr(command, "commands", None) or {})


def _root() -> Any:
    return typer.main.get_command(app)


def _walk(group: Any, prefix: CommandPath = ()) -> Iterator[tuple[CommandPath, Any]]:
    for name, command in _subcommands(group).items():
        path = (*prefix, name)
        yield path, command
        yield from _walk(command, path)


def _runnable_commands() -> dict[CommandPath, Any]:
    """Commands a user can run: leaves, and groups that do something on their own."""
    return {path: cmd for path, cmd in _walk(_root())
            if not _subcommands(cmd) or getattr(cmd, "invoke_without_command", False)}


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start: end if end != -1 else None]


def _command_path(words: list[str]) -> CommandPath:
    """The subcommand words of an invocation: everything before the first option or value."""
    path: list[str] = []
    group = _root()
    for word in words:
        if word not in _subcommands(group):
            break
        path.append(word)
        group = _subcommands(group)[word]
    return tuple(path)


def _table_commands() -> list[str]:
    rows = re.findall(r"^\| `(mediavault[^`]*)` \|", _section("Command line"), re.M)
    assert rows, "the README's command table is missing"
    return rows


def _marked_lines() -> list[str]:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(re.escape(RUN_MARKER) + r"\s*```bash\n(.*?)```", text, re.S)
    assert blocks, f"no ```bash block in the README is marked {RUN_MARKER}"
    return [line.strip() for block in blocks for line in block.splitlines()
            if line.strip() and not line.strip().startswith("#")]


# ------------------------------------------------------------------------------ help text


def test_every_command_and_option_has_help_text() -> None:
    missing = []
    for path, command in [((), _root()), *_walk(_root())]:
        name = " ".join(("mediavault", *path))
        if not (command.help or command.short_help or "").strip():
            missing.append(f"{name}: no help text")
        for parameter in command.params:
            if parameter.name == "help":
                continue
            if not (getattr(parameter, "help", None) or "").strip():
                missing.append(f"{name}: {parameter.opts[0]} has no help text")
    assert missing == []


# -------------------------------------------------------------------------- command table


def test_every_command_is_in_the_readme_table_and_every_row_is_a_command() -> None:
    documented = {_command_path(shlex.split(row)[1:]) for row in _table_commands()}
    commands = set(_runnable_commands())
    assert sorted(commands - documented) == [], (
        "commands missing from the command table in the README's 'Command line' section")
    assert sorted(documented - commands - {()}) == [], "README rows that are not commands"


@pytest.mark.parametrize("row", _table_commands())
def test_every_documented_command_answers_help(row: str) -> None:
    path = _command_path(shlex.split(row)[1:])
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: mediavault" in result.output


def test_the_version_option_in_the_table_exists() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("mediavault ")


# ------------------------------------------------------------------------ README examples


def test_the_marked_examples_cover_every_command_in_the_table() -> None:
    exercised = set()
    for line in _marked_lines():
        words = shlex.split(line, comments=True)
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            words.pop(0)  # VAR=value prefixes, as the runner below allows
        exercised.add(_command_path(words[1:]))
    for row in _table_commands():
        path = _command_path(shlex.split(row)[1:])
        if path and path not in NOT_RUN_FROM_THE_README:
            assert path in exercised, (
                f"`{row}` is in the table but no marked README example runs it: add it to a "
                f"block marked {RUN_MARKER}, or to NOT_RUN_FROM_THE_README with the reason")


@pytest.mark.slow  # runs every marked README command
def test_the_readme_examples_run_as_written(
    mediavault_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh working folder that sees the sample inbox where the README says it is; files
    # the examples write (an HTML report) land here, not in the checkout.
    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    monkeypatch.chdir(work)
    runner = CliRunner()
    for line in _marked_lines():
        words = shlex.split(line, comments=True)
        environment = {}
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            name, value = words.pop(0).split("=", 1)
            environment[name] = value
        assert words and words[0] == "mediavault", (
            f"{line!r}: marked README blocks may only hold mediavault commands")
        expected = re.search(r"#\s*exit (\d+)", line)
        result = runner.invoke(app, words[1:], env=environment)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"{line!r} raised {result.exception!r}\n{result.output}")
        assert result.exit_code == (int(expected.group(1)) if expected else 0), (
            f"{line!r} exited {result.exit_code}\n{result.output}")
        assert "Traceback" not in result.output, line
