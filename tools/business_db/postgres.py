"""The PostgreSQL business database: the same interface as the SQLite one, enforced by the server.

The application connects as ``mediavault_agent`` (provisioned by ``mediavault db init
--postgres``) and each layer holds on its own:

* the role may only SELECT the catalog tables and the scope views; it has no grant on any
  account table, no CREATE, no TEMP and no ``set_config``. Opening the database refuses a
  role that is a superuser, bypasses row security, owns the tables or may write to them;
* every query runs in a transaction the application opens ``READ ONLY``, in which the
  application itself sets the verified customer id (``SET LOCAL mediavault.customer_id``)
  and a ``statement_timeout``, and which it rolls back afterwards, so nothing a query does to
  the session outlives it;
* the account tables are under ``FORCE ROW LEVEL SECURITY``: with the setting unset or empty
  they show no row at all, with it set they show that customer's rows only;
* the query is sent with the extended protocol, which carries exactly one statement, and its
  rows are streamed and cut at the row and size caps; a watchdog cancels it client-side if the
  server has not stopped it shortly after its time budget.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from typing import Any

from mediavault.tools.business_db.postgres_loader import (
    ACCOUNT_TABLES,
    ACCOUNT_VIEWS,
    AGENT_ROLE,
    BUSINESS_DATE_SETTING,
    CATALOG_TABLES,
    CATALOG_VIEWS,
    CUSTOMER_SETTING,
    PRIVATE_SCHEMA,
    SCOPE_VIEWS,
    dsn_for_role,
    redact_dsn,
)
from mediavault.tools.business_db.sessions import (
    CATALOG_HINT,
    SCOPE_HINT,
    BusinessDatabase,
    BusinessDatabaseError,
    ColumnDescription,
    CustomerIdentity,
    DataAccessRefused,
    JsonScalar,
    QueryResult,
    SchemaDescription,
    ScopedSession,
    TableDescription,
    account_refusal,
    refuse_out_of_scope,
)
from mediavault.tools.business_db.sql_guard import guard_sql

#: Result size cap, as for SQLite: no support answer needs more.
MAX_RESULT_BYTES = 64 * 1024
#: How long after the time budget the client gives up waiting for the server's own timeout.
CLIENT_GRACE_SECONDS = 0.5
CONNECT_TIMEOUT_SECONDS = 10

_TABLE_NOTES: dict[str, str] = {
    "film": "films: rental_duration is the loan period in days; rental_rate and "
    "replacement_cost in dollars",
    "category": "film categories (genres)",
    "film_category": "which category each film belongs to",
    "language": "film languages",
    "actor": "actors",
    "film_actor": "which actors appear in each film",
    "film_text": "film titles and descriptions (text search copy of film)",
    "inventory": "physical copies of films, one row per copy, by store",
    "store": "the stores (store_id)",
    "my_account": "the sender's own customer record, with address and phone",
    "my_rentals": "the sender's rentals; due_date = rental_date + rental_duration days; "
    "return_date NULL means not returned yet",
    "my_payments": "the sender's payments; title is the rented film, when the payment "
    "belongs to a rental",
}
#: Account data by name, for a friendly refusal before the server's own.
_ACCOUNT_NAMES = frozenset(ACCOUNT_TABLES) | frozenset(ACCOUNT_VIEWS) | {"city", "country"}
_SCOPE_NAMES = frozenset(SCOPE_VIEWS)


def _account_refusal(table: str, *, verified: bool) -> DataAccessRefused:
    return account_refusal(table, verified=verified, account_names=_ACCOUNT_NAMES,
                           scope_names=_SCOPE_NAMES)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise BusinessDatabaseError(
            "Postgres business databases need the `postgres` extra: "
            "pip install 'mediavault-agent[postgres]'"
        ) from None
    return psycopg


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return line if len(line) <= 200 else line[:197] + "..."


def _json_value(value: object) -> JsonScalar:
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime):
        # The same text SQLite holds: "YYYY-MM-DD HH:MM:SS".
        return value.isoformat(sep=" ")
    if isinstance(value, date | clock_time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<binary, {len(bytes(value))} bytes>"
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return str(value)


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique: list[str] = []
    for name in names:
        count = seen.get(name, 0) + 1
        seen[name] = count
        unique.append(name if count == 1 else f"{name}_{count}")
    return unique


@dataclass(frozen=True, slots=True)
class FetchedRows:
    columns: list[str]
    rows: list[dict[str, JsonScalar]]
    truncation_note: str | None
    elapsed_ms: float


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


class PostgresScopedConnection:
    """One connection as the agent role, every query scoped to one customer (or to none).

    :meth:`execute` runs SQL exactly as given (the guard is the session's job) inside a
    read-only transaction the connection opens, scopes and rolls back itself.
    """

    def __init__(
        self,
        dsn: str,
        customer: CustomerIdentity | None,
        *,
        time_budget_seconds: float = 2.0,
        max_rows: int = 100,
        max_result_bytes: int = MAX_RESULT_BYTES,
    ) -> None:
        self.customer = customer
        self.time_budget_seconds = time_budget_seconds
        self.max_rows = max_rows
        self.max_result_bytes = max_result_bytes
        self._lock = threading.Lock()
        self._psycopg = _psycopg()
        self.connection = _connect(dsn)
        try:
            self.contacts = self._check_identity()
        except BaseException:
            self.connection.close()
            raise

    def _scope_value(self) -> str:
        # An int from a verified identity, never text from the model; '' fails closed.
        return "" if self.customer is None else str(int(self.customer.customer_id))

    def _begin(self) -> None:
        sql = self._psycopg.sql
        budget_ms = max(1, int(self.time_budget_seconds * 1000))
        self.connection.execute("BEGIN TRANSACTION READ ONLY")
        self.connection.execute(
            sql.SQL("SET LOCAL {} = {}").format(
                sql.Identifier(*CUSTOMER_SETTING.split(".")), sql.Literal(self._scope_value())
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
        email = str(rows[0]["email"] or "").strip().lower() if len(rows) == 1 else ""
        if email != self.customer.email.strip().lower():
            raise DataAccessRefused(
                "identity_mismatch",
                "The sender's identity does not match the customer on file; "
                "account data is unavailable.",
            )
        return frozenset(
            str(v).strip() for v in rows[0].values() if v is not None and str(v).strip()
        )

    def execute(self, sql: str, *, limit_hint: int | None = None) -> FetchedRows:
        """Run one statement in a fresh scoped read-only transaction; cap rows and bytes.

        Raises :class:`DataAccessRefused` for every database error.
        """
        psycopg = self._psycopg
        with self._lock:
            started = time.perf_counter()
            watchdog = QueryWatchdog(
                self.connection, self.time_budget_seconds + CLIENT_GRACE_SECONDS
            )
            try:
                self._begin()
                with watchdog, self.connection.cursor() as cursor:
                    columns, rows, note = self._fetch(cursor, sql, limit_hint)
            except psycopg.Error as error:
                refusal = self._explain(error, watchdog.fired)
                self._rollback()
                raise refusal from None
            except BaseException:
                self._rollback()
                raise
            self._rollback()
            elapsed_ms = (time.perf_counter() - started) * 1000
        return FetchedRows(columns, rows, note, round(elapsed_ms, 3))

    def _fetch(
        self, cursor: Any, sql: str, limit_hint: int | None
    ) -> tuple[list[str], list[dict[str, JsonScalar]], str | None]:
        rows: list[dict[str, JsonScalar]] = []
        columns: list[str] = []
        size = 0
        note: str | None = None
        # stream(): the extended protocol (one statement only) and rows one at a time, so
        # stopping at the cap never loads the rest of a huge result.
        stream = cursor.stream(sql)
        try:
            for raw in stream:
                if not columns:
                    columns = _unique_names([d.name for d in cursor.description or ()])
                if len(rows) >= self.max_rows:
                    note = (
                        f"more than {self.max_rows} rows; only the first {self.max_rows} returned"
                    )
                    break
                row = {name: _json_value(v) for name, v in zip(columns, raw, strict=True)}
                size += len(json.dumps(row, ensure_ascii=False))
                if size > self.max_result_bytes:
                    note = (
                        f"result exceeds {self.max_result_bytes // 1024} KiB; "
                        f"only the first {len(rows)} rows returned"
                    )
                    break
                rows.append(row)
        finally:
            stream.close()
        if not columns:
            columns = _unique_names([d.name for d in cursor.description or ()])
        if note is None and limit_hint is not None and len(rows) >= limit_hint:
            note = f"reached the {limit_hint}-row limit; more rows may exist"
        return columns, rows, note

    def _rollback(self) -> None:
        # A broken connection cannot roll back; the next query reports it.
        with suppress(self._psycopg.Error):
            self.connection.execute("ROLLBACK")

    def _explain(self, error: Any, watchdog_fired: bool) -> DataAccessRefused:
        errors = self._psycopg.errors
        text = _first_line(str(error))
        if watchdog_fired or isinstance(error, errors.QueryCanceled):
            return DataAccessRefused(
                "time_budget",
                f"The query ran past its {self.time_budget_seconds:g}-second time budget and "
                "was stopped. Narrow it: filter with WHERE, avoid cross joins, aggregate.",
            )
        if isinstance(error, errors.InsufficientPrivilege):
            table = text.rsplit(" ", 1)[-1] if "permission denied for" in text else ""
            if table in _ACCOUNT_NAMES or "permission denied for table" in text:
                return _account_refusal(table, verified=self.customer is not None)
            if "function" in text:
                name = table.split("(")[0] or "that function"
                return DataAccessRefused(
                    "function_not_allowed", f"Function {name}() is not allowed in a query."
                )
            return DataAccessRefused(
                "select_only", "Only reading with SELECT is allowed; that was refused."
            )
        if isinstance(error, errors.ReadOnlySqlTransaction):
            return DataAccessRefused(
                "select_only", "The business database is read-only; only SELECT queries run."
            )
        if "didn't produce a result" in text:  # a command such as SET: rolled back unseen
            return DataAccessRefused(
                "select_only", "Only SELECT queries run; that statement returns no rows."
            )
        if "multiple commands" in text:
            return DataAccessRefused("single_statement", "Send exactly one statement.")
        if isinstance(error, errors.UndefinedTable):
            return DataAccessRefused(
                "unknown_table",
                f"{text}. Query {CATALOG_HINT}"
                + (f", or {SCOPE_HINT}." if self.customer is not None else "."),
            )
        if isinstance(error, errors.ProgramLimitExceeded | errors.OutOfMemory | errors.DiskFull):
            return DataAccessRefused(
                "result_size", "The query builds a value that is too large; ask for less data."
            )
        if isinstance(error, self._psycopg.OperationalError | self._psycopg.InterfaceError):
            return DataAccessRefused(
                "database_unavailable",
                "The business database did not answer; try again shortly.",
            )
        return DataAccessRefused("query_error", f"The database rejected the query: {text}.")

    def close(self) -> None:
        with self._lock:
            self.connection.close()


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
            f"{_first_line(str(error))}"
        ) from None


class PostgresScopedSession(ScopedSession):
    """A :class:`ScopedSession` over a :class:`PostgresScopedConnection`, guard in front."""

    def __init__(
        self, database: PostgresBusinessDatabase, connection: PostgresScopedConnection
    ) -> None:
        self._database = database
        self._connection = connection

    @property
    def customer(self) -> CustomerIdentity | None:
        return self._connection.customer

    def run_query(self, sql: str) -> QueryResult:
        """Guard, scope-check and run one SELECT; see :meth:`ScopedSession.run_query`."""
        guarded = guard_sql(sql, dialect="postgres", max_rows=self._database.max_rows)
        refuse_out_of_scope(guarded.tables, verified=self.customer is not None,
                            account_names=_ACCOUNT_NAMES, scope_names=_SCOPE_NAMES)
        fetched = self._connection.execute(
            guarded.sql, limit_hint=guarded.limit if guarded.limit_rewritten else None
        )
        return QueryResult(
            sql=guarded.sql,
            columns=fetched.columns,
            rows=fetched.rows,
            row_count=len(fetched.rows),
            truncated=fetched.truncation_note is not None,
            truncation_note=fetched.truncation_note,
            elapsed_ms=fetched.elapsed_ms,
        )

    def describe_schema(self) -> SchemaDescription:
        """Catalog tables and views, plus the sender's own views when verified."""
        described = self._database.described
        tables = [
            described[name] for name in (*CATALOG_TABLES, *CATALOG_VIEWS) if name in described
        ]
        notes = [
            "Account tables (customer, address, rental, payment, staff, city, country) and "
            "views over them cannot be read directly.",
            "PostgreSQL syntax: dates are timestamps; use now(), interval '3 days', "
            "extract(day from ...), date_trunc('month', ...).",
            "Give computed columns an alias (count(*) AS rentals): the query is re-generated "
            "before it runs, so unaliased expressions get generated names.",
        ]
        if self.customer is not None:
            notes.append(
                f"The sender is verified as customer {self.customer.customer_id}; "
                "my_account, my_rentals and my_payments hold only their rows."
            )
            tables[:0] = [described[name] for name in SCOPE_VIEWS if name in described]
        else:
            notes.append(
                "The sender could not be verified, so account data is unavailable: "
                "catalog tables only."
            )
        return SchemaDescription(
            dialect="postgres",
            tables=tuple(tables),
            sender_verified=self.customer is not None,
            max_rows=self._database.max_rows,
            notes=tuple(notes),
        )

    def sender_contacts(self) -> set[str]:
        """The sender's own e-mail, phone and street address lines."""
        return set(self._connection.contacts)


class PostgresBusinessDatabase(BusinessDatabase):
    """A MediaVault Postgres database, reached as the SELECT-only agent role."""

    def __init__(self, dsn: str, *, time_budget_seconds: float = 2.0, max_rows: int = 100) -> None:
        if time_budget_seconds <= 0:
            raise ValueError("time_budget_seconds must be positive")
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self.dsn = dsn
        self.time_budget_seconds = time_budget_seconds
        self.max_rows = max_rows
        self._closed = False
        self.described, self.business_date_setting = self._inspect()

    def __repr__(self) -> str:
        return f"PostgresBusinessDatabase({redact_dsn(self.dsn)!r})"

    def _inspect(self) -> tuple[dict[str, TableDescription], date | None]:
        psycopg = _psycopg()
        connection = _connect(self.dsn)
        try:
            _refuse_privileged_role(connection, self.dsn)
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
                f"cannot inspect {redact_dsn(self.dsn)}: {_first_line(str(error))}"
            ) from None
        finally:
            connection.close()
        columns: dict[str, list[ColumnDescription]] = {}
        kinds: dict[str, str] = {}
        for table, column, type_, kind in rows:
            columns.setdefault(table, []).append(ColumnDescription(name=column, type=type_))
            kinds[table] = "view" if kind == "VIEW" else "table"
        missing = [name for name in (*SCOPE_VIEWS, "film", "inventory") if name not in columns]
        if missing:
            raise BusinessDatabaseError(
                f"{redact_dsn(self.dsn)} is not a MediaVault business database, or this role "
                f"cannot read {', '.join(missing)}; provision it with "
                "`mediavault db init --postgres ADMIN_DSN` and connect as mediavault_agent"
            )
        described = {
            name: TableDescription(
                name=name,
                kind="view" if kinds[name] == "view" else "table",
                columns=tuple(columns[name]),
                scoped_to_sender=name in _SCOPE_NAMES,
                description=_TABLE_NOTES.get(name, ""),
            )
            for name in names
            if name in columns
        }
        stamped: date | None = None
        if setting and setting[0]:
            try:
                stamped = date.fromisoformat(str(setting[0]))
            except ValueError:
                stamped = None
        return described, stamped

    def stamped_business_date(self) -> date | None:
        """The business date ``db init`` stored in the database, if any."""
        return self.business_date_setting

    def resolve_sender(self, address: str) -> CustomerIdentity | None:
        """Exactly one customer whose e-mail equals ``address`` ignoring case, else None."""
        self._check_open()
        wanted = address.strip().lower() if isinstance(address, str) else ""
        if "@" not in wanted or len(wanted) > 320 or "\x00" in wanted:
            return None
        psycopg = _psycopg()
        connection = _connect(self.dsn)
        try:
            rows = connection.execute(
                f"SELECT * FROM {PRIVATE_SCHEMA}.resolve_sender(%s)", [wanted]
            ).fetchall()
        except psycopg.Error as error:
            raise BusinessDatabaseError(
                f"cannot resolve the sender on {redact_dsn(self.dsn)}: {_first_line(str(error))}"
            ) from None
        finally:
            connection.close()
        if len(rows) != 1:  # unknown, or ambiguous: either way not verified
            return None
        return CustomerIdentity.from_row(rows[0])

    @contextmanager
    def session(self, customer: CustomerIdentity | None) -> Iterator[ScopedSession]:
        """A scoped session on its own connection, closed on exit."""
        self._check_open()
        connection = PostgresScopedConnection(
            self.dsn,
            customer,
            time_budget_seconds=self.time_budget_seconds,
            max_rows=self.max_rows,
        )
        try:
            yield PostgresScopedSession(self, connection)
        finally:
            connection.close()

    def close(self) -> None:
        """Further sessions are refused; each session closes its own connection."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise BusinessDatabaseError("the business database has been closed")


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
