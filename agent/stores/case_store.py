"""The case store: the operations database of cases, drafts, tickets, reviews and sent replies.

By default one SQLite file (``Context.cases_path``), separate from the checkpoint file; in a
deployment a Postgres database (:mod:`agent.stores.case_store_postgres`). Every email id has at
most one case; everything else hangs off that case.

:class:`CaseStore` holds every rule once (validation, idempotency, timestamps, the SQL of each
write and read); a small :class:`CaseDialect` supplies what differs between the databases:
connections, transactions, row locking, migrations bookkeeping and one batch-membership idiom.

On SQLite several processes and threads may write at once: the file runs in WAL mode, every
connection waits on a busy timeout, writes take the write lock up front (``BEGIN IMMEDIATE``)
and a short retry covers the rest, so "database is locked" never reaches a user. Each thread
keeps its own connection, so no sqlite3 object ever crosses a thread.

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

import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

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


# --- the schema, the same on every database ---------------------------------------------------

_M001 = (
    """CREATE TABLE emails (
        email_id text PRIMARY KEY, received_at text NOT NULL, sender text NOT NULL,
        sender_name text, subject text, body text, in_reply_to text, message_id text,
        sender_verified integer, input_flags text, recorded_at text NOT NULL)""",
    f"""CREATE TABLE cases (
        email_id text PRIMARY KEY, thread_id text NOT NULL, sender text NOT NULL,
        customer_id integer, received_at text NOT NULL, route text, reason_code text,
        risk_flags text DEFAULT '[]', queue text, status text NOT NULL DEFAULT '{OPEN_STATUS}',
        status_reason text, created_at text NOT NULL, updated_at text NOT NULL,
        decided_at text)""",
    "CREATE INDEX cases_status_received ON cases (status, received_at)",
    "CREATE INDEX cases_received ON cases (received_at)",
    "CREATE INDEX cases_sender ON cases (sender)",
    """CREATE TABLE drafts (
        email_id text NOT NULL REFERENCES cases (email_id), version integer NOT NULL,
        source text NOT NULL, text text NOT NULL, valid integer NOT NULL,
        validation_problems text, policy_refs text, created_at text NOT NULL,
        PRIMARY KEY (email_id, version))""",
    """CREATE TABLE tickets (
        email_id text PRIMARY KEY REFERENCES cases (email_id), ticket_id text NOT NULL,
        queue text, priority text, reason_code text, ticket text NOT NULL,
        created_at text NOT NULL)""",
    """CREATE TABLE reviews (
        review_id text PRIMARY KEY, email_id text NOT NULL REFERENCES cases (email_id),
        decision text NOT NULL, reviewer text NOT NULL, reason_category text, message text,
        edit_size integer, created_at text NOT NULL)""",
    "CREATE INDEX reviews_email_created ON reviews (email_id, created_at)",
    """CREATE TABLE outbox (
        email_id text PRIMARY KEY REFERENCES cases (email_id), path text NOT NULL,
        message_id text NOT NULL, created_at text NOT NULL)""",
)


class CaseSql(Protocol):
    """One open transaction on the case database. SQL is written once, with ``?``
    placeholders; each dialect translates them to its driver's style."""

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run a statement; returns the number of rows it changed."""
        ...

    def query(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        """Run a SELECT; returns its rows as dicts keyed by column name."""
        ...


def _m001_initial_schema(db: CaseSql) -> None:
    for statement in _M001:
        db.execute(statement)


#: Schema migrations in order; version N is ``MIGRATIONS[N - 1]``. Append, never edit. Each
#: runs on SQLite and on Postgres alike, so keep to the SQL both understand.
def _m002_draft_provenance(db: CaseSql) -> None:
    db.execute("ALTER TABLE drafts ADD COLUMN provenance TEXT")


MIGRATIONS: list[Callable[[CaseSql], None]] = [_m001_initial_schema, _m002_draft_provenance]


class CaseDialect(Protocol):
    """What differs between the databases a case store lives in: connections, transactions,
    locking and the one SQL idiom the two spell differently. Everything else is the store's."""

    #: Where the cases are, for messages (a file, or ``<postgres>``).
    path: Path
    #: The table recording applied migrations.
    migrations_table: str
    #: Appended to the SELECT of a case inside a write: a row lock where concurrent writers
    #: are not already serialised by the transaction itself.
    lock_case: str

    def needs_schema(self) -> bool:
        """Whether migrations must run before the next operation (a new or replaced database)."""
        ...

    def run_migrations(self, work: Callable[[CaseSql], _T]) -> _T:
        """Run ``work`` in one transaction that no other process migrates in at the same time;
        afterwards the schema counts as ready."""
        ...

    def run(self, work: Callable[[CaseSql], _T], *, write: bool) -> _T:
        """Run ``work`` in a transaction (read-only unless ``write``), or inside the enclosing
        :meth:`atomic` block."""
        ...

    def atomic(self) -> AbstractContextManager[None]:
        """A write transaction that every :meth:`run` inside the block joins."""
        ...

    def in_batch(self, column: str, values: Sequence[str]) -> tuple[str, object]:
        """A condition ``column`` is one of ``values``, and its one parameter."""
        ...

    def close(self) -> None:
        """Close the connections; a later operation opens new ones."""
        ...


# --- the store --------------------------------------------------------------------------------


def _case_filters(
    status: str | None, since: datetime | None, until: datetime | None, limit: int | None
) -> tuple[str, list[object]]:
    """The WHERE clause and parameters of a case listing."""
    _check(status, (*CASE_STATUSES, OPEN_STATUS), "case status", optional=True)
    if limit is not None and limit < 0:
        raise ValueError(f"limit {limit} is negative")
    clauses: list[str] = []
    params: list[object] = []
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    if since is not None:
        clauses.append("received_at >= ?")
        params.append(to_utc_text(since))
    if until is not None:
        clauses.append("received_at < ?")
        params.append(to_utc_text(until))
    return " AND ".join(clauses) or "1 = 1", params


def _insert(
    table: str, row: Mapping[str, object], *, on_conflict: str = ""
) -> tuple[str, list[object]]:
    """An INSERT of ``row`` (column names come from this module, never from a caller)."""
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    sql = f"INSERT INTO {table} ({columns}) VALUES ({marks}) {on_conflict}"
    return sql.rstrip(), list(row.values())


class CaseStore:
    """The case store; by default a SQLite file at ``path``, which appears on first use.

    The rules of the store (validation, idempotency, timestamps, what a record holds) live
    here once; a :class:`CaseDialect` supplies connections and transactions (SQLite here,
    Postgres in :mod:`agent.stores.case_store_postgres`).
    """

    def __init__(
        self,
        path: Path,
        *,
        now: Clock = utc_now,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
    ) -> None:
        self._attach(SqliteCases(Path(path), busy_timeout=busy_timeout), now=now)

    def _attach(self, dialect: CaseDialect, *, now: Clock) -> None:
        self._dialect = dialect
        self.path = dialect.path
        self._now = now
        self._schema_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CaseStore({str(self.path)!r})"

    # plumbing

    def close(self) -> None:
        """Close the store's connections; call it when no thread is using the store (a later
        operation opens a new connection)."""
        self._dialect.close()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Make every write inside the block one transaction: all of them or none.

        A node that records a draft and the case's new status does both at once, with one
        commit. Blocks nest; only the outermost one commits.
        """
        self._ensure_schema()
        with self._dialect.atomic():
            yield

    def _transaction(self, work: Callable[[CaseSql], _T], *, write: bool) -> _T:
        self._ensure_schema()
        return self._dialect.run(work, write=write)

    def _ensure_schema(self) -> None:
        if self._dialect.needs_schema():
            with self._schema_lock:
                if self._dialect.needs_schema():
                    self._dialect.run_migrations(self._apply_migrations)

    def migrate(self) -> list[int]:
        """Bring the schema up to date; returns the versions applied now (empty if none)."""
        with self._schema_lock:
            self._dialect.needs_schema()  # opens the database, noticing a replaced file
            return self._dialect.run_migrations(self._apply_migrations)

    def _apply_migrations(self, db: CaseSql) -> list[int]:
        table = self._dialect.migrations_table
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {table} "
            "(version integer PRIMARY KEY, name text NOT NULL, applied_at text NOT NULL)"
        )
        applied = {row["version"] for row in db.query(f"SELECT version FROM {table}")}
        newly_applied: list[int] = []
        for version, migration in enumerate(MIGRATIONS, start=1):
            if version in applied:
                continue
            migration(db)
            db.execute(
                f"INSERT INTO {table} (version, name, applied_at) VALUES (?, ?, ?)",
                [version, migration.__name__.lstrip("_"), to_utc_text(self._now())],
            )
            newly_applied.append(version)
        return newly_applied

    def _require_case(self, db: CaseSql, email_id: str) -> dict[str, Any]:
        """The case's row, locked against other writers until the transaction ends."""
        rows = db.query(
            f"SELECT * FROM cases WHERE email_id = ?{self._dialect.lock_case}", [email_id]
        )
        if not rows:
            raise CaseNotFoundError(f"no case for email {email_id!r}; open_case must come first")
        return rows[0]

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
        sql, params = _insert("emails", row, on_conflict="ON CONFLICT (email_id) DO NOTHING")
        self._transaction(lambda db: db.execute(sql, params), write=True)

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
        sql, params = _insert("cases", row, on_conflict="ON CONFLICT (email_id) DO NOTHING")
        self._transaction(lambda db: db.execute(sql, params), write=True)

    def _update_status(
        self, db: CaseSql, email_id: str, status: str, changes: dict[str, Any]
    ) -> None:
        case = self._require_case(db, email_id)
        now = to_utc_text(self._now())
        if status not in DECIDED_STATUSES:
            decided_at = None
        elif case["status"] == status and case["decided_at"]:
            decided_at = case["decided_at"]
        else:
            decided_at = now
        values = {**changes, "status": status, "updated_at": now, "decided_at": decided_at}
        # Column names come from this module, never from a caller.
        assignments = ", ".join(f"{column} = ?" for column in values)
        db.execute(
            f"UPDATE cases SET {assignments} WHERE email_id = ?", [*values.values(), email_id]
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

        def write(db: CaseSql) -> int:
            self._require_case(db, email_id)  # the case's lock orders concurrent versions
            found = db.query(
                "SELECT version, source, text FROM drafts WHERE email_id = ? "
                "ORDER BY version DESC LIMIT 1",
                [email_id],
            )
            latest = found[0] if found else None
            if latest is not None and latest["source"] == source and latest["text"] == text:
                return int(latest["version"])
            version = 1 if latest is None else int(latest["version"]) + 1
            row = {
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
            db.execute(*_insert("drafts", row))
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
            "created_at": to_utc_text(self._now()),
        }
        # created_at stays as first recorded.
        replace = ", ".join(
            f"{column} = excluded.{column}"
            for column in row
            if column not in ("email_id", "created_at")
        )
        sql, params = _insert(
            "tickets", row, on_conflict=f"ON CONFLICT (email_id) DO UPDATE SET {replace}"
        )

        def write(db: CaseSql) -> None:
            self._require_case(db, email_id)
            db.execute(sql, params)

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
        row = {
            "review_id": review_id,
            "email_id": email_id,
            "decision": decision,
            "reviewer": reviewer,
            "reason_category": reason_category,
            "message": message,
            "edit_size": edit_size,
            "created_at": to_utc_text(at or self._now()),
        }
        sql, params = _insert("reviews", row, on_conflict="ON CONFLICT (review_id) DO NOTHING")

        def write(db: CaseSql) -> bool:
            self._require_case(db, email_id)
            if db.execute(sql, params):
                return True
            existing = db.query("SELECT email_id FROM reviews WHERE review_id = ?", [review_id])
            if existing and existing[0]["email_id"] != email_id:
                raise ValueError(
                    f"review id {review_id!r} was already used for email "
                    f"{existing[0]['email_id']!r}"
                )
            return False

        return self._transaction(write, write=True)

    def record_outbox(self, email_id: str, *, path: Path | str, message_id: str) -> None:
        """Note the reply written to the outbox; the first one recorded for an email stays."""

        def write(db: CaseSql) -> None:
            self._require_case(db, email_id)
            row = {
                "email_id": email_id,
                "path": str(path),
                "message_id": message_id,
                "created_at": to_utc_text(self._now()),
            }
            db.execute(*_insert("outbox", row, on_conflict="ON CONFLICT (email_id) DO NOTHING"))

        self._transaction(write, write=True)

    # reads

    def get_case(self, email_id: str) -> CaseRecord | None:
        """The case for an email id with everything recorded about it, or None."""
        found = self._transaction(
            lambda db: self._load_cases(db, "email_id = ?", [email_id]), write=False
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
        where, params = _case_filters(status, since, until, limit)
        return self._transaction(
            lambda db: self._load_cases(db, where, params, limit=limit), write=False
        )

    def pending_reviews(self) -> list[CaseRecord]:
        """Cases waiting for a reviewer, oldest received first."""
        return self.list_cases(status="awaiting_review")

    def has_outcome(self, email_id: str) -> bool:
        """Whether the case exists and has reached one of :data:`CASE_STATUSES`."""

        def read(db: CaseSql) -> bool:
            rows = db.query("SELECT status FROM cases WHERE email_id = ?", [email_id])
            return bool(rows) and rows[0]["status"] in CASE_STATUSES

        return self._transaction(read, write=False)

    def count_by_status(self) -> dict[str, int]:
        """Number of cases per status; every status is listed, zero included."""

        def read(db: CaseSql) -> dict[str, int]:
            counts = dict.fromkeys((OPEN_STATUS, *CASE_STATUSES), 0)
            for row in db.query("SELECT status, count(*) AS n FROM cases GROUP BY status"):
                counts[row["status"]] = int(row["n"])
            return counts

        return self._transaction(read, write=False)

    def _load_cases(
        self, db: CaseSql, where: str, params: Sequence[object], *, limit: int | None = None
    ) -> list[CaseRecord]:
        sql = f"SELECT * FROM cases WHERE {where} ORDER BY received_at, email_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        cases = db.query(sql, list(params))
        if not cases:
            return []
        # One query per related table for the whole batch, not one per case.
        in_batch, ids = self._dialect.in_batch("email_id", [case["email_id"] for case in cases])

        def rows(table: str, order: str = "") -> list[dict[str, Any]]:
            return db.query(f"SELECT * FROM {table} WHERE {in_batch} {order}", [ids])

        return _case_records(
            cases,
            emails={row["email_id"]: _email(row) for row in rows("emails")},
            drafts=_grouped(_draft(row) for row in rows("drafts", "ORDER BY version")),
            tickets={row["email_id"]: _ticket(row) for row in rows("tickets")},
            reviews=_grouped(
                _review(row) for row in rows("reviews", "ORDER BY created_at, review_id")
            ),
            outbox={row["email_id"]: _outbox(row) for row in rows("outbox")},
        )


# --- the SQLite dialect -----------------------------------------------------------------------


def _is_lock_error(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class _SqliteSql:
    """:class:`CaseSql` over a sqlite3 connection (which already speaks ``?``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        return self._conn.execute(sql, list(params)).rowcount

    def query(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        cursor = self._conn.execute(sql, list(params))
        names = [column[0] for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor]


class SqliteCases:
    """The SQLite dialect: one file, WAL mode, a kept connection per thread, ``BEGIN
    IMMEDIATE`` for writes and a short retry on lock conflicts."""

    migrations_table = "migrations"
    lock_case = ""  # BEGIN IMMEDIATE already holds the whole file's write lock

    def __init__(self, path: Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SECONDS) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._schema_ready = False
        # One connection per thread, kept open: opening one per operation (and the WAL
        # checkpoint on every close) cost more than the writes themselves.
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._generation = 0

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened again after a fork, a close() or when the file
        was replaced (so nothing is ever written to a deleted file)."""
        local = self._local
        try:
            inode: int | None = self.path.stat().st_ino
        except FileNotFoundError:
            inode = None
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is not None and (local.pid, local.generation, local.inode) == (
            os.getpid(), self._generation, inode
        ):
            return conn
        if inode is None or (conn is not None and local.inode != inode):
            self._schema_ready = False  # a new or replaced file needs its tables again
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, check_same_thread=False,
                               isolation_level=None)
        conn.execute("PRAGMA foreign_keys = ON")
        with self._connections_lock:
            self._connections.append(conn)
        local.conn, local.pid, local.generation = conn, os.getpid(), self._generation
        local.inode = self.path.stat().st_ino
        local.depth = 0
        return conn

    def needs_schema(self) -> bool:
        self._connection()  # notices a new or replaced file
        return not self._schema_ready

    def close(self) -> None:
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
    def _begin(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        local = self._local
        if local.depth:  # inside atomic(): the outer block owns the transaction
            local.depth += 1
            try:
                yield conn
            finally:
                local.depth -= 1
            return
        # IMMEDIATE takes the write lock first, so a read-then-write (next draft version)
        # cannot race, and waiting happens in the busy handler. Once it is held, nothing in
        # the transaction waits for a lock again, so only the BEGIN is retried.
        self._retrying(lambda: conn.execute("BEGIN IMMEDIATE" if write else "BEGIN"))
        local.depth = 1
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()
            raise
        finally:
            local.depth = 0

    @contextmanager
    def atomic(self) -> Iterator[None]:
        with self._begin(write=True):
            yield

    def run(self, work: Callable[[CaseSql], _T], *, write: bool) -> _T:
        with self._begin(write=write) as conn:
            return work(_SqliteSql(conn))

    def run_migrations(self, work: Callable[[CaseSql], _T]) -> _T:
        def migrate() -> _T:
            conn = self._connection()
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = wal")
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(_SqliteSql(conn))
                conn.execute("COMMIT")
            except BaseException:
                conn.rollback()
                raise
            return result

        result = self._retrying(migrate)
        self._schema_ready = True
        return result

    def in_batch(self, column: str, values: Sequence[str]) -> tuple[str, object]:
        return f"{column} IN (SELECT value FROM json_each(?))", json.dumps(list(values))


# --- loading records --------------------------------------------------------------------------

_R = TypeVar("_R", DraftRecord, ReviewRecord)


def _grouped(records: Iterable[_R]) -> dict[str, list[_R]]:
    by_email: dict[str, list[_R]] = {}
    for record in records:
        by_email.setdefault(record.email_id, []).append(record)
    return by_email


def _case_records(
    cases: list[dict[str, Any]],
    *,
    emails: Mapping[str, InboundEmail],
    drafts: Mapping[str, list[DraftRecord]],
    tickets: Mapping[str, TicketRecord],
    reviews: Mapping[str, list[ReviewRecord]],
    outbox: Mapping[str, OutboxRecord],
) -> list[CaseRecord]:
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


def _outbox(row: Mapping[str, Any]) -> OutboxRecord:
    return OutboxRecord(
        email_id=row["email_id"],
        path=row["path"],
        message_id=row["message_id"],
        created_at=datetime.fromisoformat(row["created_at"]),
    )


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
