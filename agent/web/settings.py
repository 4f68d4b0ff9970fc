"""Settings of the review console: where accounts live, how sessions are signed, who is trusted.

Every setting has an environment variable (documented in the README, section "Review
console"); the defaults suit one operator running the console on their own machine.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mediavault.graph.context import ConfigurationError, Context

REVIEWERS_FILE_NAME = "reviewers.json"
SECRET_FILE_NAME = "console_secret"
SESSIONS_FILE_NAME = "console_sessions.json"
#: A session signed with a shorter secret could be forged by brute force.
MIN_SECRET_CHARS = 32
DEFAULT_SESSION_HOURS = 8
LOCAL_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost", "[::1]")

#: Environment variables read by :meth:`ConsoleSettings.from_env`.
ENVIRONMENT_VARIABLES: dict[str, str] = {
    "MEDIAVAULT_REVIEWERS_FILE": "Reviewer accounts (default: $MEDIAVAULT_HOME/reviewers.json).",
    "MEDIAVAULT_WEB_SECRET": "Secret (32+ characters) that signs session cookies (default: a "
    "random one kept in $MEDIAVAULT_HOME/console_secret).",
    "MEDIAVAULT_WEB_USER_HEADER": "Trust this header (e.g. X-Forwarded-User) as the signed-in "
    "reviewer when it comes from a trusted proxy. Off unless set.",
    "MEDIAVAULT_WEB_TRUSTED_PROXIES": "Addresses whose user header is trusted (default: "
    "127.0.0.1,::1).",
    "MEDIAVAULT_WEB_ALLOWED_HOSTS": "Extra Host names the console answers to, comma-separated "
    "(default: only local names).",
    "MEDIAVAULT_WEB_SECURE_COOKIES": "1 to send the session cookie over HTTPS only (set it "
    "behind a TLS proxy).",
}


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


def _utc_now() -> datetime:
    return datetime.now(UTC)


def load_or_create_secret(path: Path) -> str:
    """The session-signing secret kept at ``path``, created (owner-only) on first use."""
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48)
        # O_EXCL: two consoles starting at once must not end up with different secrets.
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_or_create_secret(path)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(secret + "\n")
    if len(secret) < MIN_SECRET_CHARS:
        raise ConfigurationError(
            f"the session secret in {path} is shorter than {MIN_SECRET_CHARS} characters; "
            "delete the file to have a new one generated"
        )
    return secret


@dataclass(frozen=True, kw_only=True)
class ConsoleSettings:
    """Everything the review console needs besides the agent's own :class:`Context`."""

    context: Context
    reviewers_path: Path
    secret_key: str = field(repr=False)
    #: Header a reverse proxy sets to the authenticated user; ``None`` turns proxy sign-in off.
    user_header: str | None = None
    trusted_proxies: frozenset[str] = frozenset({"127.0.0.1", "::1"})
    allowed_hosts: tuple[str, ...] = LOCAL_HOSTS
    secure_cookies: bool = False
    session_max_age_seconds: int = DEFAULT_SESSION_HOURS * 3600
    #: Failed sign-ins per reviewer name before sign-in is refused for ``lockout_seconds``.
    max_failed_sign_ins: int = 5
    #: The same, per client address (one password tried across many names) and overall.
    max_failed_sign_ins_per_client: int = 20
    max_failed_sign_ins_overall: int = 100
    #: Server-side record of live sessions (default: in the home directory).
    sessions_path: Path | None = None
    lockout_seconds: int = 15 * 60
    clock: Callable[[], datetime] = field(default=_utc_now, compare=False, repr=False)

    @property
    def live_sessions_path(self) -> Path:
        """Where the console records its live sessions (owner-only, no cookie values)."""
        return self.sessions_path or self.context.home / SESSIONS_FILE_NAME

    def __post_init__(self) -> None:
        if len(self.secret_key) < MIN_SECRET_CHARS:
            raise ConfigurationError(
                f"the session secret must be at least {MIN_SECRET_CHARS} characters long"
            )

    @classmethod
    def from_env(
        cls,
        context: Context | None = None,
        *,
        host: str | None = None,
        user_header: str | None = None,
    ) -> ConsoleSettings:
        """Settings from ``MEDIAVAULT_*`` variables; ``host`` is the address being served."""
        context = context or Context()
        reviewers = _env("MEDIAVAULT_REVIEWERS_FILE")
        secret = _env("MEDIAVAULT_WEB_SECRET")
        if secret is None:
            secret = load_or_create_secret(context.home / SECRET_FILE_NAME)
        hosts = [*LOCAL_HOSTS, *_csv(_env("MEDIAVAULT_WEB_ALLOWED_HOSTS"))]
        if host and host not in ("0.0.0.0", "::") and host not in hosts:
            hosts.append(host)
        proxies = _csv(_env("MEDIAVAULT_WEB_TRUSTED_PROXIES")) or ("127.0.0.1", "::1")
        return cls(
            context=context,
            reviewers_path=Path(reviewers) if reviewers else context.home / REVIEWERS_FILE_NAME,
            secret_key=secret,
            user_header=user_header or _env("MEDIAVAULT_WEB_USER_HEADER"),
            trusted_proxies=frozenset(proxies),
            allowed_hosts=tuple(dict.fromkeys(hosts)),
            secure_cookies=_env("MEDIAVAULT_WEB_SECURE_COOKIES") in ("1", "true", "yes"),
        )
