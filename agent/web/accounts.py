"""Reviewer accounts: names and argon2id password hashes in one operator-managed JSON file.

The file (``$MEDIAVAULT_HOME/reviewers.json`` by default) holds no plain password. It is
written owner-only and replaced atomically, and re-read whenever it changes, so removing a
reviewer takes effect on their next request without restarting the console.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

#: Reviewer names end up in the audit log and the case store: keep them plain.
REVIEWER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024

_hasher = PasswordHasher()
# Verifying against this when the name is unknown keeps both answers equally slow, so the
# timing of a failed sign-in does not tell which reviewer names exist.
_DUMMY_HASH = _hasher.hash("no such reviewer, no such password")


class AccountError(ValueError):
    """A reviewer name, password or accounts file the console cannot accept."""


def check_reviewer_name(name: str) -> str:
    """The name if it is a valid reviewer name; :class:`AccountError` otherwise."""
    if not REVIEWER_NAME.fullmatch(name):
        raise AccountError(
            f"reviewer name {name[:80]!r} is not valid: use 1-64 letters, digits or . _ @ -, "
            "starting with a letter or digit"
        )
    return name


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"the password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise AccountError(f"the password is longer than {MAX_PASSWORD_CHARS} characters")


def _read(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as problem:
        raise AccountError(f"cannot read the reviewer accounts in {path}: {problem}") from None
    reviewers = data.get("reviewers") if isinstance(data, dict) else None
    if not isinstance(reviewers, dict):
        raise AccountError(f"{path} is not a reviewer accounts file (no 'reviewers' object)")
    accounts: dict[str, dict[str, str]] = {}
    for name, entry in reviewers.items():
        if (
            isinstance(name, str)
            and REVIEWER_NAME.fullmatch(name)
            and isinstance(entry, dict)
            and isinstance(entry.get("password_hash"), str)
        ):
            accounts[name] = {key: str(value) for key, value in entry.items()}
    return accounts


def _write(path: Path, accounts: dict[str, dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"reviewers": accounts}, indent=2, sort_keys=True) + "\n"
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".reviewers-")
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def add_reviewer(path: Path, name: str, password: str) -> bool:
    """Create the reviewer, or set a new password; True when the account is new."""
    check_reviewer_name(name)
    _check_password(password)
    accounts = _read(path)
    created = name not in accounts
    entry = dict(accounts.get(name, {}))
    entry["password_hash"] = _hasher.hash(password)
    entry.setdefault("created_at", datetime.now(UTC).isoformat(timespec="seconds"))
    accounts[name] = entry
    _write(path, accounts)
    return created


def remove_reviewer(path: Path, name: str) -> bool:
    """Delete the reviewer's account; False when there was none."""
    accounts = _read(path)
    if accounts.pop(name, None) is None:
        return False
    _write(path, accounts)
    return True


def reviewer_names(path: Path) -> list[str]:
    """The reviewers who can sign in, sorted."""
    return sorted(_read(path))


def reviewer_list(path: Path) -> list[dict[str, str | None]]:
    """The reviewers who can sign in, sorted, with when each account was created (no hashes)."""
    accounts = _read(path)
    return [{"name": name, "created_at": accounts[name].get("created_at")}
            for name in sorted(accounts)]


@dataclass
class _Snapshot:
    stamp: tuple[int, int] | None
    accounts: dict[str, dict[str, str]]


class ReviewerAccounts:
    """The accounts file as the running console sees it (re-read when the file changes)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._snapshot = _Snapshot(stamp=None, accounts={})
        self._loaded = False

    def _accounts(self) -> dict[str, dict[str, str]]:
        try:
            stat = self.path.stat()
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if not self._loaded or stamp != self._snapshot.stamp:
                self._snapshot = _Snapshot(stamp=stamp, accounts=_read(self.path))
                self._loaded = True
            return self._snapshot.accounts

    def names(self) -> list[str]:
        """Reviewer names currently allowed to sign in."""
        return sorted(self._accounts())

    def exists(self, name: str) -> bool:
        """Whether ``name`` still has an account."""
        return name in self._accounts()

    def stamp(self, name: str) -> str | None:
        """A fingerprint of the reviewer's current password, None when the account is gone:
        sessions opened under another password have ended."""
        from mediavault.agent.web.sessions import credential_stamp

        entry = self._accounts().get(name)
        return credential_stamp(entry["password_hash"]) if entry else None

    def verify(self, name: str, password: str) -> bool:
        """Whether the password is right for this reviewer (slow on purpose: argon2id)."""
        entry = self._accounts().get(name)
        stored = entry["password_hash"] if entry else _DUMMY_HASH
        try:
            ok = _hasher.verify(stored, password[:MAX_PASSWORD_CHARS])
        except (VerificationError, InvalidHashError):
            return False
        if entry and _hasher.check_needs_rehash(stored):
            # Parameters were raised since this hash was made: upgrade it while we know the
            # password (a password from before a stricter rule keeps its old hash).
            with contextlib.suppress(AccountError, OSError):
                add_reviewer(self.path, name, password)
        return ok and entry is not None
