"""Every environment variable is declared once and a bad value is refused by name."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mediavault.graph.context import ConfigurationError, Context
from mediavault.graph.settings import Settings, environment_variables, load_settings

BAD_VALUES = {
    "MEDIAVAULT_TODAY": "tomorrow",
    "MEDIAVAULT_MODEL_TIMEOUT": "forever",
    "MEDIAVAULT_MODEL_MAX_RETRIES": "-1",
    "MEDIAVAULT_MODEL_MAX_TOKENS": "5",
    "MEDIAVAULT_AUDIT_KEY": "short",
    "MEDIAVAULT_WEB_SECRET": "too short",
    "MEDIAVAULT_WEB_SECURE_COOKIES": "ture",
    "MEDIAVAULT_CHECKPOINT_RETENTION": "forever",
    "MEDIAVAULT_SCOPE_KEY": "not hex at all",
    "MEDIAVAULT_IMAP_PORT": "imaps",
    "MEDIAVAULT_SMTP_PORT": "70000",
    "MEDIAVAULT_IMAP_SECURITY": "none",
}
SECRETS = {"MEDIAVAULT_AUDIT_KEY", "MEDIAVAULT_WEB_SECRET", "MEDIAVAULT_SCOPE_KEY"}
SCOPE_KEY = "ab" * 32


def test_no_variable_at_all_gives_the_documented_defaults() -> None:
    settings = load_settings({})
    assert settings.home == Path(".mediavault") and settings.model == "rules"
    assert settings.review == "all" and settings.today is None and settings.db is None
    assert settings.model_timeout == 60 and settings.model_max_retries == 3
    assert settings.web_trusted_proxies == ("127.0.0.1", "::1")
    assert settings.web_secure_cookies is False and settings.audit_key is None


def test_every_declared_variable_is_read() -> None:
    values = {
        "MEDIAVAULT_DB": "/data/sakila.db", "MEDIAVAULT_STATE_DB": "postgresql://db/state",
        "MEDIAVAULT_HOME": "/srv/mv", "MEDIAVAULT_MODEL": "openai:gpt-4o-mini",
        "MEDIAVAULT_TODAY": "2006-02-20", "MEDIAVAULT_REVIEW": "none",
        "MEDIAVAULT_AUDIT_KEY": "k" * 20, "MEDIAVAULT_MODEL_TIMEOUT": "2.5",
        "MEDIAVAULT_MODEL_MAX_RETRIES": "0", "MEDIAVAULT_MODEL_MAX_TOKENS": "384",
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "MEDIAVAULT_REVIEWERS_FILE": "/etc/r.json",
        "MEDIAVAULT_WEB_SECRET": "s" * 40, "MEDIAVAULT_WEB_USER_HEADER": "X-Forwarded-User",
        "MEDIAVAULT_WEB_TRUSTED_PROXIES": "10.0.0.1, 10.0.0.2",
        "MEDIAVAULT_WEB_ALLOWED_HOSTS": "review.example.com", "MEDIAVAULT_WEB_SECURE_COOKIES": "1",
        "MEDIAVAULT_REVIEWER_PASSWORD": "a long password ", "MEDIAVAULT_PG_AGENT_PASSWORD": "pw",
        "MEDIAVAULT_CHECKPOINT_RETENTION": "none", "MEDIAVAULT_AUTHSERV_ID": "mx.example.com",
        "MEDIAVAULT_SCOPE_KEY": SCOPE_KEY,
        "MEDIAVAULT_IMAP_HOST": "imap.example.com", "MEDIAVAULT_IMAP_PORT": "1993",
        "MEDIAVAULT_IMAP_USER": "support", "MEDIAVAULT_IMAP_PASSWORD": "imap pw",
        "MEDIAVAULT_IMAP_PASSWORD_FILE": "/run/imap", "MEDIAVAULT_IMAP_SECURITY": "starttls",
        "MEDIAVAULT_IMAP_FOLDER": "Support", "MEDIAVAULT_IMAP_PROCESSED": "move:Done",
        "MEDIAVAULT_IMAP_SENT_FOLDER": "Sent Items",
        "MEDIAVAULT_SMTP_HOST": "smtp.example.com", "MEDIAVAULT_SMTP_PORT": "2587",
        "MEDIAVAULT_SMTP_USER": "support", "MEDIAVAULT_SMTP_PASSWORD": "smtp pw",
        "MEDIAVAULT_SMTP_PASSWORD_FILE": "/run/smtp", "MEDIAVAULT_SMTP_SECURITY": "tls",
        "MEDIAVAULT_MAIL_FROM": "help@example.com", "MEDIAVAULT_MAIL_CA_FILE": "/etc/ca.pem",
    }
    assert set(values) == set(environment_variables())
    defaults = load_settings({}).model_dump()
    settings = load_settings(values)
    changed = {name for name, value in settings.model_dump().items() if value != defaults[name]}
    assert changed == set(Settings.model_fields)  # every field follows its variable
    assert settings.web_trusted_proxies == ("10.0.0.1", "10.0.0.2")
    assert settings.today == date(2006, 2, 20) and settings.web_secure_cookies is True
    # A password keeps its spaces: they may be part of it.
    assert settings.reviewer_password is not None
    assert settings.reviewer_password.get_secret_value() == "a long password "
    assert settings.scope_key_bytes() == bytes.fromhex(SCOPE_KEY)
    assert settings.authserv_ids == ("mx.example.com",) and settings.imap_port == 1993


@pytest.mark.parametrize(("name", "value"), sorted(BAD_VALUES.items()))
def test_a_bad_value_is_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings({name: value})
    message = str(refused.value)
    assert message.startswith(name)
    assert (value not in message) if name in SECRETS else (repr(value) in message)


@pytest.mark.parametrize("word", ["ture", "enabled", "2", "secure"])
def test_a_misspelt_secure_cookie_switch_is_never_read_as_off(word: str) -> None:
    with pytest.raises(ConfigurationError, match="MEDIAVAULT_WEB_SECURE_COOKIES"):
        load_settings({"MEDIAVAULT_WEB_SECURE_COOKIES": word})
    assert load_settings({"MEDIAVAULT_WEB_SECURE_COOKIES": "ON"}).web_secure_cookies is True


def test_an_empty_or_blank_variable_counts_as_unset() -> None:
    settings = load_settings({"MEDIAVAULT_HOME": "  ", "MEDIAVAULT_MODEL": "",
                              "MEDIAVAULT_WEB_TRUSTED_PROXIES": " , "})
    assert settings.home == Path(".mediavault") and settings.model == "rules"
    # A list of nothing is the default, never "trust nobody" or "trust everybody" by accident.
    assert settings.web_trusted_proxies == ("127.0.0.1", "::1")


def test_a_secret_never_shows_in_a_repr() -> None:
    settings = load_settings({"MEDIAVAULT_AUDIT_KEY": "super-secret-audit-key"})
    assert "super-secret" not in repr(settings) and "super-secret" not in str(settings)


def test_context_is_built_from_the_settings(
    mediavault_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIAVAULT_MODEL", "openai:gpt-4o-mini")
    monkeypatch.setenv("MEDIAVAULT_TODAY", "2006-02-20")
    context = Context()
    assert context.home == mediavault_home and context.model == "openai:gpt-4o-mini"
    assert context.today == date(2006, 2, 20)
    assert Context.from_settings(load_settings(), review="none") == context.with_overrides(
        review="none")
    monkeypatch.setenv("MEDIAVAULT_TODAY", "2007-01-01")  # a changed environment is read again
    assert Context().today == date(2007, 1, 1)


def test_a_bad_variable_stops_every_command_with_one_line(
    mediavault_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mediavault.cli import app

    monkeypatch.setenv("MEDIAVAULT_WEB_SECURE_COOKIES", "ture")
    for command in (["cases", "list"], ["triage", "examples/inbox.csv"], ["metrics"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, command
        assert result.exception is None or isinstance(result.exception, SystemExit)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "MEDIAVAULT_WEB_SECURE_COOKIES='ture'" in lines[0]
