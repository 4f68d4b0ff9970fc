"""Checkpoint retention: what is kept of an email's checkpoints once its outcome is recorded.

A run saves a checkpoint after every step (about 27 per email, each with the whole state), so
resumption after a crash never repeats a step. Once the email has an outcome and no review
waits, only the last one can still matter, and only for reading: a re-triage returns the
recorded outcome, ``review show`` and the evaluation read the final state. The policy
(``MEDIAVAULT_CHECKPOINT_RETENTION``):

``last`` (default)
    keep the latest checkpoint of a finished email, delete the rest (about 15 KB left of
    about 165 KB on SQLite). Everything that reads a thread's state sees exactly what it saw before.
``none``
    delete all of a finished email's checkpoints. The case store and the audit log hold the
    outcome, the draft, the ticket, the reviews and every event; a re-triage answers from the
    case store. ``review show`` then has no investigation details (rationale, evidence, gate
    verdicts) beyond what the audit trail holds.
``all``
    keep everything (for debugging a run step by step).

The policy is applied right after a run records its outcome (:func:`retain_finished`) and to
older homes by ``mediavault prune`` (:func:`prune_checkpoints`). An email is pruned inside
one transaction (its own after a run; a chunk of emails' in ``prune``), so a crash in the
middle rolls back and never leaves half a thread; an email is pruned only when its latest checkpoint
holds an outcome, so a review that waits is never touched; ``none`` additionally needs the
outcome in the case store.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver

from mediavault.graph.context import CHECKPOINT_RETENTION_POLICIES, ConfigurationError, Context

Retention = Literal["all", "last", "none"]

_log = logging.getLogger(__name__)

#: Outcomes a finished run records (``failed`` emails keep their checkpoints: a re-triage
#: retries them from where they stopped).
FINISHED_STATUSES: Final = frozenset({"approved", "rejected", "escalated"})
#: Emails pruned per SQLite transaction by ``mediavault prune``: the write lock is held for a
#: few milliseconds at a time, so triage in other processes goes on meanwhile.
SQLITE_PRUNE_CHUNK = 100
#: Emails per Postgres transaction in ``mediavault prune``.
POSTGRES_PRUNE_CHUNK = 100

_SQLITE_KEEP_LATEST: Final = (
    # Writes first: they are matched against the checkpoints that still exist.
    "DELETE FROM writes WHERE thread_id = ? AND checkpoint_id < (SELECT max(c.checkpoint_id) "
    "FROM checkpoints c WHERE c.thread_id = writes.thread_id "
    "AND c.checkpoint_ns = writes.checkpoint_ns)",
    "DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_id < (SELECT max(c.checkpoint_id) "
    "FROM checkpoints c WHERE c.thread_id = checkpoints.thread_id "
    "AND c.checkpoint_ns = checkpoints.checkpoint_ns)",
)
_SQLITE_DELETE: Final = (
    "DELETE FROM writes WHERE thread_id = ?",
    "DELETE FROM checkpoints WHERE thread_id = ?",
)


# Postgres (LangGraph's PostgresSaver tables), as one statement: atomic on its own, one round
# trip, every part reading the same snapshot. The saver's own ``prune`` does the same with
# about ten statements per email, written for subgraphs and delta channels this graph does not
# use; it took three times as long.
_POSTGRES_KEEP_LATEST: Final = (
    "WITH latest AS (SELECT DISTINCT ON (thread_id, checkpoint_ns) thread_id, checkpoint_ns, "
    "checkpoint_id, checkpoint -> 'channel_versions' AS versions FROM checkpoints "
    "WHERE thread_id = ANY(%(ids)s) ORDER BY thread_id, checkpoint_ns, checkpoint_id DESC), "
    "old_writes AS (DELETE FROM checkpoint_writes t USING latest l "
    "WHERE t.thread_id = l.thread_id AND t.checkpoint_ns = l.checkpoint_ns "
    "AND t.checkpoint_id < l.checkpoint_id), "
    "old_checkpoints AS (DELETE FROM checkpoints t USING latest l "
    "WHERE t.thread_id = l.thread_id AND t.checkpoint_ns = l.checkpoint_ns "
    "AND t.checkpoint_id < l.checkpoint_id) "
    # A blob stays while the kept checkpoint names its channel's version.
    "DELETE FROM checkpoint_blobs t USING latest l WHERE t.thread_id = l.thread_id "
    "AND t.checkpoint_ns = l.checkpoint_ns "
    "AND (l.versions ->> t.channel) IS DISTINCT FROM t.version",
)
_POSTGRES_DELETE: Final = (
    "WITH old_writes AS (DELETE FROM checkpoint_writes WHERE thread_id = ANY(%(ids)s)), "
    "old_blobs AS (DELETE FROM checkpoint_blobs WHERE thread_id = ANY(%(ids)s)) "
    "DELETE FROM checkpoints WHERE thread_id = ANY(%(ids)s)",
)


def retention_policy(value: str) -> Retention:
    """``value`` as a retention policy; :class:`ConfigurationError` names the valid ones."""
    policy = value.strip().lower()
    if policy not in CHECKPOINT_RETENTION_POLICIES:
        raise ConfigurationError(
            f"checkpoint retention {value!r} is not one of "
            f"{', '.join(CHECKPOINT_RETENTION_POLICIES)}")
    return policy  # type: ignore[return-value]


def _is_sqlite(saver: BaseCheckpointSaver[Any]) -> bool:
    return isinstance(getattr(saver, "conn", None), sqlite3.Connection)


def _sqlite_statements(policy: Retention) -> tuple[str, ...]:
    return _SQLITE_KEEP_LATEST if policy == "last" else _SQLITE_DELETE


def _postgres_statements(policy: Retention) -> tuple[str, ...]:
    return _POSTGRES_KEEP_LATEST if policy == "last" else _POSTGRES_DELETE


def _is_postgres(saver: BaseCheckpointSaver[Any]) -> bool:
    return type(getattr(saver, "conn", None)).__module__.startswith("psycopg")


def _postgres_prune(saver: BaseCheckpointSaver[Any], thread_ids: list[str],
                    policy: Retention) -> None:
    """One statement for ``thread_ids``: rows deleted by key, row locks held for milliseconds."""
    connection: Any = saver.conn  # type: ignore[attr-defined]
    with saver.lock:  # type: ignore[attr-defined]  # one statement: atomic by itself
        for statement in _postgres_statements(policy):
            connection.execute(statement, {"ids": thread_ids}, prepare=False)


def retain_finished(
    saver: BaseCheckpointSaver[Any], thread_id: str, status: str, policy: str
) -> bool:
    """Apply ``policy`` to a thread whose run just recorded ``status``; True if it pruned.

    Called by the API right after a run ends; a thread that waits for review or failed is left
    as it is. The case store already holds the outcome (``finalize`` commits it first).
    """
    chosen = retention_policy(policy)
    if chosen == "all" or status not in FINISHED_STATUSES:
        return False
    try:
        return _retain(saver, thread_id, chosen)
    except Exception:  # the outcome is recorded; a later `mediavault prune` tries again
        _log.warning("could not prune the checkpoints of %s", thread_id, exc_info=True)
        return False


def _retain(saver: BaseCheckpointSaver[Any], thread_id: str, chosen: Retention) -> bool:
    if _is_sqlite(saver):
        connection: sqlite3.Connection = saver.conn  # type: ignore[attr-defined]
        with saver.lock, connection:  # type: ignore[attr-defined]  # one transaction
            for statement in _sqlite_statements(chosen):
                connection.execute(statement, (thread_id,))
        return True
    if _is_postgres(saver):
        _postgres_prune(saver, [thread_id], chosen)
        return True
    return False  # another saver (an in-memory one in tests): everything is kept


async def aretain_finished(
    saver: BaseCheckpointSaver[Any], thread_id: str, status: str, policy: str
) -> bool:
    """The asyncio twin of :func:`retain_finished` (aiosqlite or the asyncio Postgres saver)."""
    chosen = retention_policy(policy)
    if chosen == "all" or status not in FINISHED_STATUSES:
        return False
    try:
        return await _aretain(saver, thread_id, chosen)
    except Exception:
        _log.warning("could not prune the checkpoints of %s", thread_id, exc_info=True)
        return False


async def _aretain(saver: BaseCheckpointSaver[Any], thread_id: str, chosen: Retention) -> bool:
    connection = getattr(saver, "conn", None)
    if type(connection).__module__.startswith("aiosqlite"):
        async with saver.lock:  # type: ignore[attr-defined]
            try:
                for statement in _sqlite_statements(chosen):
                    await connection.execute(statement, (thread_id,))  # type: ignore[union-attr]
            except BaseException:
                await connection.rollback()  # type: ignore[union-attr]
                raise
            await connection.commit()  # type: ignore[union-attr]
        return True
    if not _is_postgres(saver):
        return False
    async with saver.lock:  # type: ignore[attr-defined]
        for statement in _postgres_statements(chosen):
            await connection.execute(  # type: ignore[union-attr]
                statement, {"ids": [thread_id]}, prepare=False)
    return True


# ------------------------------------------------------------------------- mediavault prune


@dataclass(frozen=True)
class PruneReport:
    """What ``mediavault prune`` did (or, in a dry run, would do)."""

    policy: Retention
    dry_run: bool
    #: Emails with checkpoints in the store.
    threads: int
    #: Finished emails old enough whose checkpoints were (or would be) pruned.
    pruned: int
    #: Emails left alone: waiting for review, still running, failed, or too recent.
    kept: int
    #: Bytes of checkpoint data removed (or that would be).
    bytes_freed: int
    #: SQLite: the file's size (with its WAL) before and after compaction; None on Postgres.
    file_bytes_before: int | None = None
    file_bytes_after: int | None = None


def parse_age(text: str) -> timedelta:
    """An age such as ``30d``, ``12h``, ``90m``, ``2w`` or ``0``; ValueError otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    value = text.strip().lower()
    if value == "0":
        return timedelta(0)
    number, unit = value[:-1], value[-1:]
    if unit not in units or not number.isdigit():
        raise ValueError(f"age {text!r} is not a number followed by s, m, h, d or w (e.g. 30d)")
    return timedelta(seconds=int(number) * units[unit])


@dataclass(frozen=True)
class _Candidate:
    thread_id: str
    email_id: str | None
    bytes_freed: int


def _finished_at(saved: Any) -> datetime | None:
    """When the thread's latest checkpoint was written, if it holds an outcome."""
    values = saved.checkpoint.get("channel_values") or {}
    outcome = values.get("outcome") or {}
    if outcome.get("status") not in FINISHED_STATUSES:
        return None
    stamp = str(saved.checkpoint.get("ts") or "")
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _email_id(saved: Any) -> str | None:
    email = (saved.checkpoint.get("channel_values") or {}).get("email") or {}
    return str(email["email_id"]) if email.get("email_id") else None


def prune_checkpoints(
    context: Context,
    *,
    policy: str | None = None,
    older_than: timedelta = timedelta(0),
    dry_run: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> PruneReport:
    """Apply a retention policy to every finished email of a home (or Postgres state).

    ``policy`` defaults to the context's; ``older_than`` spares emails finished more recently.
    """
    from mediavault.agent.stores.case_store_postgres import open_case_store
    from mediavault.agent.stores.checkpoints import open_checkpointer, uses_postgres_state

    chosen = retention_policy(policy or context.checkpoint_retention)
    postgres = uses_postgres_state(context)
    if not postgres and not context.checkpoint_path.exists():
        return PruneReport(chosen, dry_run, 0, 0, 0, 0, 0, 0)
    before = None if postgres else _file_bytes(context)
    with open_checkpointer(context) as saver:
        store_ = _Store.of(saver)
        threads = store_.thread_ids()
        cutoff = now() - older_than
        cases = open_case_store(context) if chosen == "none" else None
        candidates: list[_Candidate] = []
        for thread_id in threads:
            saved = saver.get_tuple({"configurable": {"thread_id": thread_id}})
            finished = _finished_at(saved) if saved is not None else None
            if finished is None or finished > cutoff:
                continue
            email_id = _email_id(saved)
            if cases is not None:
                # Deleting everything is safe only when the case store has the outcome.
                case = cases.get_case(email_id) if email_id else None
                if case is None or case.status not in FINISHED_STATUSES:
                    continue
            candidates.append(_Candidate(thread_id, email_id, 0))
        sized = store_.bytes_freed([c.thread_id for c in candidates], chosen)
        candidates = [_Candidate(c.thread_id, c.email_id, sized.get(c.thread_id, 0))
                      for c in candidates]
        if chosen == "last":  # an email already down to its last checkpoint frees nothing
            candidates = [c for c in candidates if c.bytes_freed > 0]
        if not dry_run and chosen != "all":
            store_.prune([c.thread_id for c in candidates], chosen)
    if chosen == "all":
        candidates = []
    after = before
    if not postgres and not dry_run and candidates:
        compact_sqlite(context)
        after = _file_bytes(context)
    return PruneReport(
        policy=chosen, dry_run=dry_run, threads=len(threads), pruned=len(candidates),
        kept=len(threads) - len(candidates), bytes_freed=sum(c.bytes_freed for c in candidates),
        file_bytes_before=before, file_bytes_after=after,
    )


class _Store:
    """The few statements ``prune`` needs beyond the saver's own interface, per database."""

    @staticmethod
    def of(saver: BaseCheckpointSaver[Any]) -> _Store:
        return _SqliteStore(saver) if _is_sqlite(saver) else _PostgresStore(saver)

    def thread_ids(self) -> list[str]:
        raise NotImplementedError

    def bytes_freed(self, thread_ids: list[str], policy: Retention) -> dict[str, int]:
        raise NotImplementedError

    def prune(self, thread_ids: list[str], policy: Retention) -> None:
        raise NotImplementedError


class _SqliteStore(_Store):
    def __init__(self, saver: BaseCheckpointSaver[Any]) -> None:
        self.saver = saver
        self.connection: sqlite3.Connection = saver.conn  # type: ignore[attr-defined]

    def thread_ids(self) -> list[str]:
        with self.saver.lock:  # type: ignore[attr-defined]
            return [row[0] for row in self.connection.execute(
                "SELECT DISTINCT thread_id FROM checkpoints ORDER BY thread_id")]

    def bytes_freed(self, thread_ids: list[str], policy: Retention) -> dict[str, int]:
        freed: dict[str, int] = {}
        keep_latest = "AND checkpoint_id < (SELECT max(c.checkpoint_id) FROM checkpoints c " \
            "WHERE c.thread_id = t.thread_id AND c.checkpoint_ns = t.checkpoint_ns)"
        condition = keep_latest if policy == "last" else ""
        with self.saver.lock:  # type: ignore[attr-defined]
            for thread_id in thread_ids:
                checkpoints = self.connection.execute(
                    "SELECT coalesce(sum(length(checkpoint) + length(metadata)), 0) "
                    f"FROM checkpoints t WHERE thread_id = ? {condition}", (thread_id,)
                ).fetchone()[0]
                writes = self.connection.execute(
                    "SELECT coalesce(sum(length(value)), 0) "
                    f"FROM writes t WHERE thread_id = ? {condition}", (thread_id,)
                ).fetchone()[0]
                freed[thread_id] = int(checkpoints) + int(writes)
        return freed

    def prune(self, thread_ids: list[str], policy: Retention) -> None:
        statements = _sqlite_statements(policy)
        for start in range(0, len(thread_ids), SQLITE_PRUNE_CHUNK):
            chunk = thread_ids[start:start + SQLITE_PRUNE_CHUNK]
            with self.saver.lock, self.connection:  # type: ignore[attr-defined]
                for thread_id in chunk:
                    for statement in statements:
                        self.connection.execute(statement, (thread_id,))


_POSTGRES_LATEST: Final = (
    "(SELECT max(c.checkpoint_id) FROM checkpoints c WHERE c.thread_id = t.thread_id "
    "AND c.checkpoint_ns = t.checkpoint_ns)"
)


class _PostgresStore(_Store):
    def __init__(self, saver: BaseCheckpointSaver[Any]) -> None:
        self.saver = saver
        self.connection: Any = saver.conn  # type: ignore[attr-defined]

    def thread_ids(self) -> list[str]:
        rows = self.connection.execute(
            "SELECT DISTINCT thread_id FROM checkpoints ORDER BY thread_id").fetchall()
        return [row["thread_id"] for row in rows]

    def bytes_freed(self, thread_ids: list[str], policy: Retention) -> dict[str, int]:
        if not thread_ids:
            return {}
        latest = f"AND t.checkpoint_id < {_POSTGRES_LATEST}" if policy == "last" else ""
        # A blob is still needed when the kept checkpoint names its channel's version.
        blob_kept = (
            "AND NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.thread_id = t.thread_id "
            "AND c.checkpoint_ns = t.checkpoint_ns AND c.checkpoint_id = "
            f"{_POSTGRES_LATEST} AND c.checkpoint -> 'channel_versions' ->> t.channel "
            "= t.version)" if policy == "last" else "")
        freed = dict.fromkeys(thread_ids, 0)
        for table, condition in (("checkpoints", latest), ("checkpoint_writes", latest),
                                 ("checkpoint_blobs", blob_kept)):
            rows = self.connection.execute(
                f"SELECT t.thread_id, sum(pg_column_size(t.*)) AS size FROM {table} t "
                f"WHERE t.thread_id = ANY(%s) {condition} GROUP BY t.thread_id",
                [thread_ids]).fetchall()
            for row in rows:
                freed[row["thread_id"]] += int(row["size"] or 0)
        return freed

    def prune(self, thread_ids: list[str], policy: Retention) -> None:
        # Short transactions of a chunk of emails each; rows are deleted by key, no table is
        # locked, so workers go on meanwhile.
        for start in range(0, len(thread_ids), POSTGRES_PRUNE_CHUNK):
            _postgres_prune(self.saver, thread_ids[start:start + POSTGRES_PRUNE_CHUNK], policy)


# ------------------------------------------------------------------------------- compaction


def _file_bytes(context: Context) -> int:
    path = context.checkpoint_path
    total = 0
    for suffix in ("", "-wal"):
        companion = path.with_name(path.name + suffix)
        total += companion.stat().st_size if companion.exists() else 0
    return total


def compact_sqlite(context: Context) -> None:
    """Give the checkpoint file's free pages back to the file system.

    Files created by this version use incremental auto-vacuum, so freeing is quick. An older
    file is rebuilt once with ``VACUUM``, which switches it to incremental mode; that needs
    free disk space about the size of what stays in the file.
    """
    from mediavault.agent.stores.checkpoints import SQLITE_BUSY_TIMEOUT_SECONDS

    connection = sqlite3.connect(str(context.checkpoint_path),
                                 timeout=SQLITE_BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        if connection.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:  # incremental
            # executescript steps the pragma to the end; execute() frees one page only.
            connection.executescript("PRAGMA incremental_vacuum;")
        else:
            connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
            connection.execute("VACUUM")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
