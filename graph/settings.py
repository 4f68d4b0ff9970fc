"""The one declaration of every environment variable the agent reads.

:class:`Settings` lists each variable once, with its type, default and description; the README's
settings tables are tested against it (tests/unit/test_public_api.py). Nothing else in the
project reads ``os.environ`` for its configuration: the runtime :class:`~.context.Context`, the
model factory, the audit log, the review console, the mail accounts and the CLI all ask
:func:`load_settings`, and the application hands the Postgres scope key down to the business
database. (``VISUAL``/``EDITOR``, the editor ``mediavault review edit`` opens, are the
terminal's own and read by click; ``MEDIAVAULT_SCOPE_KEY`` is still read by the tools layer
when a library caller opens a Postgres database without passing a key; the eval harness reads
``MEDIAVAULT_SAKILA_ORIGINAL``, a test fixture path, itself.)

A bad value is refused with a :class:`~.context.ConfigurationError` naming the variable (and,
unless it is a secret, the value): a typo never turns into a silently weaker setting.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticUseDefault
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from mediavault.graph.context import (
    CHECKPOINT_RETENTION_POLICIES,
    DEFAULT_HOME,
    ConfigurationError,
    parse_business_date,
)
from mediavault.tools.business_db.scope_token import ScopeKeyError, parse_scope_key

#: The audit chain's HMAC key must be at least this long to resist guessing.
MIN_AUDIT_KEY_BYTES = 16
#: A session signed with a shorter secret could be forged by brute force.
MIN_WEB_SECRET_CHARS = 32

#: Fields whose value is kept byte for byte (a key or password may end in a space on purpose)
#: and never echoed in an error message.
_SECRETS = frozenset({"audit_key", "web_secret", "reviewer_password", "pg_agent_password",
                      "openai_api_key", "scope_key", "imap_password", "smtp_password"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _variable(name: str, description: str, *, default: Any = None) -> Any:
    return Field(validation_alias=name, description=description, default=default)


class Settings(BaseSettings):
    """Every environment variable of the agent, its review console and its command line."""

    model_config = SettingsConfigDict(
        case_sensitive=True,
        # An empty variable means "unset" (``MEDIAVAULT_DB= mediavault triage`` uses the default).
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        populate_by_name=False,
    )

    # -- the agent (read into Context) --------------------------------------------------------
    db: str | None = _variable(
        "MEDIAVAULT_DB", "Business database: a Sakila SQLite file or a postgresql:// DSN for the "
        "SELECT-only agent role (default: the demo database in MEDIAVAULT_HOME).")
    state_db: str | None = _variable(
        "MEDIAVAULT_STATE_DB", "Shared operations state for several workers: a postgresql:// "
        "DSN holding checkpoints and cases (default: SQLite files in MEDIAVAULT_HOME).")
    home: Path = _variable(
        "MEDIAVAULT_HOME", "State directory for the demo database, checkpoints, cases and the "
        "audit log (default: ./.mediavault).", default=Path(DEFAULT_HOME))
    model: str = _variable(
        "MEDIAVAULT_MODEL", "Chat model: `rules` (offline, default) or `openai:<model>`.",
        default="rules")
    today: date | None = _variable(
        "MEDIAVAULT_TODAY", "Business date override (YYYY-MM-DD), e.g. 2006-02-20 for the "
        "original Sakila data.")
    review: str = _variable(
        "MEDIAVAULT_REVIEW", "Review mode: `all` (default), `none`, or a comma-separated list of "
        "reason codes that need review; any other value is refused.", default="all")
    checkpoint_retention: str = _variable(
        "MEDIAVAULT_CHECKPOINT_RETENTION", "What is kept of a finished email's checkpoints: "
        "`last` (default), `none` (the case store and audit log hold the outcome) or `all`.",
        default=CHECKPOINT_RETENTION_POLICIES[0])
    authserv_ids: Annotated[tuple[str, ...], NoDecode] = _variable(
        "MEDIAVAULT_AUTHSERV_ID", "The receiving server(s) whose Authentication-Results headers "
        "verify raw-mail senders for `triage` and `worker`, comma-separated (default: none, so "
        "no raw-mail sender is verified).", default=())
    scope_key: SecretStr | None = _variable(
        "MEDIAVAULT_SCOPE_KEY", "Postgres business database only: the secret (16 to 64 bytes, "
        "hexadecimal) that signs each query's customer scope; `db init --postgres` prints it.")
    # -- the audit log and the hosted model ----------------------------------------------------
    audit_key: SecretStr | None = _variable(
        "MEDIAVAULT_AUDIT_KEY", "Secret (16+ bytes) that turns the audit hash chain into an "
        "HMAC chain, so edits, recomputation and truncation are all detectable.")
    model_timeout: float = _variable(
        "MEDIAVAULT_MODEL_TIMEOUT", "Seconds per request to a hosted model (default 60).",
        default=60.0)
    model_max_retries: int = _variable(
        "MEDIAVAULT_MODEL_MAX_RETRIES", "Retries with backoff for a hosted model (default 3).",
        default=3)
    model_max_tokens: int | None = _variable(
        "MEDIAVAULT_MODEL_MAX_TOKENS", "The most tokens one model answer may have (16 to "
        "100000; default: the server's own limit); useful with small local models.")
    openai_api_key: SecretStr | None = _variable(
        "OPENAI_API_KEY", "API key for `openai:<model>`.")
    openai_base_url: str | None = _variable(
        "OPENAI_BASE_URL", "Base URL of any OpenAI-compatible server for `openai:<model>`.")
    # -- the review console and its accounts ---------------------------------------------------
    reviewers_file: Path | None = _variable(
        "MEDIAVAULT_REVIEWERS_FILE", "Reviewer accounts (default: "
        "$MEDIAVAULT_HOME/reviewers.json).")
    web_secret: SecretStr | None = _variable(
        "MEDIAVAULT_WEB_SECRET", "Secret (32+ characters) that signs session cookies (default: "
        "a random one kept in $MEDIAVAULT_HOME/console_secret).")
    web_user_header: str | None = _variable(
        "MEDIAVAULT_WEB_USER_HEADER", "Trust this header (e.g. X-Forwarded-User) as the "
        "signed-in reviewer when it comes from a trusted proxy. Off unless set.")
    web_trusted_proxies: Annotated[tuple[str, ...], NoDecode] = _variable(
        "MEDIAVAULT_WEB_TRUSTED_PROXIES", "Addresses whose user header is trusted (default: "
        "127.0.0.1,::1).", default=("127.0.0.1", "::1"))
    web_allowed_hosts: Annotated[tuple[str, ...], NoDecode] = _variable(
        "MEDIAVAULT_WEB_ALLOWED_HOSTS", "Extra Host names the console answers to, "
        "comma-separated (default: only local names).", default=())
    web_secure_cookies: bool = _variable(
        "MEDIAVAULT_WEB_SECURE_COOKIES", "1 to send the session cookie over HTTPS only (set it "
        "behind a TLS proxy).", default=False)
    reviewer_password: SecretStr | None = _variable(
        "MEDIAVAULT_REVIEWER_PASSWORD", "Password for `mediavault reviewers add` in scripts.")
    pg_agent_password: SecretStr | None = _variable(
        "MEDIAVAULT_PG_AGENT_PASSWORD", "Password given to the agent's login role by "
        "`mediavault db init --postgres` (never on the command line).")
    # -- a real mailbox: `mediavault mail watch` (IMAP) and `mediavault mail send` (SMTP) -------
    # Ports and security modes are checked here; the rest (required names, the password file,
    # flags that override these) in agent/mail/mail_accounts.py.
    imap_host: str | None = _variable("MEDIAVAULT_IMAP_HOST", "The IMAP server to watch.")
    imap_port: int | None = _variable(
        "MEDIAVAULT_IMAP_PORT", "Its port (default 993 for `tls`, 143 for `starttls`).")
    imap_user: str | None = _variable("MEDIAVAULT_IMAP_USER", "The mailbox's user name.")
    imap_password: SecretStr | None = _variable(
        "MEDIAVAULT_IMAP_PASSWORD", "The mailbox's password (never a flag, never logged).")
    imap_password_file: Path | None = _variable(
        "MEDIAVAULT_IMAP_PASSWORD_FILE", "A file holding the mailbox's password instead.")
    imap_security: str | None = _variable(
        "MEDIAVAULT_IMAP_SECURITY", "`tls` (default) or `starttls`.")
    imap_folder: str | None = _variable(
        "MEDIAVAULT_IMAP_FOLDER", "The folder to watch (default INBOX).")
    imap_processed: str | None = _variable(
        "MEDIAVAULT_IMAP_PROCESSED", "How processed mail is marked: `flag` (default) or "
        "`move:<folder>`.")
    imap_sent_folder: str | None = _variable(
        "MEDIAVAULT_IMAP_SENT_FOLDER", "Where copies of sent replies go (default Sent).")
    smtp_host: str | None = _variable("MEDIAVAULT_SMTP_HOST", "The submission server.")
    smtp_port: int | None = _variable(
        "MEDIAVAULT_SMTP_PORT", "Its port (default 587 for `starttls`, 465 for `tls`).")
    smtp_user: str | None = _variable("MEDIAVAULT_SMTP_USER", "The submission user name.")
    smtp_password: SecretStr | None = _variable(
        "MEDIAVAULT_SMTP_PASSWORD", "The submission password (never a flag, never logged).")
    smtp_password_file: Path | None = _variable(
        "MEDIAVAULT_SMTP_PASSWORD_FILE", "A file holding the submission password instead.")
    smtp_security: str | None = _variable(
        "MEDIAVAULT_SMTP_SECURITY", "`starttls` (default) or `tls`.")
    mail_from: str | None = _variable(
        "MEDIAVAULT_MAIL_FROM", "The address replies come from (default "
        "support@mediavault.example).")
    mail_ca_file: Path | None = _variable(
        "MEDIAVAULT_MAIL_CA_FILE", "A private CA to trust for IMAP and SMTP besides the "
        "system's.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The process environment only: no .env file or secrets folder is picked up unasked.
        return init_settings, env_settings

    @classmethod
    def variable(cls, field_name: str) -> str:
        """The environment variable behind a field, e.g. ``audit_key`` -> MEDIAVAULT_AUDIT_KEY."""
        alias = cls.model_fields[field_name].validation_alias
        assert isinstance(alias, str)
        return alias

    def scope_key_bytes(self) -> bytes | None:
        """The Postgres scope-signing key as bytes, or None when ``MEDIAVAULT_SCOPE_KEY`` is unset.

        The application passes it to ``open_business_db``: tools never read settings.
        """
        return parse_scope_key(self.scope_key.get_secret_value()) if self.scope_key else None

    @field_validator("today", mode="before")
    @classmethod
    def _business_date(cls, value: Any) -> date | None:
        return parse_business_date(value)

    @field_validator("model_timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = float("nan")
        if not 0 < seconds <= 3600:  # also rejects nan and inf
            raise ValueError(f"{cls.variable('model_timeout')}={value!r} is not a number of "
                             "seconds between 0 and 3600")
        return seconds

    @field_validator("model_max_retries", mode="before")
    @classmethod
    def _retries(cls, value: Any) -> int:
        # Zero turns retries off; more than 10 would keep an email waiting for minutes.
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not re.fullmatch(r"[0-9]{1,2}", value) \
                or int(value) > 10:
            raise ValueError(f"{cls.variable('model_max_retries')}={value!r} is not a whole "
                             "number of retries from 0 to 10")
        return int(value)

    @field_validator("model_max_tokens", mode="before")
    @classmethod
    def _max_tokens(cls, value: Any) -> int | None:
        if value is None:
            return None
        text = str(value).strip()
        if not re.fullmatch(r"[0-9]{1,6}", text) or not 16 <= int(text) <= 100_000:
            raise ValueError(f"{cls.variable('model_max_tokens')}={value!r} is not a whole "
                             "number of tokens from 16 to 100000")
        return int(text)

    @field_validator("checkpoint_retention", mode="before")
    @classmethod
    def _retention(cls, value: Any) -> Any:
        policy = str(value).strip().lower()
        if policy not in CHECKPOINT_RETENTION_POLICIES:
            raise ValueError(
                f"{cls.variable('checkpoint_retention')}={value!r} is not one of "
                f"{', '.join(CHECKPOINT_RETENTION_POLICIES)}")
        return policy

    @field_validator("scope_key")
    @classmethod
    def _scope_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                parse_scope_key(value.get_secret_value())
            except ScopeKeyError as problem:  # its message names the variable, never the key
                raise ValueError(str(problem)) from None
        return value

    @field_validator("imap_port", "smtp_port", mode="before")
    @classmethod
    def _port(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:  # unset: the security mode's usual port
            return None
        try:
            port = int(str(value))
        except ValueError:
            port = 0
        if not 0 < port < 65536:
            raise ValueError(
                f"{cls.variable(str(info.field_name))}={value!r} is not a port number")
        return port

    @field_validator("imap_security", "smtp_security")
    @classmethod
    def _security(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and value not in ("tls", "starttls"):
            raise ValueError(f"{cls.variable(str(info.field_name))}={value!r}: use one of "
                             "tls, starttls (TLS is always on)")
        return value

    @field_validator("audit_key")
    @classmethod
    def _audit_key_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode("utf-8")) < \
                MIN_AUDIT_KEY_BYTES:
            length = len(value.get_secret_value().encode("utf-8"))
            raise ValueError(
                f"{cls.variable('audit_key')} is {length} bytes long; use at least "
                f"{MIN_AUDIT_KEY_BYTES} random bytes, e.g. the output of "
                '`python -c "import secrets; print(secrets.token_hex(32))"`')
        return value

    @field_validator("web_secret")
    @classmethod
    def _web_secret_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_WEB_SECRET_CHARS:
            raise ValueError(
                f"{cls.variable('web_secret')} is {len(value.get_secret_value())} characters "
                f"long; the session secret must be at least {MIN_WEB_SECRET_CHARS} characters")
        return value

    @field_validator("authserv_ids", mode="before")
    @classmethod
    def _server_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator("web_trusted_proxies", "web_allowed_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        items = tuple(item.strip() for item in value.split(",") if item.strip())
        if not items:  # "," alone: the default, never "trust nobody" by accident of a typo
            raise PydanticUseDefault()
        return items

    @field_validator("web_secure_cookies", mode="before")
    @classmethod
    def _on_or_off(cls, value: Any) -> Any:
        if isinstance(value, str):
            word = value.lower()
            if word in _TRUE | _FALSE:
                return word in _TRUE
            # "ture" must not quietly send cookies over plain HTTP.
            raise ValueError(f"{cls.variable('web_secure_cookies')}={value!r} is neither "
                             "1/true/yes/on nor 0/false/no/off")
        return value

    # Defined last: "before" validators run last-defined first, so every field sees stripped
    # text.
    @field_validator("*", mode="before")
    @classmethod
    def _strip(cls, value: Any, info: ValidationInfo) -> Any:
        # Paths, names and lists lose stray spaces; secrets are kept exactly as given.
        if isinstance(value, str) and info.field_name not in _SECRETS:
            value = value.strip()
            if not value:
                raise PydanticUseDefault()
        return value


class _GivenSettings(Settings):
    """Settings from a given mapping only (tests, or a caller holding its own environment)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def environment_variables() -> dict[str, str]:
    """Every declared variable and its description, in declaration order."""
    return {Settings.variable(name): field.description or ""
            for name, field in Settings.model_fields.items()}


def _configuration_error(problem: ValidationError, values: Mapping[str, str]) -> str:
    lines = []
    for error in problem.errors(include_url=False):
        field_name = str(error["loc"][0]) if error["loc"] else ""
        variable = field_name if field_name not in Settings.model_fields else \
            Settings.variable(field_name)
        reason = str(error.get("ctx", {}).get("error", error["msg"]))
        if reason.startswith(variable):
            lines.append(reason)
        elif field_name in _SECRETS:
            lines.append(f"{variable}: {reason}")
        else:
            lines.append(f"{variable}={values.get(variable, '')!r}: {reason}")
    return "; ".join(lines)


@lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    return tuple(environment_variables())


def _declared(environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple((name, value) for name in _names() if (value := environ.get(name)))


@lru_cache(maxsize=16)
def _settings_for(values: tuple[tuple[str, str], ...], *, from_process: bool) -> Settings:
    # Keyed on the declared variables' values: a changed environment is read afresh, an
    # unchanged one is validated once.
    given: dict[str, Any] = dict(values)
    try:
        return Settings() if from_process else _GivenSettings(**given)
    except ValidationError as problem:
        raise ConfigurationError(_configuration_error(problem, given)) from None


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings from ``environ`` (default: the process environment), validated.

    Raises :class:`ConfigurationError` naming every variable with a bad value.
    """
    values = _declared(os.environ if environ is None else environ)
    return _settings_for(values, from_process=environ is None)
