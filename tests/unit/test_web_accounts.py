"""Reviewer accounts, console settings and the `mediavault serve` commands."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mediavault.agent.web.accounts import (
    AccountError,
    ReviewerAccounts,
    add_reviewer,
    remove_reviewer,
    reviewer_names,
)
from mediavault.agent.web.auth import safe_next
from mediavault.agent.web.settings import ConsoleSettings
from mediavault.cli import app
from mediavault.graph.context import ConfigurationError, Context

runner = CliRunner()


def test_passwords_are_stored_as_argon2id_hashes_only(tmp_path: Path) -> None:
    path = tmp_path / "reviewers.json"
    assert add_reviewer(path, "sam", "a long enough secret") is True
    text = path.read_text()
    assert "a long enough secret" not in text
    assert json.loads(text)["reviewers"]["sam"]["password_hash"].startswith("$argon2id$")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    accounts = ReviewerAccounts(path)
    assert accounts.verify("sam", "a long enough secret")
    assert not accounts.verify("sam", "a long enough secreT")
    assert not accounts.verify("nobody", "a long enough secret")
    # A new password replaces the old one.
    assert add_reviewer(path, "sam", "another long secret") is False
    assert accounts.verify("sam", "another long secret")
    assert not accounts.verify("sam", "a long enough secret")
    assert remove_reviewer(path, "sam") and not accounts.exists("sam")
    assert remove_reviewer(path, "sam") is False


@pytest.mark.parametrize(
    "name", ["", "-dash-first", "has space", "a" * 65, "<b>", "tab\there", "ünïcode"]
)
def test_reviewer_names_that_could_confuse_logs_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(AccountError, match="reviewer name"):
        add_reviewer(tmp_path / "reviewers.json", name, "a long enough secret")


def test_short_passwords_and_broken_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "reviewers.json"
    with pytest.raises(AccountError, match="at least 10"):
        add_reviewer(path, "sam", "short")
    path.write_text("[1, 2, 3]")
    with pytest.raises(AccountError, match="not a reviewer accounts file"):
        reviewer_names(path)
    path.write_text("{not json")
    with pytest.raises(AccountError, match="cannot read"):
        ReviewerAccounts(path).names()


def test_the_session_secret_is_generated_once_and_kept_private(
    mediavault_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ConsoleSettings.from_env(Context())
    second = ConsoleSettings.from_env(Context())
    secret_file = mediavault_home / "console_secret"
    assert first.secret_key == second.secret_key and len(first.secret_key) >= 32
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert first.reviewers_path == mediavault_home / "reviewers.json"
    assert first.user_header is None  # proxy sign-in is off unless the operator turns it on
    monkeypatch.setenv("MEDIAVAULT_WEB_SECRET", "too short")
    with pytest.raises(ConfigurationError, match="at least 32"):
        ConsoleSettings.from_env(Context())


def test_settings_answer_only_to_local_names_unless_told(
    mediavault_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = ConsoleSettings.from_env(Context(), host="127.0.0.1")
    assert set(local.allowed_hosts) == {"127.0.0.1", "localhost", "[::1]"}
    monkeypatch.setenv("MEDIAVAULT_WEB_ALLOWED_HOSTS", "review.example.com")
    monkeypatch.setenv("MEDIAVAULT_WEB_USER_HEADER", "X-Forwarded-User")
    proxied = ConsoleSettings.from_env(Context(), host="0.0.0.0")
    assert "review.example.com" in proxied.allowed_hosts and "0.0.0.0" not in proxied.allowed_hosts
    assert proxied.user_header == "X-Forwarded-User"
    assert proxied.trusted_proxies == {"127.0.0.1", "::1"}


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/cases/msg-1", "/cases/msg-1"),
        ("/queue?reason_code=praise", "/queue?reason_code=praise"),
        (None, "/queue"),
        ("", "/queue"),
        ("//evil.example", "/queue"),
        ("https://evil.example/x", "/queue"),
        ("/\\evil.example", "/queue"),
        ("cases", "/queue"),
    ],
)
def test_only_local_paths_are_followed_after_sign_in(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_reviewer_commands_manage_accounts(mediavault_home: Path) -> None:
    added = runner.invoke(
        app, ["reviewers", "add", "sam", "--password-stdin"], input="a long enough secret\n"
    )
    assert added.exit_code == 0, added.output
    assert "reviewer sam: created" in added.output
    accounts = ReviewerAccounts(mediavault_home / "reviewers.json")
    assert accounts.verify("sam", "a long enough secret")
    from_env = runner.invoke(
        app, ["reviewers", "add", "sam"], env={"MEDIAVAULT_REVIEWER_PASSWORD": "a new long secret"}
    )
    assert from_env.exit_code == 0 and "password changed" in from_env.output
    assert accounts.verify("sam", "a new long secret")
    listed = runner.invoke(app, ["reviewers", "list"])
    assert listed.exit_code == 0 and listed.output.split() == ["sam"]
    as_json = runner.invoke(app, ["reviewers", "list", "--json"])
    assert as_json.exit_code == 0, as_json.output
    [account] = json.loads(as_json.stdout)
    assert account["name"] == "sam" and account["created_at"].startswith("20")
    assert set(account) == {"name", "created_at"}  # never the password hash
    short = runner.invoke(app, ["reviewers", "add", "kim", "--password-stdin"], input="short\n")
    assert short.exit_code == 2
    assert "at least 10 characters" in short.output
    assert "Traceback" not in short.output
    bad_name = runner.invoke(
        app, ["reviewers", "add", "<b>", "--password-stdin"], input="a long enough secret\n"
    )
    assert bad_name.exit_code == 2 and "reviewer name" in bad_name.output
    removed = runner.invoke(app, ["reviewers", "remove", "sam"])
    assert removed.exit_code == 0
    missing = runner.invoke(app, ["reviewers", "remove", "sam"])
    assert missing.exit_code == 1 and "no reviewer 'sam'" in missing.output


def test_serve_refuses_to_start_without_any_way_to_sign_in(mediavault_home: Path) -> None:
    result = runner.invoke(app, ["serve", "--port", "8765"])
    assert result.exit_code == 2
    assert "no reviewer accounts" in result.output
    assert "mediavault reviewers add NAME" in result.output


def test_serve_help_documents_the_defaults() -> None:
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    assert "127.0.0.1" in result.output and "8000" in result.output
