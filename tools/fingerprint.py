"""Fingerprints of values: what the audit log keeps instead of the values themselves."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

_PREFIX = "sha256:"


def _json_fallback(value: object) -> object:
    # Values that commonly appear in tool arguments but are not JSON types.
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Path | uuid.UUID) or hasattr(value, "isoformat"):
        return str(value)
    raise TypeError(f"cannot digest a value of type {type(value).__name__}")


def digest(value: object) -> str:
    """A short fingerprint of ``value``: ``"sha256:"`` + 16 hex digits of its canonical JSON.

    Equal values (dicts in any key order) give equal digests, so an auditor can check that
    the arguments they hold are the ones logged, without the log storing them.
    """
    canonical = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_fallback
    )
    return _PREFIX + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
