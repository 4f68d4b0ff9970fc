"""The case store on PostgreSQL, shared by every worker; and the factory that picks a store.

:func:`open_case_store` returns the SQLite :class:`~agent.stores.case_store.CaseStore` in
``MEDIAVAULT_HOME`` by default, and a :class:`PostgresCaseStore` when ``MEDIAVAULT_STATE_DB``
names a Postgres server. Both have the same public methods, the same idempotency rules (see
:mod:`agent.stores.case_store`) and return the same records: timestamps are stored as the same
fixed-width UTC text, so the two stores' records compare equal.

Concurrency: every write runs in one transaction that first locks the case's row
(``SELECT ... FOR UPDATE``), so two workers recording for one email take turns, and inserts
are ``ON CONFLICT DO NOTHING`` on their natural keys. Schema migrations take an advisory lock,
so workers starting together do not race.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from mediavault.agent.stores.case_store import (
    CASE_STATUSES,
    DECIDED_STATUSES,
    DRAFT_SOURCES,
    OPEN_STATUS,
    REVIEW_DECISIONS,
    REVIEW_REASON_CATEGORIES,
    ROUTES,
    CaseNotFoundError,
    CaseRecord,
    CaseStore,
    Clock,
    DraftRecord,
    OutboxRecord,
    ReviewRecord,
    _case_filters,
    _check,
    _draft,
    _email,
    _from_text,
    _json_list,
    _review,
    _strings,
    _ticket,
    to_utc_text,
    utc_now,
)
from mediavault.graph.context import ConfigurationError, Context
from mediavault.graph.inbound_email import InboundEmail
from mediavault.policies import queues, reason_codes

_T = TypeVar("_T")
#: Advisory-lock key that serialises migrations between workers ("MVCS").
_MIGRATION_LOCK_KEY = 0x4D56_4353

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
#: Schema migrations in order, each a list of statements; append, never edit.
MIGRATIONS: list[tuple[str, tuple[str, ...]]] = [
    ("m001_initial_schema", _M001),
    ("m002_draft_provenance", ("ALTER TABLE drafts ADD COLUMN provenance text",)),
]


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigurationError(
            "MEDIAVAULT_STATE_DB needs the `postgres` extra: "
            "pip install 'mediavault-agent[postgres]'"
        ) from None
    return psycopg


class PostgresCaseStore(CaseStore):
    """The case store in the Postgres database ``dsn``; tables appear on first use.

    It has every public method of :class:`~agent.stores.case_store.CaseStore` (it subclasses it so
    that code typed against the SQLite store accepts it) and uses none of its SQLite
    plumbing. One connection per store, used by one thread at a time.
    """

    def __init__(self, dsn: str, *, now: Clock = utc_now) -> None:
        self.dsn = dsn
        self.path = Path("<postgres>")  # kept for code that prints a store's location
        self._now = now
        self._lock = threading.RLock()
        self._schema_lock = threading.Lock()
        self._schema_ready = False
        self._conn: Any = None
        self._atomic_depth = 0

    def __repr__(self) -> str:
        from mediavault.tools.business_db.postgres_loader import redact_dsn

        return f"PostgresCaseStore({redact_dsn(self.dsn)!r})"

    # connection plumbing

    def _connection(self) -> Any:
        psycopg = _psycopg()
        if self._conn is None or self._conn.closed:
            from psycopg.rows import dict_row

            try:
                self._conn = psycopg.connect(
                    self.dsn, autocommit=True, row_factory=dict_row, connect_timeout=15,
                    application_name="mediavault-cases",
                )  # fmt: skip
            except psycopg.Error as error:
                from mediavault.tools.business_db.postgres_loader import redact_dsn

                raise ConfigurationError(
                    f"cannot connect to the state database {redact_dsn(self.dsn)}: "
                    f"{str(error).strip().splitlines()[0] if str(error).strip() else error!r}"
                ) from None
        return self._conn

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Make every write inside the block one transaction (see ``CaseStore.atomic``)."""
        self._ensure_schema()
        with self._lock:  # other threads wait: the connection is in this block's transaction
            if self._atomic_depth:
                self._atomic_depth += 1
                try:
                    yield
                finally:
                    self._atomic_depth -= 1
                return
            connection = self._connection()
            self._atomic_depth = 1
            try:
                with connection.transaction():
                    yield
            finally:
                self._atomic_depth = 0

    def _transaction(self, work: Callable[[Any], _T], *, write: bool) -> _T:
        self._ensure_schema()
        psycopg = _psycopg()
        with self._lock:
            if self._atomic_depth:  # inside atomic(): its transaction holds the writes
                with self._conn.cursor() as cursor:
                    return work(cursor)
            for attempt in range(2):
                connection = self._connection()
                try:
                    with connection.transaction(), connection.cursor() as cursor:
                        if not write:
                            cursor.execute("SET TRANSACTION READ ONLY")
                        return work(cursor)
                except psycopg.OperationalError:
                    # A dropped connection (server restart, idle timeout): reconnect once.
                    if not connection.closed or attempt == 1:
                        raise
                    self._conn = None
        raise AssertionError("unreachable")  # pragma: no cover

    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._schema_lock:
            if not self._schema_ready:
                self.migrate()

    def migrate(self) -> list[int]:
        """Bring the schema up to date; returns the versions applied now (empty if none)."""
        with self._lock:
            connection = self._connection()
            with connection.transaction(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_MIGRATION_LOCK_KEY])
                cursor.execute(
                    "CREATE TABLE IF NOT EXISTS case_store_migrations (version integer PRIMARY "
                    "KEY, name text NOT NULL, applied_at text NOT NULL)"
                )
                cursor.execute("SELECT version FROM case_store_migrations")
                applied = {row["version"] for row in cursor.fetchall()}
                newly: list[int] = []
                for version, (name, statements) in enumerate(MIGRATIONS, start=1):
                    if version in applied:
                        continue
                    for statement in statements:
                        cursor.execute(statement)
                    cursor.execute(
                        "INSERT INTO case_store_migrations (version, name, applied_at) "
                        "VALUES (%s, %s, %s)",
                        [version, name, to_utc_text(self._now())],
                    )
                    newly.append(version)
            self._schema_ready = True
            return newly

    def close(self) -> None:
        """Close the store's connection (a later call opens a new one)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @staticmethod
    def _locked_case(cursor: Any, email_id: str) -> dict[str, Any]:
        cursor.execute("SELECT * FROM cases WHERE email_id = %s FOR UPDATE", [email_id])
        row = cursor.fetchone()
        if row is None:
            raise CaseNotFoundError(f"no case for email {email_id!r}; open_case must come first")
        return dict(row)

    # writes

    def record_email(self, email: InboundEmail) -> None:
        """Keep the email as received (a second call for the same email id changes nothing)."""
        row = [
            email.email_id, to_utc_text(email.received_at), email.sender, email.sender_name,
            email.subject, email.body, email.in_reply_to, email.message_id,
            int(email.sender_verified), _json_list(email.input_flags), to_utc_text(self._now()),
        ]  # fmt: skip
        self._transaction(
            lambda cursor: cursor.execute(
                "INSERT INTO emails (email_id, received_at, sender, sender_name, subject, body, "
                "in_reply_to, message_id, sender_verified, input_flags, recorded_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (email_id) DO NOTHING",
                row,
            ),
            write=True,
        )

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
        row = [
            email_id, thread_id, sender.strip().lower(), customer_id, to_utc_text(received_at),
            OPEN_STATUS, "[]", now, now,
        ]  # fmt: skip
        self._transaction(
            lambda cursor: cursor.execute(
                "INSERT INTO cases (email_id, thread_id, sender, customer_id, received_at, "
                "status, risk_flags, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (email_id) DO NOTHING",
                row,
            ),
            write=True,
        )

    def _write_status(
        self, cursor: Any, email_id: str, status: str, changes: dict[str, Any]
    ) -> None:
        case = self._locked_case(cursor, email_id)
        now = to_utc_text(self._now())
        if status not in DECIDED_STATUSES:
            decided_at = None
        elif case["status"] == status and case["decided_at"]:
            decided_at = case["decided_at"]
        else:
            decided_at = now
        values = {**changes, "status": status, "updated_at": now, "decided_at": decided_at}
        # Column names come from this module, never from a caller.
        assignments = ", ".join(f"{column} = %s" for column in values)
        cursor.execute(
            f"UPDATE cases SET {assignments} WHERE email_id = %s", [*values.values(), email_id]
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
        self._transaction(
            lambda cursor: self._write_status(cursor, email_id, status, changes), write=True
        )

    def set_status(self, email_id: str, status: str, *, reason: str | None = None) -> None:
        """Move the case to ``status`` (one of :data:`CASE_STATUSES`) with an optional reason."""
        _check(status, CASE_STATUSES, "case status", optional=False)
        self._transaction(
            lambda cursor: self._write_status(cursor, email_id, status, {"status_reason": reason}),
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

        def write(cursor: Any) -> int:
            self._locked_case(cursor, email_id)  # the row lock orders concurrent versions
            cursor.execute(
                "SELECT version, source, text FROM drafts WHERE email_id = %s "
                "ORDER BY version DESC LIMIT 1",
                [email_id],
            )
            latest = cursor.fetchone()
            if latest is not None and latest["source"] == source and latest["text"] == text:
                return int(latest["version"])
            version = 1 if latest is None else int(latest["version"]) + 1
            cursor.execute(
                "INSERT INTO drafts (email_id, version, source, text, valid, "
                "validation_problems, policy_refs, created_at, provenance) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [email_id, version, source, text, int(valid), _json_list(problems),
                 _json_list(policy_refs), to_utc_text(self._now()),
                 json.dumps([dict(fact) for fact in provenance])],
            )  # fmt: skip
            return version

        return self._transaction(write, write=True)

    def record_ticket(self, email_id: str, ticket: Mapping[str, object]) -> None:
        """Store the escalation ticket; a later ticket for the same email replaces it."""
        ticket_id = ticket.get("ticket_id")
        if not ticket_id:
            raise ValueError(f"ticket for email {email_id!r} has no ticket_id")
        queue, priority, reason = (
            ticket.get(key) for key in ("suggested_routing", "priority", "reason_code")
        )
        row = [
            email_id, str(ticket_id), None if queue is None else str(queue),
            None if priority is None else str(priority), None if reason is None else str(reason),
            json.dumps(dict(ticket), default=str, sort_keys=True), to_utc_text(self._now()),
        ]  # fmt: skip

        def write(cursor: Any) -> None:
            self._locked_case(cursor, email_id)
            cursor.execute(
                "INSERT INTO tickets (email_id, ticket_id, queue, priority, reason_code, ticket, "
                "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (email_id) DO "
                "UPDATE SET ticket_id = excluded.ticket_id, queue = excluded.queue, "
                "priority = excluded.priority, reason_code = excluded.reason_code, "
                "ticket = excluded.ticket",
                row,
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

        def write(cursor: Any) -> bool:
            self._locked_case(cursor, email_id)
            cursor.execute(
                "INSERT INTO reviews (review_id, email_id, decision, reviewer, reason_category, "
                "message, edit_size, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (review_id) DO NOTHING RETURNING review_id",
                [review_id, email_id, decision, reviewer, reason_category, message, edit_size,
                 to_utc_text(at or self._now())],
            )  # fmt: skip
            if cursor.fetchone() is not None:
                return True
            cursor.execute("SELECT email_id FROM reviews WHERE review_id = %s", [review_id])
            existing = cursor.fetchone()
            if existing is not None and existing["email_id"] != email_id:
                raise ValueError(
                    f"review id {review_id!r} was already used for email {existing['email_id']!r}"
                )
            return False

        return self._transaction(write, write=True)

    def record_outbox(self, email_id: str, *, path: Path | str, message_id: str) -> None:
        """Note the reply written to the outbox; the first one recorded for an email stays."""

        def write(cursor: Any) -> None:
            self._locked_case(cursor, email_id)
            cursor.execute(
                "INSERT INTO outbox (email_id, path, message_id, created_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (email_id) DO NOTHING",
                [email_id, str(path), message_id, to_utc_text(self._now())],
            )

        self._transaction(write, write=True)

    # reads

    def get_case(self, email_id: str) -> CaseRecord | None:
        """The case for an email id with everything recorded about it, or None."""
        found = self._transaction(
            lambda cursor: _load_cases(cursor, "email_id = %s", [email_id]), write=False
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
        where, params = _case_filters(status, since, until, limit, placeholder="%s")
        return self._transaction(
            lambda cursor: _load_cases(cursor, where, params, limit=limit), write=False
        )

    def pending_reviews(self) -> list[CaseRecord]:
        """Cases waiting for a reviewer, oldest received first."""
        return self.list_cases(status="awaiting_review")

    def has_outcome(self, email_id: str) -> bool:
        """Whether the case exists and has reached one of :data:`CASE_STATUSES`."""

        def read(cursor: Any) -> bool:
            cursor.execute("SELECT status FROM cases WHERE email_id = %s", [email_id])
            row = cursor.fetchone()
            return row is not None and row["status"] in CASE_STATUSES

        return self._transaction(read, write=False)

    def count_by_status(self) -> dict[str, int]:
        """Number of cases per status; every status is listed, zero included."""

        def read(cursor: Any) -> dict[str, int]:
            counts = dict.fromkeys((OPEN_STATUS, *CASE_STATUSES), 0)
            cursor.execute("SELECT status, count(*) AS n FROM cases GROUP BY status")
            for row in cursor.fetchall():
                counts[row["status"]] = int(row["n"])
            return counts

        return self._transaction(read, write=False)


def _load_cases(
    cursor: Any, where: str, params: Sequence[object], *, limit: int | None = None
) -> list[CaseRecord]:
    sql = f"SELECT * FROM cases WHERE {where} ORDER BY received_at, email_id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    cursor.execute(sql, list(params))
    cases = [dict(row) for row in cursor.fetchall()]
    if not cases:
        return []
    ids = [case["email_id"] for case in cases]

    def rows(table: str, order: str = "") -> list[dict[str, Any]]:
        cursor.execute(f"SELECT * FROM {table} WHERE email_id = ANY(%s) {order}", [ids])
        return [dict(row) for row in cursor.fetchall()]

    emails = {row["email_id"]: _email(row) for row in rows("emails")}
    drafts: dict[str, list[DraftRecord]] = {}
    for row in rows("drafts", "ORDER BY version"):
        drafts.setdefault(row["email_id"], []).append(_draft(row))
    tickets = {row["email_id"]: _ticket(row) for row in rows("tickets")}
    reviews: dict[str, list[ReviewRecord]] = {}
    for row in rows("reviews", "ORDER BY created_at, review_id"):
        reviews.setdefault(row["email_id"], []).append(_review(row))
    outbox = {
        row["email_id"]: OutboxRecord(
            email_id=row["email_id"],
            path=row["path"],
            message_id=row["message_id"],
            created_at=datetime.fromisoformat(row["created_at"]),
        )
        for row in rows("outbox")
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


def open_case_store(context: Context) -> CaseStore:
    """The case store the context asks for: Postgres if ``state_db`` is set, else SQLite."""
    from mediavault.agent.stores.checkpoints import uses_postgres_state

    if uses_postgres_state(context):
        dsn = (context.state_db or "").strip()
        if not dsn.lower().startswith(("postgresql://", "postgres://")):
            raise ConfigurationError(
                "MEDIAVAULT_STATE_DB must be a postgresql:// DSN; leave it unset to keep cases "
                "in MEDIAVAULT_HOME"
            )
        return PostgresCaseStore(dsn)
    return CaseStore(context.cases_path)
