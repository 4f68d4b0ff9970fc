"""A shared inbox queue on Postgres: several worker processes, each email claimed once.

Workers on any number of machines enqueue the same inbox (enqueueing is idempotent on the
email id) and then claim emails one at a time with ``FOR UPDATE SKIP LOCKED``: two workers
never claim the same email at once. A claim is a lease: the worker renews it while it works
(a heartbeat thread); if the worker dies, the lease runs out and another worker claims the
email again. The takeover is safe because triage itself is idempotent per email: the graph
continues from the email's last checkpoint (on the shared Postgres saver), and a case that
already has an outcome is returned, not recomputed. So every email ends in exactly one
outcome, whichever workers touched it.

An email whose claims keep dying (it crashes every worker that takes it) is given up after
``max_attempts`` claims and recorded as a failed case, rather than taking the fleet down.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from mediavault.graph.context import ConfigurationError, Context
from mediavault.graph.inbound_email import InboundEmail

_T = TypeVar("_T")

#: Seconds a claim lasts without a heartbeat; a dead worker's email waits this long.
DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_MAX_ATTEMPTS = 3
#: Advisory-lock key that serialises creating the queue table ("MVWQ").
_SCHEMA_LOCK_KEY = 0x4D56_5751
QUEUE_STATUSES = ("queued", "claimed", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox_queue (
    email_id text PRIMARY KEY,
    email jsonb NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'claimed', 'done', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    worker text,
    lease_until timestamptz,
    finished_at timestamptz,
    outcome text,
    error text
)
"""
_SCHEMA_INDEX = (
    "CREATE INDEX IF NOT EXISTS inbox_queue_claimable ON inbox_queue (status, enqueued_at)"
)


def default_worker_id() -> str:
    """``host:pid:random``: unique per process, readable in the queue table."""
    import os

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class ClaimedEmail:
    """An email this worker holds a lease on."""

    email: InboundEmail
    attempts: int


@dataclass
class WorkerReport:
    """What one :func:`run_worker` call did."""

    worker_id: str
    processed: list[tuple[str, str]] = field(default_factory=list)
    given_up: list[str] = field(default_factory=list)
    lost_leases: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for _, outcome in self.processed if outcome == status)


class QueueUnavailableError(RuntimeError):
    """The state database went away and did not come back on a second try."""


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigurationError(
            "the shared inbox queue needs the `postgres` extra: "
            "pip install 'mediavault-agent[postgres]'"
        ) from None
    return psycopg


class InboxQueue:
    """The ``inbox_queue`` table in the state database ``dsn``."""

    def __init__(self, dsn: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.dsn = dsn
        self.lease_seconds = lease_seconds
        self._lock = threading.Lock()
        self._conn: Any = None
        self._ready = False

    def _connection(self) -> Any:
        psycopg = _psycopg()
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(
                    self.dsn, autocommit=True, connect_timeout=15,
                    application_name="mediavault-worker",
                )  # fmt: skip
            except psycopg.Error as error:
                from mediavault.tools.business_db.postgres_loader import redact_dsn

                first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
                raise ConfigurationError(
                    f"cannot connect to the state database {redact_dsn(self.dsn)}: {first}"
                ) from None
        if not self._ready:
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", [_SCHEMA_LOCK_KEY])
                self._conn.execute(_SCHEMA)
                self._conn.execute(_SCHEMA_INDEX)
            self._ready = True
        return self._conn

    def _run(self, work: Callable[[Any], _T]) -> _T:
        """Run ``work(cursor)`` in one transaction; reconnect once if the server dropped us.

        Repeating a queue statement is harmless: enqueueing is idempotent, a repeated claim
        only takes a second email (the first one's lease runs out), and ``finish`` reports a
        repeat as a lost lease.
        """
        psycopg = _psycopg()
        with self._lock:
            for attempt in range(2):
                connection = self._connection()
                try:
                    with connection.transaction(), connection.cursor() as cursor:
                        return work(cursor)
                except psycopg.OperationalError as error:
                    self._conn = None
                    with suppress(Exception):
                        connection.close()
                    if attempt == 1:
                        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                        raise QueueUnavailableError(
                            f"lost the state database: {first or type(error).__name__}"
                        ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def enqueue(self, emails: Iterable[InboundEmail]) -> int:
        """Add emails not queued before (by email id); returns how many were new."""
        rows = [(e.email_id, json.dumps(e.model_dump(mode="json"))) for e in emails]

        def insert(cursor: Any) -> int:
            added = 0
            for row in rows:
                cursor.execute(
                    "INSERT INTO inbox_queue (email_id, email) VALUES (%s, %s) "
                    "ON CONFLICT (email_id) DO NOTHING",
                    row,
                )
                added += cursor.rowcount
            return added

        return self._run(insert)

    def claim(self, worker_id: str) -> ClaimedEmail | None:
        """Take the oldest queued email, or one whose lease ran out; None when there is none.

        ``SKIP LOCKED`` lets concurrent claims pass each other instead of queueing up behind
        the same row, and the row lock makes each claim go to exactly one worker.
        """

        def take(cursor: Any) -> Any:
            cursor.execute(
                "UPDATE inbox_queue SET status = 'claimed', worker = %s, "
                "lease_until = clock_timestamp() + %s * interval '1 second', "
                "attempts = attempts + 1 "
                "WHERE email_id = (SELECT email_id FROM inbox_queue "
                "  WHERE status = 'queued' "
                "     OR (status = 'claimed' AND lease_until < clock_timestamp()) "
                "  ORDER BY enqueued_at, email_id FOR UPDATE SKIP LOCKED LIMIT 1) "
                "RETURNING email, attempts",
                [worker_id, self.lease_seconds],
            )
            return cursor.fetchone()

        row = self._run(take)
        if row is None:
            return None
        payload, attempts = row
        data = dict(payload if isinstance(payload, dict) else json.loads(payload))
        return ClaimedEmail(email=_stored_email(data), attempts=int(attempts))

    def renew(self, email_id: str, worker_id: str) -> bool:
        """Extend this worker's lease; False if the email is no longer this worker's."""
        return self._run(
            lambda cursor: bool(
                cursor.execute(
                    "UPDATE inbox_queue "
                    "SET lease_until = clock_timestamp() + %s * interval '1 second' "
                    "WHERE email_id = %s AND worker = %s AND status = 'claimed'",
                    [self.lease_seconds, email_id, worker_id],
                ).rowcount
            )
        )

    def finish(
        self, email_id: str, worker_id: str, *, outcome: str, failed: bool = False,
        error: str | None = None,
    ) -> bool:  # fmt: skip
        """Mark the email done (or failed); False if another worker had taken it over."""
        return self._run(
            lambda cursor: bool(
                cursor.execute(
                    "UPDATE inbox_queue SET status = %s, outcome = %s, error = %s, "
                    "finished_at = clock_timestamp(), lease_until = NULL "
                    "WHERE email_id = %s AND worker = %s AND status = 'claimed'",
                    ["failed" if failed else "done", outcome, error, email_id, worker_id],
                ).rowcount
            )
        )

    def unfinished(self) -> int:
        """Emails queued or claimed (by anyone, live lease or not)."""
        row = self._run(
            lambda cursor: cursor.execute(
                "SELECT count(*) FROM inbox_queue WHERE status IN ('queued', 'claimed')"
            ).fetchone()
        )
        return int(row[0]) if row else 0

    def counts(self) -> dict[str, int]:
        """Emails per queue status, every status listed."""
        rows = self._run(
            lambda cursor: cursor.execute(
                "SELECT status, count(*) FROM inbox_queue GROUP BY status"
            ).fetchall()
        )
        found = {str(status): int(n) for status, n in rows}
        return {status: found.get(status, 0) for status in QUEUE_STATUSES}


def _stored_email(data: dict[str, Any]) -> InboundEmail:
    # The email was validated when it was queued; validating again would cut an already
    # truncated body a second time.
    data["received_at"] = datetime.fromisoformat(str(data["received_at"]))
    data["input_flags"] = tuple(data.get("input_flags") or ())
    return InboundEmail.model_construct(**data)


class _Heartbeat:
    """Renews a lease every third of its length while the email is being triaged."""

    def __init__(self, queue: InboxQueue, email_id: str, worker_id: str) -> None:
        self._queue = queue
        self._email_id = email_id
        self._worker_id = worker_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self.lost = False

    def _beat(self) -> None:
        while not self._stop.wait(self._queue.lease_seconds / 3):
            try:
                if not self._queue.renew(self._email_id, self._worker_id):
                    self.lost = True
                    return
            except Exception:  # a passing network error: the next beat tries again
                continue

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def queue_for(context: Context, *, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> InboxQueue:
    """The shared queue in the context's state database; a clear error when there is none."""
    dsn = (context.state_db or "").strip()
    if not dsn.lower().startswith(("postgresql://", "postgres://")):
        raise ConfigurationError(
            "workers share their inbox, checkpoints and cases through Postgres: set "
            "MEDIAVAULT_STATE_DB (or --state-db) to a postgresql:// DSN"
        )
    return InboxQueue(dsn, lease_seconds=lease_seconds)


def _record_given_up(context: Context, email: InboundEmail, reason: str) -> None:
    """One failed outcome for an email no worker could finish (idempotent)."""
    from mediavault.agent.api import record_failed_outcome
    from mediavault.agent.wiring import services_for

    if not services_for(context).case_store.has_outcome(email.email_id):
        record_failed_outcome(context, email, reason)


def run_worker(
    context: Context,
    queue: InboxQueue,
    *,
    worker_id: str | None = None,
    until_empty: bool = True,
    poll_seconds: float = 1.0,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    max_emails: int | None = None,
    on_result: Callable[[str, str], None] | None = None,
) -> WorkerReport:
    """Claim and triage emails until the queue is finished (or forever: ``until_empty=False``).

    With ``until_empty`` the worker waits while other workers still hold claims, so that it
    can take over an email whose worker died; it returns once every email is done or failed.
    ``on_result(email_id, status)`` is called after each email (for progress output).
    """
    from mediavault.agent.api import triage_email
    from mediavault.agent.mail.outbox import remove_abandoned_partial_replies
    from mediavault.agent.wiring import services_for

    remove_abandoned_partial_replies(context.outbox_path)  # left by a killed worker
    services_for(context).audit.recover_torn_tail()  # a write a full disk tore
    worker = worker_id or default_worker_id()
    report = WorkerReport(worker_id=worker)
    while max_emails is None or len(report.processed) + len(report.given_up) < max_emails:
        claimed = queue.claim(worker)
        if claimed is None:
            if until_empty and queue.unfinished() == 0:
                break
            time.sleep(poll_seconds)
            continue
        email = claimed.email
        if claimed.attempts > max_attempts:
            reason = f"gave up after {max_attempts} claims: the email kept stopping its worker"
            _record_given_up(context, email, reason)
            queue.finish(email.email_id, worker, outcome="failed", failed=True, error=reason)
            report.given_up.append(email.email_id)
            continue
        with _Heartbeat(queue, email.email_id, worker) as heartbeat:
            result = triage_email(email, context=context)
        report.processed.append((email.email_id, result.status))
        if on_result is not None:
            on_result(email.email_id, result.status)
        finished = queue.finish(email.email_id, worker, outcome=result.status)
        if heartbeat.lost or not finished:
            # Another worker took it over meanwhile; triage is idempotent, so its outcome and
            # ours are the same recorded outcome.
            report.lost_leases.append(email.email_id)
    with suppress(Exception):
        queue.close()
    return report
