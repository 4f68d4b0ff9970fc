"""The case store: the operations database of cases, drafts, tickets, reviews and sent replies.

One SQLite file (``Context.cases_path``), separate from the checkpoint file, written through
sqlite-utils. Every email id has at most one case; everything else hangs off that case.

Several processes and threads may write at once: the file runs in WAL mode, every connection
waits on a busy timeout, writes take the write lock up front (``BEGIN IMMEDIATE``) and a short
retry covers the rest, so "database is locked" never reaches a user. A connection lives for one
operation only, so no sqlite3 object ever crosses a thread.

Every write is idempotent on its natural key, so resumes and re-runs never duplicate rows:

========================  ==========================================================
``record_email``          insert or ignore on email_id: the email as first received
``open_case``             insert or ignore on email_id: an existing case is untouched
``set_outcome``           overwrites the case's outcome fields
``set_status``            overwrites status and status_reason
``record_draft``          appends a version, unless the latest version has the same
                          source and text (then returns that version)
``record_ticket``         upsert on email_id: the latest ticket wins, created_at stays
``record_review``         insert or ignore on review_id, the caller's idempotency key
``record_outbox``         insert or ignore on email_id: the first message written stays
========================  ==========================================================

``decided_at`` is the time the case first reached its current decided status; setting the
same status again keeps it, so a re-run does not move the timestamp.
"""

from __future__ import annotations

import difflib
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlite_utils import Database

from mediavault.graph.inbound_email import InboundEmail
from mediavault.policies import queues, reason_codes

#: The outcomes a case can end in. A case without one is ``open``.
CASE_STATUSES: tuple[str, ...] = ("awaiting_review", "approved", "rejected", "escalated", "failed")
OPEN_STATUS = "open"
ROUTES: tuple[str, ...] = ("draft", "escalate")
DRAFT_SOURCES: tuple[str, ...] = ("model", "reviewer")
REVIEW_DECISIONS: tuple[str, ...] = ("approve", "edit", "reject", "escalate")
REVIEW_REASON_CATEGORIES: tuple[str, ...] = ("tone", "factual", "policy", "other")
#: Statuses that end the case (``awaiting_review`` still waits for a human).
DECIDED_STATUSES: frozenset[str] = frozenset({"approved", "rejected", "escalated", "failed"})

DEFAULT_BUSY_TIMEOUT_SECONDS = 10.0
#: Retries after the busy timeout, for the rare lock conflicts SQLite does not wait on
#: (for example a WAL snapshot that went stale).
LOCK_RETRIES = 5

Clock = Callable[[], datetime]
_T = TypeVar("_T")


class CaseNotFoundError(LookupError):
    """The email id has no case yet: ``open_case`` must come first."""


class CaseStoreBusyError(RuntimeError):
    """The case database stayed locked by other writers through every retry."""


def utc_now() -> datetime:
    """The current time, in UTC: the default clock of the store."""
    return datetime.now(UTC)


def to_utc_text(value: datetime) -> str:
    """ISO 8601 in UTC with fixed width, so text order is time order in SQL.

    A naive datetime is taken to be UTC already.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _from_text(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def edit_size(old: str, new: str) -> int:
    """How many characters a reviewer changed between two draft texts (difflib opcodes)."""
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    changed = 0
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            # A replacement counts the longer side: "$5" -> "$50" changes one character.
            changed += max(i2 - i1, j2 - j1)
    return changed


def _check(value: str | None, allowed: Iterable[str], what: str, *, optional: bool) -> None:
    allowed = tuple(allowed)
    if value is None and optional:
        return
    if value not in allowed:
        choices = ", ".join(allowed) + (" or None" if optional else "")
        raise ValueError(f"{what} {value!r} is not valid; use one of: {choices}")


def _json_list(values: Iterable[object]) -> str:
    return json.dumps([str(value) for value in values])


def _strings(text: str | None) -> tuple[str, ...]:
    return tuple(json.loads(text)) if text else ()


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class DraftRecord(_Record):
    """One version of a reply draft, as written by the model or edited by a reviewer."""

    email_id: str
    version: int
    source: str
    text: str
    valid: bool
    validation_problems: tuple[str, ...]
    policy_refs: tuple[str, ...]
    created_at: datetime
    #: Where each fact of the draft came from: ``{fact, kind, source, reference}`` (a query
    #: row, a policy section, the customer's message); empty for reviewers' edits.
    provenance: tuple[dict[str, str], ...] = ()


class TicketRecord(_Record):
    """The escalation ticket filed for a case (the full ticket is kept in ``ticket``)."""

    email_id: str
    ticket_id: str
    queue: str | None
    priority: str | None
    reason_code: str | None
    ticket: dict[str, Any]
    created_at: datetime


class ReviewRecord(_Record):
    """One human decision on a case's draft."""

    review_id: str
    email_id: str
    decision: str
    reviewer: str
    reason_category: str | None
    message: str | None
    edit_size: int | None
    created_at: datetime


class OutboxRecord(_Record):
    """The reply written to the outbox for a case."""

    email_id: str
    path: str
    message_id: str
    created_at: datetime


class CaseRecord(_Record):
    """A case with everything recorded about it: email, drafts, ticket, reviews, reply."""

    email_id: str
    thread_id: str
    sender: str
    customer_id: int | None
    received_at: datetime
    route: str | None
    reason_code: str | None
    risk_flags: tuple[str, ...]
    queue: str | None
    status: str
    status_reason: str | None
    created_at: datetime
    updated_at: datetime
    decided_at: datetime | None
    email: InboundEmail | None
    latest_draft: DraftRecord | None
    drafts: tuple[DraftRecord, ...]
    ticket: TicketRecord | None
    reviews: tuple[ReviewRecord, ...]
    outbox: OutboxRecord | None

    @property
    def has_outcome(self) -> bool:
        return self.status in CASE_STATUSES


# --- migrations -------------------------------------------------------------------------------


def _m001_initial_schema(db: Database) -> None:
    db.table("emails").create(
        {
            "email_id": str,
            "received_at": str,
            "sender": str,
            "sender_name": str,
            "subject": str,
            "body": str,
            "in_reply_to": str,
            "message_id": str,
            "sender_verified": int,
            "input_flags": str,
            "recorded_at": str,
        },
        pk="email_id",
        not_null=["received_at", "sender", "recorded_at"],
    )
    db.table("cases").create(
        {
            "email_id": str,
            "thread_id": str,
            "sender": str,
            "customer_id": int,
            "received_at": str,
            "route": str,
            "reason_code": str,
            "risk_flags": str,
            "queue": str,
            "status": str,
            "status_reason": str,
            "created_at": str,
            "updated_at": str,
            "decided_at": str,
        },
        pk="email_id",
        not_null=["thread_id", "sender", "received_at", "status", "created_at", "updated_at"],
        defaults={"status": OPEN_STATUS, "risk_flags": "[]"},
    )
    db.table("cases").create_index(["status", "received_at"])
    db.table("cases").create_index(["received_at"])
    db.table("cases").create_index(["sender"])
    case_key = [("email_id", "cases", "email_id")]
    db.table("drafts").create(
        {
            "email_id": str,
            "version": int,
            "source": str,
            "text": str,
            "valid": int,
            "validation_problems": str,
            "policy_refs": str,
            "created_at": str,
        },
        pk=("email_id", "version"),
        not_null=["source", "text", "valid", "created_at"],
        foreign_keys=case_key,
    )
    db.table("tickets").create(
        {
            "email_id": str,
            "ticket_id": str,
            "queue": str,
            "priority": str,
            "reason_code": str,
            "ticket": str,
            "created_at": str,
        },
        pk="email_id",
        not_null=["ticket_id", "ticket", "created_at"],
        foreign_keys=case_key,
    )
    db.table("reviews").create(
        {
            "review_id": str,
            "email_id": str,
            "decision": str,
            "reviewer": str,
            "reason_category": str,
            "message": str,
            "edit_size": int,
            "created_at": str,
        },
        pk="review_id",
        not_null=["email_id", "decision", "reviewer", "created_at"],
        foreign_keys=case_key,
    )
    db.table("reviews").create_index(["email_id", "created_at"])
    db.table("outbox").create(
        {"email_id": str, "path": str, "message_id": str, "created_at": str},
        pk="email_id",
        not_null=["path", "message_id", "created_at"],
        foreign_keys=case_key,
    )


#: Schema migrations in order; version N is ``MIGRATIONS[N - 1]``. Append, never edit.
def _m002_draft_provenance(db: Database) -> None:
    db.execute("ALTER TABLE drafts ADD COLUMN provenance TEXT")


MIGRATIONS: list[Callable[[Database], None]] = [_m001_initial_schema, _m002_draft_provenance]


# --- the store --------------------------------------------------------------------------------


def _is_lock_error(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _case_filters(
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int | None,
    *,
    placeholder: str,
) -> tuple[str, list[object]]:
    """The WHERE clause and parameters of a case listing (shared by the SQLite and Postgres
    stores, which differ only in their parameter placeholder)."""
    _check(status, (*CASE_STATUSES, OPEN_STATUS), "case status", optional=True)
    if limit is not None and limit < 0:
        raise ValueError(f"limit {limit} is negative")
    clauses: list[str] = []
    params: list[object] = []
    if status is not None:
        clauses.append(f"status = {placeholder}")
        params.append(status)
    if since is not None:
        clauses.append(f"received_at >= {placeholder}")
        params.append(to_utc_text(since))
    if until is not None:
        clauses.append(f"received_at < {placeholder}")
        params.append(to_utc_text(until))
    return " AND ".join(clauses) or "1 = 1", params


class CaseStore:
    """The operations database at ``path``; the file and its folders appear on first use."""

    def __init__(
        self,
        path: Path,
        *,
        now: Clock = utc_now,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
    ) -> None:
        self.path = Path(path)
        self._now = now
        self._busy_timeout = busy_timeout
        self._schema_lock = threading.Lock()
        self._schema_ready = False
        # One connection per thread, kept open: opening one per operation (and the WAL
        # checkpoint on every close) cost more than the writes themselves.
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._generation = 0

    def __repr__(self) -> str:
        return f"CaseStore({str(self.path)!r})"

    # connection plumbing

    def _database(self) -> Database:
        """This thread's connection, opened again after a fork, a close() or when the file
        was replaced (so nothing is ever written to a deleted file)."""
        local = self._local
        try:
            inode: int | None = self.path.stat().st_ino
        except FileNotFoundError:
            inode = None
        db: Database | None = getattr(local, "db", None)
        if db is not None and (local.pid, local.generation, local.inode) == (
            os.getpid(), self._generation, inode
        ):
            return db
        if inode is None or (db is not None and local.inode != inode):
            self._schema_ready = False  # a new or replaced file needs its tables again
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, check_same_thread=False,
                               isolation_level=None)
        db = Database(conn, execute_plugins=False)
        db.execute("PRAGMA foreign_keys = ON")
        with self._connections_lock:
            self._connections.append(conn)
        local.db, local.pid, local.generation = db, os.getpid(), self._generation
        local.inode = self.path.stat().st_ino
        local.depth = 0
        return db

    def close(self) -> None:
        """Close the store's connections; call it when no thread is using the store (a later
        operation opens a new connection)."""
        with self._connections_lock:
            connections, self._connections = self._connections, []
            self._generation += 1
        for conn in connections:
            conn.close()

    def _retrying(self, operation: Callable[[], _T]) -> _T:
        for attempt in range(LOCK_RETRIES + 1):
            try:
                return operation()
            except sqlite3.OperationalError as exc:
                if not _is_lock_error(exc):
                    raise
                if attempt == LOCK_RETRIES:
                    raise CaseStoreBusyError(
                        f"the case database {self.path} stayed busy through "
                        f"{LOCK_RETRIES} retries; other writers hold it, try again shortly"
                    ) from exc
                # Jitter keeps two retrying writers from colliding again in lock step.
                time.sleep(0.02 * (2**attempt) * (1 + random.random()))
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Make every write inside the block one transaction: all of them or none.

        A node that records a draft and the case's new status does both at once, with one
        commit. Blocks nest; only the outermost one commits.
        """
        with self._begin(write=True):
            yield

    @contextmanager
    def _begin(self, *, write: bool) -> Iterator[Database]:
        db = self._database()
        self._ensure_schema()  # after _database(), which notices a new or replaced file
        local = self._local
        if local.depth:  # inside atomic(): the outer block owns the transaction
            local.depth += 1
            try:
                yield db
            finally:
                local.depth -= 1
            return
        # IMMEDIATE takes the write lock first, so a read-then-write (next draft version)
        # cannot race, and waiting happens in the busy handler. Once it is held, nothing in
        # the transaction waits for a lock again, so only the BEGIN is retried.
        self._retrying(lambda: db.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN"))
        local.depth = 1
        try:
            yield db
            db.conn.execute("COMMIT")
        except BaseException:
            db.conn.rollback()
            raise
        finally:
            local.depth = 0

    def _transaction(self, work: Callable[[Database], _T], *, write: bool) -> _T:
        with self._begin(write=write) as db:
            return work(db)

    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._schema_lock:
            if not self._schema_ready:
                self._retrying(self._apply_migrations)
                self._schema_ready = True

    def _apply_migrations(self) -> list[int]:
        db = self._database()
        db.enable_wal()
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "CREATE TABLE IF NOT EXISTS migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            applied = {row[0] for row in db.execute("SELECT version FROM migrations")}
            newly_applied: list[int] = []
            for version, migration in enumerate(MIGRATIONS, start=1):
                if version in applied:
                    continue
                migration(db)
                db.table("migrations").insert(
                    {
                        "version": version,
                        "name": migration.__name__.lstrip("_"),
                        "applied_at": to_utc_text(self._now()),
                    }
                )
                newly_applied.append(version)
            db.conn.execute("COMMIT")
        except BaseException:
            db.rollback()
            raise
        return newly_applied

    def migrate(self) -> list[int]:
        """Bring the schema up to date; returns the versions applied now (empty if none)."""
        with self._schema_lock:
            applied = self._retrying(self._apply_migrations)
            self._schema_ready = True
            return applied

    def _require_case(self, db: Database, email_id: str) -> dict[str, Any]:
        for row in db.query("SELECT * FROM cases WHERE email_id = ?", [email_id]):
            return row
        raise CaseNotFoundError(f"no case for email {email_id!r}; open_case must come first")

    # writes

    def record_email(self, email: InboundEmail) -> None:
        """Keep the email as received (a second call for the same email id changes nothing)."""
        row = {
            "email_id": email.email_id,
            "received_at": to_utc_text(email.received_at),
            "sender": email.sender,
            "sender_name": email.sender_name,
            "subject": email.subject,
            "body": email.body,
            "in_reply_to": email.in_reply_to,
            "message_id": email.message_id,
            "sender_verified": int(email.sender_verified),
            "input_flags": _json_list(email.input_flags),
            "recorded_at": to_utc_text(self._now()),
        }
        self._transaction(lambda db: db.table("emails").insert(row, ignore=True), write=True)

    def open_case(
        self,
        email_id: str,
        *,
        thread_id: str,
        sender: str,
        customer_id: int | None,
        received_at: datetime,
    ) -> None:
        """Create the case for an email, status ``open``; an existing case is left as it is."""
        now = to_utc_text(self._now())
        row = {
            "email_id": email_id,
            "thread_id": thread_id,
            "sender": sender.strip().lower(),
            "customer_id": customer_id,
            "received_at": to_utc_text(received_at),
            "status": OPEN_STATUS,
            "risk_flags": "[]",
            "created_at": now,
            "updated_at": now,
        }
        self._transaction(lambda db: db.table("cases").insert(row, ignore=True), write=True)

    def _update_status(
        self, db: Database, email_id: str, status: str, changes: dict[str, Any]
    ) -> None:
        case = self._require_case(db, email_id)
        now = to_utc_text(self._now())
        if status not in DECIDED_STATUSES:
            decided_at = None
        elif case["status"] == status and case["decided_at"]:
            decided_at = case["decided_at"]
        else:
            decided_at = now
        db.table("cases").update(
            email_id, {**changes, "status": status, "updated_at": now, "decided_at": decided_at}
        )

    def set_outcome(
        self,
        email_id: str,
        *,
        route: str | None,
        reason_code: str | None,
        risk_flags: Iterable[str],
        status: str,
        queue: str | None = None,
        status_reason: str | None = None,
    ) -> None:
        """Record how the case ended (or that it now waits for review); overwrites."""
        _check(route, ROUTES, "route", optional=True)
        _check(reason_code, reason_codes(), "reason code", optional=True)
        _check(status, CASE_STATUSES, "case status", optional=False)
        _check(queue, queues(), "queue", optional=True)
        changes = {
            "route": route,
            "reason_code": reason_code,
            "risk_flags": _json_list(risk_flags),
            "queue": queue,
            "status_reason": status_reason,
        }
        self._transaction(lambda db: self._update_status(db, email_id, status, changes), write=True)

    def set_status(self, email_id: str, status: str, *, reason: str | None = None) -> None:
        """Move the case to ``status`` (one of :data:`CASE_STATUSES`) with an optional reason."""
        _check(status, CASE_STATUSES, "case status", optional=False)
        self._transaction(
            lambda db: self._update_status(db, email_id, status, {"status_reason": reason}),
            write=True,
        )

    def record_draft(
        self,
        email_id: str,
        *,
        text: str,
        source: str,
        valid: bool,
        problems: Sequence[str],
        policy_refs: Sequence[str],
        provenance: Sequence[Mapping[str, str]] = (),
    ) -> int:
        """Store a draft as the next version and return its version number.

        Recording the text that is already the latest version from the same source returns
        that version instead of adding one, so a resumed run does not duplicate drafts.
        """
        _check(source, DRAFT_SOURCES, "draft source", optional=False)

        def write(db: Database) -> int:
            self._require_case(db, email_id)
            latest = db.execute(
                "SELECT version, source, text FROM drafts WHERE email_id = ? "
                "ORDER BY version DESC LIMIT 1",
                [email_id],
            ).fetchone()
            if latest is not None and latest[1] == source and latest[2] == text:
                return int(latest[0])
            version = 1 if latest is None else int(latest[0]) + 1
            db.table("drafts").insert(
                {
                    "email_id": email_id,
                    "version": version,
                    "source": source,
                    "text": text,
                    "valid": int(valid),
                    "validation_problems": _json_list(problems),
                    "policy_refs": _json_list(policy_refs),
                    "provenance": json.dumps([dict(fact) for fact in provenance]),
                    "created_at": to_utc_text(self._now()),
                }
            )
            return version

        return self._transaction(write, write=True)

    def record_ticket(self, email_id: str, ticket: Mapping[str, object]) -> None:
        """Store the escalation ticket (``ticket_id``, ``suggested_routing``, ``priority``,
        ``reason_code``); a later ticket for the same email replaces it."""
        ticket_id = ticket.get("ticket_id")
        if not ticket_id:
            raise ValueError(f"ticket for email {email_id!r} has no ticket_id")
        queue, priority, reason = (
            ticket.get(key) for key in ("suggested_routing", "priority", "reason_code")
        )
        row = {
            "email_id": email_id,
            "ticket_id": str(ticket_id),
            "queue": None if queue is None else str(queue),
            "priority": None if priority is None else str(priority),
            "reason_code": None if reason is None else str(reason),
            "ticket": json.dumps(dict(ticket), default=str, sort_keys=True),
        }

        def write(db: Database) -> None:
            self._require_case(db, email_id)
            db.execute(
                "INSERT INTO tickets (email_id, ticket_id, queue, priority, reason_code, ticket, "
                "created_at) VALUES (:email_id, :ticket_id, :queue, :priority, :reason_code, "
                ":ticket, :created_at) ON CONFLICT (email_id) DO UPDATE SET "
                "ticket_id = excluded.ticket_id, queue = excluded.queue, "
                "priority = excluded.priority, reason_code = excluded.reason_code, "
                "ticket = excluded.ticket",
                {**row, "created_at": to_utc_text(self._now())},
            )

        self._transaction(write, write=True)

    def record_review(
        self,
        review_id: str,
        email_id: str,
        *,
        decision: str,
        reviewer: str,
        reason_category: str | None = None,
        message: str | None = None,
        edit_size: int | None = None,
        at: datetime | None = None,
    ) -> bool:
        """Record a reviewer's decision once per ``review_id``; False if it was already recorded.

        Reusing a review id for a different email is a caller bug and raises ValueError.
        """
        _check(decision, REVIEW_DECISIONS, "review decision", optional=False)
        _check(reason_category, REVIEW_REASON_CATEGORIES, "reason category", optional=True)
        if edit_size is not None and edit_size < 0:
            raise ValueError(f"edit size {edit_size} is negative")

        def write(db: Database) -> bool:
            self._require_case(db, email_id)
            existing = db.execute(
                "SELECT email_id FROM reviews WHERE review_id = ?", [review_id]
            ).fetchone()
            if existing is not None:
                if existing[0] != email_id:
                    raise ValueError(
                        f"review id {review_id!r} was already used for email {existing[0]!r}"
                    )
                return False
            db.table("reviews").insert(
                {
                    "review_id": review_id,
                    "email_id": email_id,
                    "decision": decision,
                    "reviewer": reviewer,
                    "reason_category": reason_category,
                    "message": message,
                    "edit_size": edit_size,
                    "created_at": to_utc_text(at or self._now()),
                }
            )
            return True

        return self._transaction(write, write=True)

    def record_outbox(self, email_id: str, *, path: Path | str, message_id: str) -> None:
        """Note the reply written to the outbox; the first one recorded for an email stays."""

        def write(db: Database) -> None:
            self._require_case(db, email_id)
            db.table("outbox").insert(
                {
                    "email_id": email_id,
                    "path": str(path),
                    "message_id": message_id,
                    "created_at": to_utc_text(self._now()),
                },
                ignore=True,
            )

        self._transaction(write, write=True)

    # reads

    def get_case(self, email_id: str) -> CaseRecord | None:
        """The case for an email id with everything recorded about it, or None."""
        found = self._transaction(
            lambda db: _load_cases(db, "email_id = ?", [email_id]), write=False
        )
        return found[0] if found else None

    def list_cases(
        self,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[CaseRecord]:
        """Cases received in ``[since, until)``, optionally with one status, oldest first."""
        where, params = _case_filters(status, since, until, limit, placeholder="?")
        return self._transaction(
            lambda db: _load_cases(db, where, params, limit=limit), write=False
        )

    def pending_reviews(self) -> list[CaseRecord]:
        """Cases waiting for a reviewer, oldest received first."""
        return self.list_cases(status="awaiting_review")

    def has_outcome(self, email_id: str) -> bool:
        """Whether the case exists and has reached one of :data:`CASE_STATUSES`."""

        def read(db: Database) -> bool:
            row = db.execute("SELECT status FROM cases WHERE email_id = ?", [email_id]).fetchone()
            return row is not None and row[0] in CASE_STATUSES

        return self._transaction(read, write=False)

    def count_by_status(self) -> dict[str, int]:
        """Number of cases per status; every status is listed, zero included."""

        def read(db: Database) -> dict[str, int]:
            counts = dict.fromkeys((OPEN_STATUS, *CASE_STATUSES), 0)
            for status, count in db.execute("SELECT status, count(*) FROM cases GROUP BY status"):
                counts[status] = count
            return counts

        return self._transaction(read, write=False)


# --- loading records --------------------------------------------------------------------------


def _load_cases(
    db: Database, where: str, params: Sequence[object], *, limit: int | None = None
) -> list[CaseRecord]:
    sql = f"SELECT * FROM cases WHERE {where} ORDER BY received_at, email_id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    cases = list(db.query(sql, list(params)))
    if not cases:
        return []
    # One query per related table for the whole batch, not one per case.
    ids = json.dumps([case["email_id"] for case in cases])
    in_batch = "email_id IN (SELECT value FROM json_each(?))"

    emails = {
        row["email_id"]: _email(row)
        for row in db.query(f"SELECT * FROM emails WHERE {in_batch}", [ids])
    }
    drafts: dict[str, list[DraftRecord]] = {}
    for row in db.query(f"SELECT * FROM drafts WHERE {in_batch} ORDER BY version", [ids]):
        drafts.setdefault(row["email_id"], []).append(_draft(row))
    tickets = {
        row["email_id"]: _ticket(row)
        for row in db.query(f"SELECT * FROM tickets WHERE {in_batch}", [ids])
    }
    reviews: dict[str, list[ReviewRecord]] = {}
    for row in db.query(
        f"SELECT * FROM reviews WHERE {in_batch} ORDER BY created_at, review_id", [ids]
    ):
        reviews.setdefault(row["email_id"], []).append(_review(row))
    outbox = {
        row["email_id"]: OutboxRecord(
            email_id=row["email_id"],
            path=row["path"],
            message_id=row["message_id"],
            created_at=datetime.fromisoformat(row["created_at"]),
        )
        for row in db.query(f"SELECT * FROM outbox WHERE {in_batch}", [ids])
    }

    records = []
    for case in cases:
        email_id = case["email_id"]
        versions = tuple(drafts.get(email_id, ()))
        records.append(
            CaseRecord(
                email_id=email_id,
                thread_id=case["thread_id"],
                sender=case["sender"],
                customer_id=case["customer_id"],
                received_at=datetime.fromisoformat(case["received_at"]),
                route=case["route"],
                reason_code=case["reason_code"],
                risk_flags=_strings(case["risk_flags"]),
                queue=case["queue"],
                status=case["status"],
                status_reason=case["status_reason"],
                created_at=datetime.fromisoformat(case["created_at"]),
                updated_at=datetime.fromisoformat(case["updated_at"]),
                decided_at=_from_text(case["decided_at"]),
                email=emails.get(email_id),
                latest_draft=versions[-1] if versions else None,
                drafts=versions,
                ticket=tickets.get(email_id),
                reviews=tuple(reviews.get(email_id, ())),
                outbox=outbox.get(email_id),
            )
        )
    return records


def _email(row: Mapping[str, Any]) -> InboundEmail:
    # Stored emails were validated on the way in; validating again would cut an already
    # truncated body a second time and stack a second truncation marker.
    return InboundEmail.model_construct(
        email_id=row["email_id"],
        received_at=datetime.fromisoformat(row["received_at"]),
        sender=row["sender"],
        sender_name=row["sender_name"] or "",
        subject=row["subject"] or "",
        body=row["body"] or "",
        in_reply_to=row["in_reply_to"],
        message_id=row["message_id"],
        sender_verified=bool(row["sender_verified"]),
        input_flags=_strings(row["input_flags"]),
    )


def _draft(row: Mapping[str, Any]) -> DraftRecord:
    return DraftRecord(
        email_id=row["email_id"],
        version=row["version"],
        source=row["source"],
        text=row["text"],
        valid=bool(row["valid"]),
        validation_problems=_strings(row["validation_problems"]),
        policy_refs=_strings(row["policy_refs"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        provenance=tuple(json.loads(row.get("provenance") or "[]")),
    )


def _ticket(row: Mapping[str, Any]) -> TicketRecord:
    return TicketRecord(
        email_id=row["email_id"],
        ticket_id=row["ticket_id"],
        queue=row["queue"],
        priority=row["priority"],
        reason_code=row["reason_code"],
        ticket=json.loads(row["ticket"]),
        created_at=datetime.fromisoformat(row["created_at"]),
    )


def _review(row: Mapping[str, Any]) -> ReviewRecord:
    return ReviewRecord(
        review_id=row["review_id"],
        email_id=row["email_id"],
        decision=row["decision"],
        reviewer=row["reviewer"],
        reason_category=row["reason_category"],
        message=row["message"],
        edit_size=row["edit_size"],
        created_at=datetime.fromisoformat(row["created_at"]),
    )
