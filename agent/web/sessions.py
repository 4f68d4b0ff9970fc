"""Live console sessions, recorded on the server so that they can be ended there.

The session cookie is signed, so nobody can forge one, but a copied cookie would stay valid for
its whole lifetime on its own. Each sign-in therefore starts a session with a random id that
the cookie carries and this registry records, together with a fingerprint of the reviewer's
password hash at sign-in. A session counts only while its id is recorded, unexpired, and the
reviewer's password is the one it was opened with: signing out forgets the id, and a new
password (``mediavault reviewers add NAME`` again) ends every session opened before it.

The registry is a small owner-only JSON file next to the other state (the console runs as
one process per state directory), so sessions survive a restart of the console. It stores a
hash of each session id, never the id itself: reading the file gives no usable cookie.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from mediavault.agent.stores.state_files import private_dir

#: Live sessions kept at most; the oldest are ended first beyond it.
MAX_SESSIONS = 10_000


def credential_stamp(password_hash: str) -> str:
    """A fingerprint of a stored password hash: it changes whenever the password does."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:32]


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True)
class LiveSession:
    reviewer: str
    stamp: str
    expires: datetime


class SessionRegistry:
    """The console's live sessions, persisted to ``path``."""

    def __init__(self, path: Path, *, clock: Callable[[], datetime], max_age: timedelta) -> None:
        self.path = Path(path)
        self._clock = clock
        self._max_age = max_age
        self._lock = threading.Lock()
        self._sessions: dict[str, LiveSession] | None = None

    def start(self, reviewer: str, stamp: str) -> str:
        """Record a new session for ``reviewer``; returns its id (for the cookie only)."""
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            sessions = self._live()
            sessions[_key(session_id)] = LiveSession(reviewer, stamp, self._clock() + self._max_age)
            while len(sessions) > MAX_SESSIONS:
                del sessions[min(sessions, key=lambda k: sessions[k].expires)]
            self._save(sessions)
        return session_id

    def check(self, session_id: object, reviewer: str, stamp: str | None) -> bool:
        """Whether ``session_id`` is a live session of ``reviewer`` with the current password
        (``stamp`` None: the account is gone). A session that fails is ended."""
        if not isinstance(session_id, str) or not session_id:
            return False
        key = _key(session_id)
        with self._lock:
            sessions = self._live()
            live = sessions.get(key)
            if live is not None and live.reviewer == reviewer and live.stamp == stamp:
                return True
            if live is not None:
                del sessions[key]
                self._save(sessions)
            return False

    def end(self, session_id: object) -> None:
        """Forget one session (sign-out)."""
        if not isinstance(session_id, str):
            return
        with self._lock:
            sessions = self._live()
            if sessions.pop(_key(session_id), None) is not None:
                self._save(sessions)

    def count(self, reviewer: str) -> int:
        """Live sessions of ``reviewer`` (for tests and operators)."""
        with self._lock:
            return sum(1 for live in self._live().values() if live.reviewer == reviewer)

    # -- storage (called with the lock held) ------------------------------------------------

    def _live(self) -> dict[str, LiveSession]:
        if self._sessions is None:
            self._sessions = self._load()
        now = self._clock()
        for key in [k for k, live in self._sessions.items() if live.expires <= now]:
            del self._sessions[key]
        return self._sessions

    def _load(self) -> dict[str, LiveSession]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}  # unreadable: every session ends, reviewers sign in again (fail closed)
        sessions: dict[str, LiveSession] = {}
        for key, entry in (data.get("sessions") or {}).items() if isinstance(data, dict) else ():
            try:
                sessions[str(key)] = LiveSession(str(entry["reviewer"]), str(entry["stamp"]),
                                                 datetime.fromisoformat(entry["expires"]))
            except (KeyError, TypeError, ValueError):
                continue
        return sessions

    def _save(self, sessions: dict[str, LiveSession]) -> None:
        private_dir(self.path.parent)
        text = json.dumps({"sessions": {
            key: {"reviewer": live.reviewer, "stamp": live.stamp,
                  "expires": live.expires.isoformat()}
            for key, live in sessions.items()}}, sort_keys=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".sessions-")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
