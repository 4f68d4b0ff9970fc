"""The mail ledger: which mailbox messages were triaged, and where every reply's sending stands.

One SQLite file in the home (``mail_ledger.sqlite``, mode 0600), written with a commit per state
change so that a crash at any point leaves a state the next run can act on:

- ``imap_messages``: one row per (mailbox, UIDVALIDITY, UID). ``triaged`` once the email's
  outcome is recorded, ``marked`` once the server flagged or moved it. A message is only ever
  marked after it is triaged, never before.
- ``sends``: one row per reply, keyed by its Message-ID, moving
  ``queued -> sending -> data -> sent``, or to ``rejected`` (the server refused it: never
  retried blindly), ``deferred`` (a temporary failure: retried later) or ``unknown`` (a crash
  while the server was receiving the message: a person decides, see :mod:`smtp_dispatch`).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

#: The ledger's file name in a home.
LEDGER_FILE = "mail_ledger.sqlite"

SendState = Literal["queued", "sending", "data", "sent", "rejected", "deferred", "unknown"]
SEND_STATES: tuple[SendState, ...] = (
    "queued", "sending", "data", "sent", "rejected", "deferred", "unknown")
MessageState = Literal["triaged", "problem", "marked"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS imap_messages (
    mailbox TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    email_id TEXT,
    state TEXT NOT NULL,
    problem TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (mailbox, uidvalidity, uid)
);
CREATE TABLE IF NOT EXISTS sends (
    message_id TEXT PRIMARY KEY,
    email_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    response TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sends_by_email ON sends (email_id);
"""


@dataclass(frozen=True)
class SendRecord:
    """Where one reply's sending stands."""

    message_id: str
    email_id: str
    recipient: str
    state: SendState
    attempts: int
    response: str | None
    updated_at: datetime


class MailLedger:
    """The ledger file; safe to share between threads of one process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        if fresh:
            os.chmod(path, 0o600)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # a state change survives a power cut
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- inbound ---------------------------------------------------------------------------

    def message_state(self, mailbox: str, uidvalidity: int, uid: int) -> MessageState | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT state FROM imap_messages WHERE mailbox=? AND uidvalidity=? AND uid=?",
                (mailbox, uidvalidity, uid)).fetchone()
        return None if row is None else row[0]

    def record_message(self, mailbox: str, uidvalidity: int, uid: int, state: MessageState, *,
                       email_id: str | None = None, problem: str | None = None) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO imap_messages (mailbox, uidvalidity, uid, email_id, state, problem,"
                " updated_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT (mailbox, uidvalidity, uid) DO "
                "UPDATE SET state=excluded.state, email_id=coalesce(excluded.email_id, email_id),"
                " problem=coalesce(excluded.problem, problem), updated_at=excluded.updated_at",
                (mailbox, uidvalidity, uid, email_id, state, problem, _now()))

    def message_counts(self, mailbox: str) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT state, count(*) FROM imap_messages WHERE mailbox=? GROUP BY state",
                (mailbox,)).fetchall()
        return {state: count for state, count in rows}

    # -- outbound --------------------------------------------------------------------------

    def queue(self, message_id: str, email_id: str, recipient: str) -> SendRecord:
        """Queue a reply once; a reply already in the ledger keeps its state."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO sends (message_id, email_id, recipient, state, updated_at) "
                "VALUES (?,?,?,?,?) ON CONFLICT (message_id) DO NOTHING",
                (message_id, email_id, recipient, "queued", _now()))
        record = self.send(message_id)
        assert record is not None
        return record

    def move(self, message_id: str, state: SendState, *, response: str | None = None,
             attempt: bool = False) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE sends SET state=?, response=coalesce(?, response), "
                "attempts=attempts + ?, updated_at=? WHERE message_id=?",
                (state, response, 1 if attempt else 0, _now(), message_id))

    def send(self, message_id: str) -> SendRecord | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT message_id, email_id, recipient, state, attempts, response, updated_at "
                "FROM sends WHERE message_id=?", (message_id,)).fetchone()
        return None if row is None else _send_record(row)

    def sends(self, *states: SendState) -> list[SendRecord]:
        query = ("SELECT message_id, email_id, recipient, state, attempts, response, updated_at "
                 "FROM sends")
        args: tuple[str, ...] = ()
        if states:
            query += f" WHERE state IN ({','.join('?' * len(states))})"
            args = states
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY updated_at, message_id", args).fetchall()
        return [_send_record(row) for row in rows]

    def sends_for(self, email_id: str) -> list[SendRecord]:
        return [record for record in self.sends() if record.email_id == email_id]


def _send_record(row: tuple[object, ...]) -> SendRecord:
    message_id, email_id, recipient, state, attempts, response, updated = row
    return SendRecord(str(message_id), str(email_id), str(recipient), state,  # type: ignore[arg-type]
                      int(attempts), None if response is None else str(response),  # type: ignore[call-overload]
                      datetime.fromisoformat(str(updated)))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
