"""The PostgreSQL business database: the same interface as the SQLite one, enforced by the server.

The application connects as ``mediavault_agent`` (provisioned by ``mediavault db init
--postgres``) and each layer holds on its own:

* the role may only SELECT the catalog tables and the scope views; it has no grant on any
  account table, no CREATE, no TEMP and no ``set_config``. Opening the database refuses a
  role that is a superuser, bypasses row security, owns the tables or may write to them;
* every query runs in a transaction the application opens ``READ ONLY``, in which the
  application itself binds the verified customer (``SET LOCAL mediavault.scope`` to a token
  signed with ``MEDIAVAULT_SCOPE_KEY`` for this connection's server backend) and a
  ``statement_timeout``, and which it rolls back afterwards, so nothing a query does to the
  session outlives it;
* the account tables are under ``FORCE ROW LEVEL SECURITY``: without a valid token they show
  no row at all, with one they show that customer's rows only; a session that loosened its
  timeouts or memory settings is refused every read;
* the query is sent with the extended protocol, which carries exactly one statement, and its
  rows are streamed and cut at the row and size caps; a watchdog cancels it client-side if the
  server has not stopped it shortly after its time budget.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from datetime import date
from itertools import chain
from typing import Any, TypeVar

from mediavault.tools.business_db.postgres_loader import (
    ACCOUNT_TABLES,
    ACCOUNT_VIEWS,
    AGENT_ROLE,
    BUSINESS_DATE_SETTING,
    CATALOG_TABLES,
    CATALOG_VIEWS,
    PRIVATE_SCHEMA,
    SCOPE_VIEWS,
    dsn_for_role,
    redact_dsn,
)
from mediavault.tools.business_db.scope_token import (
    IDENTIFY_BACKEND_SQL,
    SCOPE_SETTING,
    Backend,
    ScopeKeyError,
    scope_key_from_environment,
    sign_scope,
)
from mediavault.tools.business_db.scoped_session import (
    DialectConnection,
    DialectDatabase,
    RowConsumer,
    first_line,
    table_description,
)
from mediavault.tools.business_db.sessions import (
    BusinessDatabaseError,
    CustomerIdentity,
    DataAccessRefused,
    TableDescription,
)

_T = TypeVar("_T")
#: How long after the time budget the client gives up waiting for the server's own timeout.
CLIENT_GRACE_SECONDS = 0.5
#: How long a signed scope token stays valid after its transaction began (clock skew between
#: the application and the server is measured at connect and taken out).
SCOPE_TOKEN_SECONDS = 120
CONNECT_TIMEOUT_SECONDS = 10

#: Account data by name, for a friendly refusal before the server's own.
_ACCOUNT_NAMES = frozenset(ACCOUNT_TABLES) | frozenset(ACCOUNT_VIEWS) | {"city", "country"}
_SCOPE_NAMES = frozenset(SCOPE_VIEWS)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise BusinessDatabaseError(
            "Postgres business databases need the `postgres` extra: "
            "pip install 'mediavault-agent[postgres]'"
        ) from None
    return psycopg


class QueryWatchdog:
    """Cancels the running statement of ``connection`` if it outlives ``seconds``.

    The server's ``statement_timeout`` normally fires first; this is the client's own limit,
    for a server that does not answer in time.
    """

    def __init__(self, connection: Any, seconds: float) -> None:
        self._connection = connection
        self._timer = threading.Timer(seconds, self._cancel)
        self._timer.daemon = True
        self.fired = False

    def _cancel(self) -> None:
        self.fired = True
        # The query may have finished or the connection gone: then there is nothing to stop.
        with suppress(Exception):
            self._connection.cancel_safe(timeout=5.0)

    def __enter__(self) -> QueryWatchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


class PostgresScopedConnection(DialectConnection):
    """One connection as the agent role, every query scoped to one customer (or to none).

    :meth:`execute` runs SQL exactly as given (the guard is the session's job) inside a
    read-only transaction the connection opens, scopes and rolls back itself.
    """

    account_names = _ACCOUNT_NAMES
    scope_names = _SCOPE_NAMES

    def __init__(
        self, dsn: str, customer: CustomerIdentity | None, *,
        time_budget_seconds: float = 2.0, max_rows: int = 100, scope_key: bytes | None = None,
    ) -> None:  # fmt: skip
        # The result size cap is the shared one.
        super().__init__(customer, time_budget_seconds=time_budget_seconds, max_rows=max_rows)
        self._psycopg = _psycopg()
        self._scope_key = _required_scope_key(scope_key)
        self.connection = _connect(dsn)
        try:
            self._backend, self._clock_offset, self._timeout_ceiling_ms = _identify(
                self.connection
            )
            self.contacts = self._check_identity()
        except BaseException:
            self.connection.close()
            raise

    def _scope_token(self) -> str:
        """A token for this backend and the verified customer; '' (no rows) when unverified.

        The id is an int from a verified identity, never text from the model."""
        if self.customer is None:
            return ""
        expires = time.time() + self._clock_offset + SCOPE_TOKEN_SECONDS
        return sign_scope(
            self._scope_key, int(self.customer.customer_id), self._backend, int(expires)
        )

    def _begin(self) -> None:
        sql = self._psycopg.sql
        # Never above the role's own timeout: the server refuses a session that raised it.
        budget_ms = max(1, min(int(self.time_budget_seconds * 1000), self._timeout_ceiling_ms))
        self.connection.execute("BEGIN TRANSACTION READ ONLY")
        self.connection.execute(
            sql.SQL("SET LOCAL {} = {}").format(
                sql.Identifier(*SCOPE_SETTING.split(".")), sql.Literal(self._scope_token())
            )
        )
        self.connection.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(budget_ms))
        # Bounded memory per query whatever the role's defaults (the loader sets them too):
        # sorts and hashes spill to temp files (capped by the role's temp_file_limit).
        self.connection.execute(
            "SET LOCAL work_mem = '4MB'; SET LOCAL hash_mem_multiplier = 1; "
            "SET LOCAL max_parallel_workers_per_gather = 0")

    def _check_identity(self) -> frozenset[str]:
        if self.customer is None:
            return frozenset()
        rows = self.execute("SELECT email, phone, address, address2 FROM my_account").rows
        return self.verified_contacts(list(rows[0].values()) if len(rows) == 1 else None)

    def _run(self, sql: str, consume: RowConsumer[_T]) -> _T:
        watchdog = QueryWatchdog(self.connection, self.time_budget_seconds + CLIENT_GRACE_SECONDS)
        try:
            self._begin()
            with watchdog, self.connection.cursor() as cursor:
                # stream(): the extended protocol (one statement only) and rows one at a
                # time, so stopping at the cap never loads the rest of a huge result.
                stream = cursor.stream(sql)
                try:
                    first = next(stream, None)  # the columns are known once a row arrived
                    names = [d.name for d in cursor.description or ()]
                    return consume(names, stream if first is None else chain([first], stream))
                finally:
                    stream.close()
        except self._psycopg.Error as error:
            raise self._explain(error, watchdog.fired) from None
        finally:
            self._rollback()  # nothing a query did to the session outlives it

    def _rollback(self) -> None:
        # A broken connection cannot roll back; the next query reports it.
        with suppress(self._psycopg.Error):
            self.connection.execute("ROLLBACK")

    def _explain(self, error: Any, watchdog_fired: bool) -> DataAccessRefused:
        errors = self._psycopg.errors
        text = first_line(str(error))
        if watchdog_fired or isinstance(error, errors.QueryCanceled):
            return self.refusal("time_budget")
        if isinstance(error, errors.InsufficientPrivilege):
            table = text.rsplit(" ", 1)[-1] if "permission denied for" in text else ""
            if table in _ACCOUNT_NAMES or "permission denied for table" in text:
                return self.account_refusal(table)
            if "function" in text:
                return self.refusal("function", table.split("(")[0] or "that function")
            return self.refusal("not_a_read")
        if "didn't produce a result" in text:  # a command such as SET: rolled back unseen
            return self.refusal("no_rows")
        if "multiple commands" in text:
            return self.refusal("one_statement")
        kinds = (
            (errors.ReadOnlySqlTransaction, "read_only"),
            (errors.UndefinedTable, "unknown_table"),
            (errors.ProgramLimitExceeded | errors.OutOfMemory | errors.DiskFull, "too_large"),
            (self._psycopg.OperationalError | self._psycopg.InterfaceError, "unavailable"),
        )
        kind = next((kind for cls, kind in kinds if isinstance(error, cls)), "query_error")
        return self.refusal(kind, text)

    def close(self) -> None:
        with self._lock:
            self.connection.close()


def _required_scope_key(scope_key: bytes | None) -> bytes:
    if scope_key is not None:
        return scope_key
    try:
        return scope_key_from_environment()
    except ScopeKeyError as error:
        raise BusinessDatabaseError(str(error)) from None


def _identify(connection: Any) -> tuple[Backend, float, int]:
    """The backend a connection talks to, the server clock's offset from ours (seconds) and
    the session's statement timeout as the role set it (ms; 0 read as no ceiling)."""
    pid, started_us, server_now = connection.execute(IDENTIFY_BACKEND_SQL).fetchone()
    timeout = connection.execute(
        "SELECT setting::bigint FROM pg_catalog.pg_settings WHERE name = 'statement_timeout'"
    ).fetchone()[0]
    ceiling = int(timeout) if timeout else 2**31 - 1
    return Backend(int(pid), int(started_us)), float(server_now) - time.time(), ceiling


def _connect(dsn: str) -> Any:
    psycopg = _psycopg()
    try:
        return psycopg.connect(
            dsn,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name="mediavault-agent",
        )
    except psycopg.Error as error:
        raise BusinessDatabaseError(
            f"cannot connect to the Postgres business database {redact_dsn(dsn)}: "
            f"{first_line(str(error))}"
        ) from None


class PostgresBusinessDatabase(DialectDatabase):
    """A MediaVault Postgres database, reached as the SELECT-only agent role."""

    dialect = "postgres"
    dialect_notes = (
        "PostgreSQL syntax: dates are timestamps; use now(), interval '3 days', "
        "extract(day from ...), date_trunc('month', ...).",
    )

    def __init__(
        self, dsn: str, *, time_budget_seconds: float = 2.0, max_rows: int = 100,
        scope_key: bytes | None = None,
    ) -> None:  # fmt: skip
        super().__init__(time_budget_seconds=time_budget_seconds, max_rows=max_rows)
        self.dsn = dsn
        self.described, self.business_date_setting, self.scope_key = self._inspect(scope_key)

    def __repr__(self) -> str:
        return f"PostgresBusinessDatabase({redact_dsn(self.dsn)!r})"

    def _inspect(
        self, scope_key: bytes | None
    ) -> tuple[dict[str, TableDescription], date | None, bytes]:
        """Check the role, the scope key and the schema; describe what sessions may read."""
        psycopg = _psycopg()
        connection = _connect(self.dsn)
        try:
            _refuse_privileged_role(connection, self.dsn)
            # After connecting: an unreachable server is the first thing to report.
            key = _required_scope_key(scope_key)
            _check_scope_key(connection, key, self.dsn)
            names = [*CATALOG_TABLES, *CATALOG_VIEWS, *SCOPE_VIEWS]
            rows = connection.execute(
                "SELECT c.table_name, c.column_name, c.data_type, t.table_type "
                "FROM information_schema.columns AS c JOIN information_schema.tables AS t "
                "USING (table_schema, table_name) "
                "WHERE c.table_schema = 'public' AND c.table_name = ANY(%s) "
                "ORDER BY c.table_name, c.ordinal_position",
                [names],
            ).fetchall()
            setting = connection.execute(
                "SELECT current_setting(%s, true)", [BUSINESS_DATE_SETTING]
            ).fetchone()
        except psycopg.Error as error:
            raise BusinessDatabaseError(
                f"cannot inspect {redact_dsn(self.dsn)}: {first_line(str(error))}"
            ) from None
        finally:
            connection.close()
        columns: dict[str, list[tuple[str, str]]] = {}
        kinds: dict[str, str] = {}
        for table, column, type_, kind in rows:
            columns.setdefault(table, []).append((column, type_))
            kinds[table] = "view" if kind == "VIEW" else "table"
        missing = [name for name in (*SCOPE_VIEWS, "film", "inventory") if name not in columns]
        if missing:
            raise BusinessDatabaseError(
                f"{redact_dsn(self.dsn)} is not a MediaVault business database, or this role "
                f"cannot read {', '.join(missing)}; provision it with "
                "`mediavault db init --postgres ADMIN_DSN` and connect as mediavault_agent"
            )
        described = {
            name: table_description(name, kinds[name], columns[name])
            for name in names
            if name in columns
        }
        stamped: date | None = None
        if setting and setting[0]:
            try:
                stamped = date.fromisoformat(str(setting[0]))
            except ValueError:
                stamped = None
        return described, stamped, key

    def stamped_business_date(self) -> date | None:
        """The business date ``db init`` stored in the database, if any."""
        return self.business_date_setting

    def catalog_tables(self) -> Sequence[TableDescription]:
        described = self.described
        return [described[name] for name in (*CATALOG_TABLES, *CATALOG_VIEWS) if name in described]

    def scope_tables(self) -> Sequence[TableDescription]:
        return [self.described[name] for name in SCOPE_VIEWS if name in self.described]

    def _customers_with_address(self, address: str) -> list[Sequence[object]]:
        psycopg = _psycopg()
        connection = _connect(self.dsn)
        try:
            rows: list[Sequence[object]] = connection.execute(
                f"SELECT * FROM {PRIVATE_SCHEMA}.resolve_sender(%s)", [address]
            ).fetchall()
        except psycopg.Error as error:
            raise BusinessDatabaseError(
                f"cannot resolve the sender on {redact_dsn(self.dsn)}: {first_line(str(error))}"
            ) from None
        finally:
            connection.close()
        return rows

    def _scoped_connection(self, customer: CustomerIdentity | None) -> PostgresScopedConnection:
        return PostgresScopedConnection(
            self.dsn, customer, time_budget_seconds=self.time_budget_seconds,
            max_rows=self.max_rows, scope_key=self.scope_key,
        )  # fmt: skip


def _check_scope_key(connection: Any, key: bytes, dsn: str) -> None:
    """Refuse a key that is not the one ``db init`` stored: every verified sender would
    otherwise find no account of their own."""
    errors = _psycopg().errors
    backend, offset, _ = _identify(connection)
    token = sign_scope(key, 1, backend, int(time.time() + offset + SCOPE_TOKEN_SECONDS))
    try:
        (answer,) = connection.execute(
            f"SELECT {PRIVATE_SCHEMA}.scope_customer_id(%s, %s)", [token, backend.started_us]
        ).fetchone()
    except errors.UndefinedFunction:
        raise BusinessDatabaseError(
            f"{redact_dsn(dsn)} was provisioned by an older version without signed scopes; "
            "provision it again with `mediavault db init --postgres ADMIN_DSN --force`"
        ) from None
    if answer != 1:
        raise BusinessDatabaseError(
            f"MEDIAVAULT_SCOPE_KEY is not the key `db init` stored in {redact_dsn(dsn)}; set "
            "the value it printed (or provision again with the key you have)"
        )


def _refuse_privileged_role(connection: Any, dsn: str) -> None:
    """Refuse to run agent queries as a role that row security or grants would not hold."""
    row = connection.execute(
        """
        WITH business AS (
          SELECT c.oid, c.relname, pg_get_userbyid(c.relowner) AS owner
          FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
        )
        SELECT r.rolname, r.rolsuper, r.rolbypassrls,
          EXISTS (SELECT 1 FROM business AS b WHERE pg_has_role(current_user, b.owner, 'MEMBER')),
          EXISTS (SELECT 1 FROM business AS b
                  WHERE has_table_privilege(b.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')),
          EXISTS (SELECT 1 FROM business AS b
                  WHERE b.relname = ANY(%s) AND has_table_privilege(b.oid, 'SELECT'))
        FROM pg_roles AS r WHERE r.rolname = current_user
        """,
        [list(ACCOUNT_TABLES)],
    ).fetchone()
    role, superuser, bypass, owner, writer, account_reader = row
    problem = None
    if superuser:
        problem = "is a superuser"
    elif bypass:
        problem = "bypasses row-level security"
    elif owner:
        problem = "owns the business tables"
    elif writer:
        problem = "may write to the business tables"
    elif account_reader:
        problem = "may read the account tables directly"
    if problem:
        raise BusinessDatabaseError(
            f"refusing to run agent queries as role {role!r}: it {problem}. Connect as the "
            "SELECT-only role provisioned by `mediavault db init --postgres`, e.g. "
            f"{dsn_for_role(dsn, AGENT_ROLE)}"
        )
