"""Who is signed in, and whether a form really comes from the console (CSRF).

A reviewer is signed in by one of three means:

- a session: the signed, HttpOnly cookie set after a password sign-in;
- a reverse proxy's user header, when the operator turns that on, and only when the request
  comes straight from a trusted proxy address;
- HTTP Basic credentials, for scripts using the JSON API. The console never asks a browser
  for Basic credentials (no ``WWW-Authenticate`` challenge), so a browser never sends them
  on its own and they need no CSRF token.

Every form carries the session's CSRF token and every state-changing API call made with a
browser's credentials (cookie or proxy) carries it in the ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import Depends, Request

from mediavault.agent.web.accounts import REVIEWER_NAME
from mediavault.agent.web.runtime import console
from mediavault.agent.wiring import services_for

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_REVIEWER = "reviewer"
_SESSION_ID = "sid"
_CSRF = "csrf"
_FLASH = "flash"

Via = Literal["session", "proxy", "basic"]


@dataclass(frozen=True)
class Reviewer:
    """The signed-in reviewer and how they signed in."""

    name: str
    via: Via


class NotSignedIn(Exception):
    """No reviewer is signed in; pages redirect to sign-in, API calls answer 401."""

    def __init__(self, *, api: bool) -> None:
        super().__init__("sign in first")
        self.api = api


class CsrfRefused(Exception):
    """A state-changing request without the session's CSRF token."""


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created when the session has none."""
    token = request.session.get(_CSRF)
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session[_CSRF] = token
    return token


def check_csrf(request: Request, submitted: str | None) -> None:
    """Raise :class:`CsrfRefused` unless ``submitted`` is this session's token."""
    expected = request.session.get(_CSRF)
    if not (
        isinstance(expected, str)
        and isinstance(submitted, str)
        and submitted
        and hmac.compare_digest(expected.encode(), submitted.encode())
    ):
        raise CsrfRefused("the form is missing its security token or it has expired")


def sign_in(request: Request, name: str) -> None:
    """Start a fresh session for ``name`` (a new CSRF token; nothing from before is kept),
    recorded on the server so that signing out or a new password can end it there."""
    state = console(request)
    state.sessions.end(request.session.get(_SESSION_ID))
    request.session.clear()
    stamp = state.accounts.stamp(name) or ""
    request.session[_SESSION_ID] = state.sessions.start(name, stamp)
    request.session[_REVIEWER] = name
    request.session[_CSRF] = secrets.token_urlsafe(32)


def sign_out(request: Request) -> None:
    """End the session on the server too: a copy of the cookie no longer signs anyone in."""
    console(request).sessions.end(request.session.get(_SESSION_ID))
    request.session.clear()


def audit_sign_in(request: Request, name: str | None, *, ok: bool, reason: str) -> None:
    """Record a sign-in attempt in the audit log (the name only when it is a valid one)."""
    actor = name if name and REVIEWER_NAME.fullmatch(name) else "unknown"
    client = request.client.host if request.client else None
    services_for(console(request).settings.context).audit.append(
        "reviewer.sign_in",
        outcome="success" if ok else "failure",
        reason=reason,
        actor=actor,
        details={"client": client},
    )


def _proxy_reviewer(request: Request) -> Reviewer | None:
    settings = console(request).settings
    if not settings.user_header or request.client is None:
        return None
    if request.client.host not in settings.trusted_proxies:
        return None
    value = request.headers.get(settings.user_header, "").strip()
    if value and REVIEWER_NAME.fullmatch(value):
        return Reviewer(name=value, via="proxy")
    return None


def _session_reviewer(request: Request) -> Reviewer | None:
    name = request.session.get(_REVIEWER)
    if not isinstance(name, str):
        return None
    # A session the server no longer knows (signed out, expired), whose reviewer was removed
    # from the accounts file or has a new password since, is out on this request.
    state = console(request)
    if not state.sessions.check(request.session.get(_SESSION_ID), name,
                                state.accounts.stamp(name)):
        request.session.clear()
        return None
    return Reviewer(name=name, via="session")


def _basic_reviewer(request: Request) -> Reviewer | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, separator, password = decoded.partition(":")
    if not separator:
        return None
    state = console(request)
    now = state.now()
    client = client_address(request)
    if state.throttle.locked(name, now, client):
        return None
    if state.accounts.verify(name, password):
        state.throttle.succeeded(name)
        return Reviewer(name=name, via="basic")
    state.throttle.failed(name, now, client)
    return None


def client_address(request: Request) -> str | None:
    """The address of the client behind the request, for the sign-in throttles.

    From a trusted proxy it is the last ``X-Forwarded-For`` entry (the address that proxy
    saw; entries before it are the client's own say-so); from anyone else, the peer address.
    """
    if request.client is None:
        return None
    peer = request.client.host
    if peer in console(request).settings.trusted_proxies:
        forwarded = request.headers.get("x-forwarded-for", "").split(",")[-1].strip()
        if forwarded:
            return forwarded[:64]
    return peer


def signed_in(request: Request) -> Reviewer | None:
    """The reviewer behind a browser request (proxy header or session), if any."""
    return _proxy_reviewer(request) or _session_reviewer(request)


def page_reviewer(request: Request) -> Reviewer:
    """Dependency of every page: the signed-in reviewer, or a redirect to sign-in."""
    reviewer = signed_in(request)
    if reviewer is None:
        raise NotSignedIn(api=False)
    return reviewer


def api_reviewer(request: Request) -> Reviewer:
    """Dependency of every API call: a browser session, the proxy header or Basic credentials."""
    reviewer = signed_in(request) or _basic_reviewer(request)
    if reviewer is None:
        raise NotSignedIn(api=True)
    return reviewer


def api_decider(request: Request, reviewer: Annotated[Reviewer, Depends(api_reviewer)]) -> Reviewer:
    """Dependency of state-changing API calls: as :func:`api_reviewer`, plus the CSRF header
    whenever the credentials are ones a browser sends by itself."""
    if reviewer.via != "basic":
        check_csrf(request, request.headers.get(CSRF_HEADER))
    return reviewer


def safe_next(target: str | None) -> str:
    """A local path to return to after sign-in; anything else (another site) goes home."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/queue"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/queue"
    return target


def flash(request: Request, kind: Literal["ok", "warning", "error"], text: str) -> None:
    """A message shown once on the next page (kept in the signed session cookie)."""
    messages = list(request.session.get(_FLASH) or [])
    messages.append({"kind": kind, "text": text[:500]})
    request.session[_FLASH] = messages[-5:]


def pop_flashes(request: Request) -> list[dict[str, str]]:
    messages = request.session.pop(_FLASH, None) or []
    return [m for m in messages if isinstance(m, dict)]
