"""Signed scope tokens, offline: the key's checks and the signature the database recomputes."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from mediavault.tools.business_db.scope_token import (
    SCOPE_KEY_ENV,
    Backend,
    ScopeKeyError,
    hmac_pads,
    new_scope_key,
    parse_scope_key,
    scope_key_from_environment,
    sign_scope,
)

BACKEND = Backend(pid=4242, started_us=1_764_000_000_123_456)


def test_the_stored_pads_give_the_same_signature_as_hmac() -> None:
    """The database has only sha256(): sha256(opad || sha256(ipad || m)) must be HMAC."""
    for key in (bytes(range(16)), bytes.fromhex(new_scope_key()), b"\xff" * 64):
        token = sign_scope(key, 7, BACKEND, 1_900_000_000)
        message, _, digest = token.rpartition(":")
        inner, outer = hmac_pads(key)
        recomputed = hashlib.sha256(
            outer + hashlib.sha256(inner + message.encode()).digest()
        ).hexdigest()
        assert digest == recomputed
        assert digest == hmac.new(key, message.encode(), hashlib.sha256).hexdigest()
        assert message == f"v1:7:{BACKEND.pid}:{BACKEND.started_us}:1900000000"


def test_a_token_names_one_customer_one_backend_and_one_expiry() -> None:
    key = bytes.fromhex(new_scope_key())
    base = sign_scope(key, 7, BACKEND, 1_900_000_000)
    others = {
        sign_scope(key, 8, BACKEND, 1_900_000_000),
        sign_scope(key, 7, Backend(BACKEND.pid + 1, BACKEND.started_us), 1_900_000_000),
        sign_scope(key, 7, Backend(BACKEND.pid, BACKEND.started_us + 1), 1_900_000_000),
        sign_scope(key, 7, BACKEND, 1_900_000_001),
        sign_scope(bytes.fromhex(new_scope_key()), 7, BACKEND, 1_900_000_000),
    }
    signatures = {token.rpartition(":")[2] for token in others}
    assert base.rpartition(":")[2] not in signatures and len(signatures) == 5


@pytest.mark.parametrize("customer", [0, -3, True, "7", 7.0])
def test_only_a_positive_integer_customer_is_signed(customer: object) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        sign_scope(bytes(16), customer, BACKEND, 1_900_000_000)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, f"{SCOPE_KEY_ENV} is not set"),
        ("  ", f"{SCOPE_KEY_ENV} is not set"),
        ("not hex at all", "hexadecimal"),
        ("00" * 15, "16 to 64 bytes"),
        ("00" * 65, "16 to 64 bytes"),
    ],
)
def test_a_missing_or_malformed_key_is_refused_with_how_to_fix_it(
    text: str | None, message: str
) -> None:
    with pytest.raises(ScopeKeyError, match=message):
        parse_scope_key(text)


def test_the_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_scope_key()
    monkeypatch.setenv(SCOPE_KEY_ENV, f" {key.upper()}\n")
    assert scope_key_from_environment() == bytes.fromhex(key)
    monkeypatch.delenv(SCOPE_KEY_ENV)
    with pytest.raises(ScopeKeyError, match="db init --postgres"):
        scope_key_from_environment()
