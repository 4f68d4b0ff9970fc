"""Settings of a real mailbox: the IMAP account the agent watches and the SMTP server it sends by.

Read from ``MEDIAVAULT_IMAP_*`` / ``MEDIAVAULT_SMTP_*`` environment variables (declared, with
every other setting, in :mod:`mediavault.graph.settings`), each overridable
by a command-line flag except the passwords, which come only from the environment (or a file
named by ``MEDIAVAULT_IMAP_PASSWORD_FILE`` / ``MEDIAVAULT_SMTP_PASSWORD_FILE``) so that they never
appear in a process list, a log line or an error message. TLS is always on and verified against
the system's trust store (plus ``MEDIAVAULT_MAIL_CA_FILE`` for a private CA).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mediavault.agent.mail.outbox import DEFAULT_FROM_ADDRESS
from mediavault.graph.context import ConfigurationError
from mediavault.graph.settings import Settings, load_settings

Security = Literal["tls", "starttls"]
SECURITY_MODES: tuple[Security, ...] = ("tls", "starttls")
PROCESSED_HELP = "`flag` (add the $MediaVaultTriaged keyword) or `move:<folder>`"
#: The IMAP keyword that marks a message whose outcome is recorded.
TRIAGED_KEYWORD = "$MediaVaultTriaged"


@dataclass(frozen=True)
class ImapAccount:
    """The mailbox the agent reads (and whose Sent folder keeps a copy of every reply)."""

    host: str
    username: str
    password: str = field(repr=False)
    port: int = 993
    security: Security = "tls"
    folder: str = "INBOX"
    #: What marks a message as processed once its outcome is recorded.
    processed: str = "flag"
    sent_folder: str = "Sent"
    ca_file: Path | None = None

    def __post_init__(self) -> None:
        _check_security(self.security, "MEDIAVAULT_IMAP_SECURITY")
        if self.processed != "flag" and not (
            self.processed.startswith("move:") and self.processed.removeprefix("move:").strip()
        ):
            raise ConfigurationError(
                f"MEDIAVAULT_IMAP_PROCESSED={self.processed!r}: use {PROCESSED_HELP}")

    @property
    def move_to(self) -> str | None:
        """The folder processed messages move to, or None when they are flagged."""
        return self.processed.removeprefix("move:").strip() if self.processed != "flag" else None

    def tls_context(self) -> ssl.SSLContext:
        return tls_context(self.ca_file)

    @property
    def label(self) -> str:
        """How the account is named in the ledger and in messages: never with the password."""
        return f"{self.username}@{self.host}:{self.port}/{self.folder}"


@dataclass(frozen=True)
class SmtpAccount:
    """The submission server replies are sent through."""

    host: str
    username: str
    password: str = field(repr=False)
    port: int = 587
    security: Security = "starttls"
    from_address: str = DEFAULT_FROM_ADDRESS
    ca_file: Path | None = None

    def __post_init__(self) -> None:
        _check_security(self.security, "MEDIAVAULT_SMTP_SECURITY")

    def tls_context(self) -> ssl.SSLContext:
        return tls_context(self.ca_file)


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verified TLS: the system's trust store, plus a private CA when one is configured."""
    context = ssl.create_default_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as error:
            raise ConfigurationError(f"cannot read the CA file {ca_file}: {error}") from None
    return context


def imap_account_from_env(
    environ: Mapping[str, str] | None = None, **overrides: object
) -> ImapAccount:
    """The IMAP account from ``MEDIAVAULT_IMAP_*`` (flags in ``overrides`` win when not None)."""
    settings = load_settings(environ)
    server = _server(settings, "imap", overrides, default_security="tls", tls_port=993,
                     starttls_port=143)
    values = server.values
    return ImapAccount(
        host=server.host, username=server.username, password=server.password,
        port=server.port, security=server.security,
        folder=str(values.get("folder") or "INBOX"),
        processed=str(values.get("processed") or "flag"),
        sent_folder=str(values.get("sent_folder") or "Sent"),
        ca_file=_ca_file(settings, overrides),
    )


def smtp_account_from_env(
    environ: Mapping[str, str] | None = None, **overrides: object
) -> SmtpAccount:
    """The SMTP account from ``MEDIAVAULT_SMTP_*`` (flags in ``overrides`` win when not None)."""
    settings = load_settings(environ)
    server = _server(settings, "smtp", overrides, default_security="starttls", tls_port=465,
                     starttls_port=587)
    return SmtpAccount(
        host=server.host, username=server.username, password=server.password,
        port=server.port, security=server.security,
        from_address=settings.mail_from or DEFAULT_FROM_ADDRESS,
        ca_file=_ca_file(settings, overrides),
    )


@dataclass(frozen=True)
class _Server:
    """What an IMAP and an SMTP account share: where, who, and how securely."""

    values: dict[str, object]
    host: str
    username: str
    password: str = field(repr=False)
    port: int
    security: Security


def _server(settings: Settings, kind: str, overrides: Mapping[str, object], *,
            default_security: Security, tls_port: int, starttls_port: int) -> _Server:
    prefix = f"MEDIAVAULT_{kind.upper()}"
    values = _settings(settings, kind, overrides)
    security = str(values.get("security") or default_security)
    _check_security(security, f"{prefix}_SECURITY")
    return _Server(
        values=values,
        host=_required(values, "host", f"{prefix}_HOST"),
        username=_required(values, "user", f"{prefix}_USER"),
        password=_password(settings, kind),
        port=_port(values.get("port"), tls_port if security == "tls" else starttls_port,
                   f"{prefix}_PORT"),
        security=security,  # type: ignore[arg-type]
    )


_FIELDS = ("host", "port", "security", "user", "folder", "processed", "sent_folder")


def _settings(settings: Settings, kind: str, overrides: Mapping[str, object]
              ) -> dict[str, object]:
    values: dict[str, object] = {}
    for name in _FIELDS:
        declared = getattr(settings, f"{kind}_{name}", None)  # smtp has no folders
        if declared is not None:
            values[name] = declared
        if overrides.get(name) is not None:
            values[name] = overrides[name]
    return values


def _required(values: Mapping[str, object], name: str, variable: str) -> str:
    value = str(values.get(name) or "").strip()
    if not value:
        raise ConfigurationError(f"{variable} is not set (or pass --{name.replace('_', '-')})")
    return value


def _password(settings: Settings, kind: str) -> str:
    direct = getattr(settings, f"{kind}_password")
    if direct is not None:
        return str(direct.get_secret_value())
    variable = Settings.variable(f"{kind}_password")
    file_name = getattr(settings, f"{kind}_password_file")
    if file_name is not None:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigurationError(
                f"cannot read {variable}_FILE: {error.strerror}") from None
    raise ConfigurationError(
        f"{variable} (or {variable}_FILE) is not set; an app "
        "password works for Gmail and Microsoft 365")


def _port(value: object, default: int, variable: str) -> int:
    if value is None or value == "":
        return default
    try:
        port = int(str(value))
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise ConfigurationError(f"{variable}={value!r} is not a port number")
    return port


def _ca_file(settings: Settings, overrides: Mapping[str, object]) -> Path | None:
    value = overrides.get("ca_file") or settings.mail_ca_file
    return Path(str(value)) if value else None


def _check_security(value: str, variable: str) -> None:
    if value not in SECURITY_MODES:
        raise ConfigurationError(
            f"{variable}={value!r}: use one of {', '.join(SECURITY_MODES)} (TLS is always on)")
