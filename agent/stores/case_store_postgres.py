"""The case store on PostgreSQL, shared by every worker; and the factory that picks a store.

:func:`open_case_store` returns the SQLite :class:`~agent.stores.case_store.CaseStore` in
``MEDIAVAULT_HOME`` by default, and a :class:`PostgresCaseStore` when ``MEDIAVAULT_STATE_DB``
names a Postgres server. The store and its rules are the same object on both (see
:mod:`agent.stores.case_store`); this module holds only the Postgres dialect. Timestamps are
stored as the same fixed-width UTC text, so the two stores' records compare equal.

Concurrency: every write runs in one transaction that first locks the case's row
(``SELECT ... FOR UPDATE``), so two workers recording for one email take turns, and inserts
are ``ON CONFLICT DO NOTHING`` on their natural keys. Schema migrations take an advisory lock,
so workers starting together do not race.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from mediavault.agent.stores.case_store import CaseSql, CaseStore, Clock, utc_now
from mediavault.agent.stores.checkpoints import _psycopg, uses_postgres_state
from mediavault.graph.context import ConfigurationError, Context

_T = TypeVar("_T")
#: Advisory-lock key that serialises migrations between workers ("MVCS").
_MIGRATION_LOCK_KEY = 0x4D56_4353


class _PostgresSql:
    """:class:`~agent.stores.case_store.CaseSql` over a psycopg cursor with dict rows."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    @staticmethod
    def _translate(sql: str) -> str:
        # The store's SQL is its own (no literal '?' or '%'); psycopg wants %s.
        return sql.replace("%", "%%").replace("?", "%s")

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        self._cursor.execute(self._translate(sql), list(params))
        return int(self._cursor.rowcount)

    def query(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        self._cursor.execute(self._translate(sql), list(params))
        return [dict(row) for row in self._cursor.fetchall()]


class PostgresCases:
    """The Postgres dialect: one connection per store, used by one thread at a time; a
    dropped connection is reopened once."""

    migrations_table = "case_store_migrations"
    lock_case = " FOR UPDATE"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.path = Path("<postgres>")  # kept for code that prints a store's location
        self._lock = threading.RLock()
        self._schema_ready = False
        self._conn: Any = None
        self._atomic_depth = 0

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

    def needs_schema(self) -> bool:
        return not self._schema_ready

    @contextmanager
    def atomic(self) -> Iterator[None]:
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

    def run(self, work: Callable[[CaseSql], _T], *, write: bool) -> _T:
        psycopg = _psycopg()
        with self._lock:
            if self._atomic_depth:  # inside atomic(): its transaction holds the writes
                with self._conn.cursor() as cursor:
                    return work(_PostgresSql(cursor))
            for attempt in range(2):
                connection = self._connection()
                try:
                    with connection.transaction(), connection.cursor() as cursor:
                        if not write:
                            cursor.execute("SET TRANSACTION READ ONLY")
                        return work(_PostgresSql(cursor))
                except psycopg.OperationalError:
                    # A dropped connection (server restart, idle timeout): reconnect once.
                    if not connection.closed or attempt == 1:
                        raise
                    self._conn = None
        raise AssertionError("unreachable")  # pragma: no cover

    def run_migrations(self, work: Callable[[CaseSql], _T]) -> _T:
        with self._lock:
            connection = self._connection()
            with connection.transaction(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_MIGRATION_LOCK_KEY])
                result = work(_PostgresSql(cursor))
            self._schema_ready = True
            return result

    def in_batch(self, column: str, values: Sequence[str]) -> tuple[str, object]:
        return f"{column} = ANY(?)", list(values)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class PostgresCaseStore(CaseStore):
    """The case store in the Postgres database ``dsn``; tables appear on first use.

    The same :class:`~agent.stores.case_store.CaseStore` over the Postgres dialect (a subclass
    only so that it has its own name and keeps its DSN out of logs).
    """

    def __init__(self, dsn: str, *, now: Clock = utc_now) -> None:
        self.dsn = dsn
        self._attach(PostgresCases(dsn), now=now)

    def __repr__(self) -> str:
        from mediavault.tools.business_db.postgres_loader import redact_dsn

        return f"PostgresCaseStore({redact_dsn(self.dsn)!r})"


def open_case_store(context: Context) -> CaseStore:
    """The case store the context asks for: Postgres if ``state_db`` is set, else SQLite."""
    if uses_postgres_state(context):
        dsn = (context.state_db or "").strip()
        if not dsn.lower().startswith(("postgresql://", "postgres://")):
            raise ConfigurationError(
                "MEDIAVAULT_STATE_DB must be a postgresql:// DSN; leave it unset to keep cases "
                "in MEDIAVAULT_HOME"
            )
        return PostgresCaseStore(dsn)
    return CaseStore(context.cases_path)
