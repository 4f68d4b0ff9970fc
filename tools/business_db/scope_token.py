"""Signed scope tokens: how a Postgres session proves which customer it may read.

Row-level security on the account tables shows the rows of the customer named by a token in the
transaction setting ``mediavault.scope``. Anyone holding the agent role's credentials can set
that setting, so the setting alone proves nothing: the token is an HMAC-SHA256, under a key
only the application and ``db init`` know (``MEDIAVAULT_SCOPE_KEY``), of

    ``v1:<customer id>:<backend pid>:<backend start, microseconds>:<expiry, epoch seconds>``

The database checks it in a SECURITY DEFINER function that alone reads the stored key (as the
HMAC's inner and outer padded keys, so plain ``sha256()`` suffices and no extension is needed).
A token is bound to one server backend, identified by its process id and start time, so a token
seen in ``pg_stat_activity`` is worthless on any other connection, even one that later gets the
same process id; and it expires minutes after it was signed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass

#: The environment variable holding the scope key, as hexadecimal.
SCOPE_KEY_ENV = "MEDIAVAULT_SCOPE_KEY"
#: The transaction setting that carries the token.
SCOPE_SETTING = "mediavault.scope"
_BLOCK = 64  # SHA-256's block size: the HMAC pads are this long
MIN_KEY_BYTES = 16


class ScopeKeyError(ValueError):
    """The scope key is missing or malformed; the message says how to set it."""


def new_scope_key() -> str:
    """A fresh random key, as the hexadecimal text ``MEDIAVAULT_SCOPE_KEY`` takes."""
    return secrets.token_hex(32)


def parse_scope_key(text: str | None) -> bytes:
    """The key bytes from hexadecimal text (16 to 64 bytes)."""
    cleaned = (text or "").strip()
    if not cleaned:
        raise ScopeKeyError(
            f"{SCOPE_KEY_ENV} is not set: the Postgres business database binds each query to "
            "the verified customer with this key. Use the value `mediavault db init --postgres` "
            "printed (or set the same value before running db init)"
        )
    try:
        key = bytes.fromhex(cleaned)
    except ValueError:
        raise ScopeKeyError(f"{SCOPE_KEY_ENV} must be hexadecimal") from None
    if not MIN_KEY_BYTES <= len(key) <= _BLOCK:
        raise ScopeKeyError(
            f"{SCOPE_KEY_ENV} must hold {MIN_KEY_BYTES} to {_BLOCK} bytes "
            f"({2 * MIN_KEY_BYTES} to {2 * _BLOCK} hexadecimal digits)"
        )
    return key


def scope_key_from_environment() -> bytes:
    """The key in ``MEDIAVAULT_SCOPE_KEY``; :class:`ScopeKeyError` when unset or malformed."""
    return parse_scope_key(os.environ.get(SCOPE_KEY_ENV))


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC's inner and outer padded keys: what the database stores instead of the key."""
    padded = key.ljust(_BLOCK, b"\x00")
    return bytes(b ^ 0x36 for b in padded), bytes(b ^ 0x5C for b in padded)


@dataclass(frozen=True, slots=True)
class Backend:
    """The server process a connection talks to, as the database identifies it."""

    pid: int
    started_us: int


#: Answers ``(pid, started_us, server time in epoch seconds)`` for the connection it runs on.
IDENTIFY_BACKEND_SQL = (
    "SELECT a.pid, (extract(epoch FROM a.backend_start) * 1000000)::bigint, "
    "extract(epoch FROM now())::bigint "
    "FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) AS a"
)


def sign_scope(key: bytes, customer_id: int, backend: Backend, expires: int) -> str:
    """The token that lets ``backend`` read ``customer_id``'s rows until ``expires``."""
    if isinstance(customer_id, bool) or not isinstance(customer_id, int) or customer_id < 1:
        raise ValueError(f"customer id {customer_id!r} is not a positive integer")
    message = f"v1:{customer_id}:{backend.pid}:{backend.started_us}:{int(expires)}"
    digest = hmac.new(key, message.encode("ascii"), hashlib.sha256).hexdigest()
    return f"{message}:{digest}"
