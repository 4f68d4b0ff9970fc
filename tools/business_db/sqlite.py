"""The SQLite business database: read-only, sender-scoped, time- and size-limited.

Each layer holds on its own, even if the SQL guard were bypassed:

* the file is opened read-only (URI ``mode=ro``) and ``query_only`` is switched on;
* the verified sender's rows are copied into per-session TEMP tables (``my_account``,
  ``my_rentals``, ``my_payments``) before an authorizer is installed; from then on the
  authorizer lets a statement read only catalog tables and those TEMP tables, call only
  allowlisted functions, and do nothing else. Account tables (customer, address, rental,
  payment, staff, city, country) and every view built on them are unreadable;
* ATTACH is impossible (limit 0), a progress handler stops a query past its time budget, and
  results are capped in rows and bytes.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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
from mediavault.tools.business_db.sql_guard import allowed_functions, guard_sql

#: Catalog tables: no customer data, readable by every session.
CATALOG_TABLES: dict[str, str] = {
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
}
#: Account tables: every customer's data. Only reachable through the sender's TEMP tables.
ACCOUNT_TABLES = frozenset({"customer", "address", "rental", "payment", "staff", "city", "country"})
#: Sakila views that read account tables; the authorizer denies them, this gives the reason.
ACCOUNT_VIEWS = frozenset(
    {"customer_list", "staff_list", "sales_by_store", "sales_by_film_category"}
)
#: The tables every Sakila database has; scope building and the catalog rely on them.
REQUIRED_TABLES = frozenset(
    {"customer", "address", "city", "country", "rental", "payment", "inventory", "film",
     "store", "staff", "language", "category", "film_category", "actor", "film_actor"}
)  # fmt: skip

SQLITE_HEADER = b"SQLite format 3\x00"
#: Result size cap: a reply that large is never what a support answer needs.
MAX_RESULT_BYTES = 64 * 1024
#: Longest string or blob any expression may build (randomblob, printf, replace, ...). No
#: larger than a whole result: one call of instr() or replace() on values built up to this
#: size runs in a single step the time budget cannot stop (1 MB values took ~25 s).
MAX_VALUE_BYTES = MAX_RESULT_BYTES
#: Longest statement text SQLite will accept after the guard's rewrite.
MAX_STATEMENT_BYTES = 20_000
#: VM instructions between time-budget checks (a few tens of microseconds of work).
PROGRESS_INTERVAL = 10_000


@dataclass(frozen=True, slots=True)
class _ScopeTable:
    name: str
    description: str
    columns: tuple[tuple[str, str], ...]
    fill_sql: str

    def create_sql(self) -> str:
        columns = ", ".join(f"{name} {type_}" for name, type_ in self.columns)
        return f"CREATE TEMP TABLE {self.name} ({columns})"

    def insert_sql(self) -> str:
        names = ", ".join(name for name, _ in self.columns)
        return f"INSERT INTO temp.{self.name} ({names}) {self.fill_sql}"


SCOPE_TABLES: tuple[_ScopeTable, ...] = (
    _ScopeTable(
        name="my_account",
        description="the sender's own customer record, with address and phone",
        columns=(
            ("customer_id", "INTEGER"), ("store_id", "INTEGER"), ("first_name", "TEXT"),
            ("last_name", "TEXT"), ("email", "TEXT"), ("active", "INTEGER"),
            ("create_date", "TEXT"), ("address", "TEXT"), ("address2", "TEXT"),
            ("district", "TEXT"), ("city", "TEXT"), ("postal_code", "TEXT"),
            ("country", "TEXT"), ("phone", "TEXT"),
        ),
        fill_sql="""
            SELECT c.customer_id, c.store_id, c.first_name, c.last_name, c.email,
                   CASE WHEN c.active IN (1, '1', 'Y', 'y', 'true', 'TRUE') THEN 1 ELSE 0 END,
                   c.create_date, a.address, a.address2, a.district, ci.city, a.postal_code,
                   co.country, a.phone
            FROM main.customer AS c
            LEFT JOIN main.address AS a ON a.address_id = c.address_id
            LEFT JOIN main.city AS ci ON ci.city_id = a.city_id
            LEFT JOIN main.country AS co ON co.country_id = ci.country_id
            WHERE c.customer_id = :customer_id""",
    ),
    _ScopeTable(
        name="my_rentals",
        description="the sender's rentals; due_date = rental_date + rental_duration days; "
        "return_date NULL means not returned yet",
        columns=(
            ("rental_id", "INTEGER"), ("film_id", "INTEGER"), ("title", "TEXT"),
            ("inventory_id", "INTEGER"), ("store_id", "INTEGER"), ("rental_date", "TEXT"),
            ("return_date", "TEXT"), ("due_date", "TEXT"), ("rental_duration", "INTEGER"),
            ("rental_rate", "REAL"), ("replacement_cost", "REAL"),
        ),
        fill_sql="""
            SELECT r.rental_id, i.film_id, f.title, r.inventory_id, i.store_id, r.rental_date,
                   r.return_date,
                   datetime(r.rental_date, '+' || f.rental_duration || ' days'),
                   f.rental_duration, f.rental_rate, f.replacement_cost
            FROM main.rental AS r
            LEFT JOIN main.inventory AS i ON i.inventory_id = r.inventory_id
            LEFT JOIN main.film AS f ON f.film_id = i.film_id
            WHERE r.customer_id = :customer_id""",
    ),
    _ScopeTable(
        name="my_payments",
        description="the sender's payments; title is the rented film, when the payment "
        "belongs to a rental",
        columns=(
            ("payment_id", "INTEGER"), ("rental_id", "INTEGER"), ("amount", "REAL"),
            ("payment_date", "TEXT"), ("title", "TEXT"),
        ),
        fill_sql="""
            SELECT p.payment_id, p.rental_id, p.amount, p.payment_date, f.title
            FROM main.payment AS p
            LEFT JOIN main.rental AS r ON r.rental_id = p.rental_id
            LEFT JOIN main.inventory AS i ON i.inventory_id = r.inventory_id
            LEFT JOIN main.film AS f ON f.film_id = i.film_id
            WHERE p.customer_id = :customer_id""",
    ),
)  # fmt: skip
SCOPE_TABLE_NAMES = frozenset(table.name for table in SCOPE_TABLES)

_ACCOUNT_NAMES = frozenset(ACCOUNT_TABLES) | frozenset(ACCOUNT_VIEWS)


def _account_refusal(table: str, *, verified: bool) -> DataAccessRefused:
    return account_refusal(table, verified=verified, account_names=_ACCOUNT_NAMES,
                           scope_names=SCOPE_TABLE_NAMES)


#: What one guard-approved query may hold in memory: the page cache below, the sorter's
#: in-memory runs (sized from it) and the capped result (MAX_RESULT_BYTES) stay well under it;
#: a test measures the peak of hostile queries against this figure.
SQL_MEMORY_BYTES = 64 * 1024 * 1024
SQL_CACHE_KIB = 8 * 1024


def _read_only_uri(path: Path) -> str:
    # as_uri() percent-encodes '?', '#', '%' and spaces, so no path can smuggle URI options.
    return f"{path.resolve().as_uri()}?mode=ro"


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to ``path`` (URI ``mode=ro``); TEMP tables stay in memory."""
    conn = sqlite3.connect(
        _read_only_uri(path), uri=True, isolation_level=None, check_same_thread=False
    )
    try:
        # Memory per query stays bounded (see SQL_MEMORY_BYTES): sorts, DISTINCT, GROUP BY and
        # window frames larger than the page cache spill to an anonymous temporary file in
        # the system's temp directory (deleted on close, never next to the database file);
        # TEMP tables live there too. The page cache is capped and nothing is memory-mapped.
        conn.execute("PRAGMA temp_store = FILE")
        conn.execute(f"PRAGMA cache_size = -{SQL_CACHE_KIB}")
        conn.execute("PRAGMA mmap_size = 0")
        conn.execute("PRAGMA trusted_schema = OFF")
    except BaseException:
        conn.close()
        raise
    return conn


class _QueryClock:
    """Progress handler that stops a statement once its time budget is spent."""

    def __init__(self, budget_seconds: float) -> None:
        self.budget_seconds = budget_seconds
        self.deadline = time.monotonic() + budget_seconds
        self.expired = False

    def start(self) -> None:
        self.deadline = time.monotonic() + self.budget_seconds
        self.expired = False

    def __call__(self) -> int:
        if time.monotonic() > self.deadline:
            self.expired = True
            return 1  # non-zero interrupts the statement
        return 0


class ScopeAuthorizer:
    """SQLite authorizer: SELECT over the catalog and the sender's TEMP tables, nothing else."""

    def __init__(
        self,
        scope_tables: frozenset[str],
        functions: frozenset[str],
        catalog_views: frozenset[str] = frozenset(),
    ) -> None:
        self.scope_tables = scope_tables
        self.functions = functions
        # Reading a view is reported as a read of the view and, separately, of every table it
        # reads; a view is listed here only if those tables are all catalog tables.
        self.catalog = frozenset(CATALOG_TABLES) | catalog_views
        self.readable = self.catalog | scope_tables
        self.denials: list[tuple[int, str]] = []

    def __call__(
        self,
        action: int,
        arg1: str | None,
        arg2: str | None,
        db_name: str | None,
        source: str | None,
    ) -> int:
        # ``source`` is the trigger or view (or CTE!) the access comes from; it can be named
        # anything by the query, so decisions rest on the table and database name only.
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION:
            if (arg2 or "").lower() in self.functions:
                return sqlite3.SQLITE_OK
            self.denials.append((action, arg2 or ""))
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_READ:
            table = (arg1 or "").lower()
            if db_name == "main" and table in self.catalog:
                return sqlite3.SQLITE_OK
            if db_name == "temp" and table in self.scope_tables:
                return sqlite3.SQLITE_OK
            # A read of no particular column (count(*), rowid) is reported without a
            # database name; scope and catalog names are distinct, checked at open.
            if db_name is None and arg2 == "" and table in self.readable:
                return sqlite3.SQLITE_OK
            self.denials.append((action, table))
            return sqlite3.SQLITE_DENY
        self.denials.append((action, arg1 or ""))
        return sqlite3.SQLITE_DENY


@dataclass(frozen=True, slots=True)
class FetchedRows:
    columns: list[str]
    rows: list[dict[str, JsonScalar]]
    truncation_note: str | None
    elapsed_ms: float


class ScopedConnection:
    """The connection layer: one read-only SQLite connection scoped to one sender.

    It enforces read-only access, the sender scope, the time budget and the result caps by
    itself; :meth:`execute` runs SQL exactly as given (the guard is the session's job).
    ``customer=None`` gives catalog access only.
    """

    def __init__(
        self,
        path: Path,
        customer: CustomerIdentity | None,
        *,
        time_budget_seconds: float = 2.0,
        max_rows: int = 100,
        max_result_bytes: int = MAX_RESULT_BYTES,
        catalog_views: frozenset[str] = frozenset(),
    ) -> None:
        self.customer = customer
        self.max_rows = max_rows
        self.max_result_bytes = max_result_bytes
        self._lock = threading.Lock()
        self.connection = connect_read_only(path)
        try:
            self.contacts = self._build_scope(customer)
            self._clock = _QueryClock(time_budget_seconds)
            self._authorizer = ScopeAuthorizer(
                SCOPE_TABLE_NAMES if customer is not None else frozenset(),
                allowed_functions("sqlite"),
                catalog_views,
            )
            self._lock_down()
        except BaseException:
            self.connection.close()
            raise

    def _build_scope(self, customer: CustomerIdentity | None) -> frozenset[str]:
        """Copy the sender's rows into TEMP tables; return their own contact details."""
        if customer is None:
            return frozenset()
        conn = self.connection
        for table in SCOPE_TABLES:
            conn.execute(table.create_sql())
            conn.execute(table.insert_sql(), {"customer_id": customer.customer_id})
        row = conn.execute("SELECT email, phone, address, address2 FROM temp.my_account").fetchone()
        if row is None or str(row[0] or "").strip().lower() != customer.email.strip().lower():
            raise DataAccessRefused(
                "identity_mismatch",
                "The sender's identity does not match the customer on file; "
                "account data is unavailable.",
            )
        return frozenset(str(v).strip() for v in row if v is not None and str(v).strip())

    def _lock_down(self) -> None:
        conn = self.connection
        # Even writes to the TEMP tables are refused from here on.
        conn.execute("PRAGMA query_only = ON")
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_STATEMENT_BYTES)
        conn.set_progress_handler(self._clock, PROGRESS_INTERVAL)
        # Installed last: building the scope above needed to read the account tables.
        conn.set_authorizer(self._authorizer)

    def execute(self, sql: str, *, limit_hint: int | None = None) -> FetchedRows:
        """Run ``sql`` and fetch at most ``max_rows`` rows and ``max_result_bytes`` of JSON.

        ``limit_hint`` is the LIMIT the guard imposed, so that hitting it counts as
        truncation. Raises :class:`DataAccessRefused` for every database error.
        """
        with self._lock:
            self._authorizer.denials.clear()
            self._clock.start()
            started = time.perf_counter()
            try:
                cursor = self.connection.execute(sql)
                try:
                    fetched = self._fetch(cursor, limit_hint)
                finally:
                    cursor.close()
            except (sqlite3.Error, sqlite3.Warning) as error:
                raise self._explain(error) from None
            columns, rows, note = fetched
            elapsed_ms = (time.perf_counter() - started) * 1000
        return FetchedRows(columns, rows, note, round(elapsed_ms, 3))

    def _fetch(
        self, cursor: sqlite3.Cursor, limit_hint: int | None
    ) -> tuple[list[str], list[dict[str, JsonScalar]], str | None]:
        columns = _unique_names([d[0] for d in cursor.description or ()])
        rows: list[dict[str, JsonScalar]] = []
        size = 0
        note: str | None = None
        for raw in cursor:
            if len(rows) >= self.max_rows:
                note = f"more than {self.max_rows} rows; only the first {self.max_rows} returned"
                break
            row = {name: _json_value(value) for name, value in zip(columns, raw, strict=True)}
            size += len(json.dumps(row, ensure_ascii=False))
            if size > self.max_result_bytes:
                note = (
                    f"result exceeds {self.max_result_bytes // 1024} KiB; "
                    f"only the first {len(rows)} rows returned"
                )
                break
            rows.append(row)
        if note is None and limit_hint is not None and len(rows) >= limit_hint:
            note = f"reached the {limit_hint}-row limit; more rows may exist"
        return columns, rows, note

    def _explain(self, error: sqlite3.Error | sqlite3.Warning) -> DataAccessRefused:
        text = str(error)
        if self._clock.expired or text == "interrupted":
            return DataAccessRefused(
                "time_budget",
                f"The query ran past its {self._clock.budget_seconds:g}-second time budget and "
                "was stopped. Narrow it: filter with WHERE, avoid cross joins, aggregate.",
            )
        if self._authorizer.denials or "not authorized" in text:
            return self._denial_refusal()
        if "too big" in text:
            return DataAccessRefused(
                "result_size", "The query builds a value that is too large; ask for less data."
            )
        if "readonly" in text or "read-only" in text or "query_only" in text:
            return DataAccessRefused(
                "select_only", "The business database is read-only; only SELECT queries run."
            )
        if "one statement" in text:
            return DataAccessRefused("single_statement", "Send exactly one statement.")
        if "no such table" in text:
            return DataAccessRefused(
                "unknown_table",
                f"{_first_line(text)}. Query {CATALOG_HINT}"
                + (f", or {SCOPE_HINT}." if self.customer is not None else "."),
            )
        return DataAccessRefused(
            "query_error", f"The database rejected the query: {_first_line(text)}."
        )

    def _denial_refusal(self) -> DataAccessRefused:
        action, name = self._authorizer.denials[0] if self._authorizer.denials else (-1, "")
        if action == sqlite3.SQLITE_READ:
            return _account_refusal(name, verified=self.customer is not None)
        if action == sqlite3.SQLITE_FUNCTION:
            return DataAccessRefused(
                "function_not_allowed", f"Function {name}() is not allowed in a query."
            )
        return DataAccessRefused(
            "select_only",
            "Only reading with SELECT is allowed; writes, PRAGMA, ATTACH and schema changes "
            "are refused.",
        )

    def close(self) -> None:
        with self._lock:
            self.connection.close()


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique: list[str] = []
    for name in names:
        count = seen.get(name, 0) + 1
        seen[name] = count
        unique.append(name if count == 1 else f"{name}_{count}")
    return unique


def _json_value(value: object) -> JsonScalar:
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        return f"<binary, {len(value)} bytes>"
    return str(value)


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return line if len(line) <= 200 else line[:197] + "..."


class SqliteScopedSession(ScopedSession):
    """A :class:`ScopedSession` over a :class:`ScopedConnection`, with the guard in front."""

    def __init__(self, database: SqliteBusinessDatabase, connection: ScopedConnection) -> None:
        self._database = database
        self._connection = connection

    @property
    def customer(self) -> CustomerIdentity | None:
        return self._connection.customer

    def run_query(self, sql: str) -> QueryResult:
        """Guard, scope-check and run one SELECT; see :meth:`ScopedSession.run_query`."""
        guarded = guard_sql(sql, dialect="sqlite", max_rows=self._database.max_rows)
        # A friendlier refusal than the authorizer's, which still has the final word.
        refuse_out_of_scope(guarded.tables, verified=self.customer is not None,
                            account_names=_ACCOUNT_NAMES, scope_names=SCOPE_TABLE_NAMES)
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
        """Catalog tables and views, plus the sender's own tables when verified."""
        tables = list(self._database.catalog_description)
        notes = [
            "Account tables (customer, address, rental, payment, staff, city, country) and "
            "views over them cannot be read directly.",
            "Give computed columns an alias (count(*) AS rentals): the query is re-generated "
            "before it runs, so unaliased expressions get generated names.",
        ]
        if self.customer is not None:
            notes.append(
                f"The sender is verified as customer {self.customer.customer_id}; "
                "my_account, my_rentals and my_payments hold only their rows."
            )
            tables[:0] = [
                TableDescription(
                    name=t.name,
                    kind="table",
                    columns=tuple(ColumnDescription(name=n, type=ty) for n, ty in t.columns),
                    scoped_to_sender=True,
                    description=t.description,
                )
                for t in SCOPE_TABLES
            ]
        else:
            notes.append(
                "The sender could not be verified, so account data is unavailable: "
                "catalog tables only."
            )
        return SchemaDescription(
            dialect="sqlite",
            tables=tuple(tables),
            sender_verified=self.customer is not None,
            max_rows=self._database.max_rows,
            notes=tuple(notes),
        )

    def sender_contacts(self) -> set[str]:
        """The sender's own e-mail, phone and street address lines."""
        return set(self._connection.contacts)


class SqliteBusinessDatabase(BusinessDatabase):
    """A Sakila SQLite file, opened read-only for every session."""

    def __init__(
        self, path: Path, *, time_budget_seconds: float = 2.0, max_rows: int = 100
    ) -> None:
        if time_budget_seconds <= 0:
            raise ValueError("time_budget_seconds must be positive")
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self.path = Path(path)
        self.time_budget_seconds = time_budget_seconds
        self.max_rows = max_rows
        self._closed = False
        _check_file(self.path)
        self.catalog_description = self._inspect()
        self.catalog_views = frozenset(t.name for t in self.catalog_description if t.kind == "view")

    def _inspect(self) -> tuple[TableDescription, ...]:
        """Check the Sakila shape; describe the catalog tables and the views open to all."""
        try:
            conn = connect_read_only(self.path)
        except sqlite3.Error as error:
            raise BusinessDatabaseError(f"cannot open {self.path}: {error}") from None
        try:
            objects = conn.execute(
                "SELECT lower(name), type FROM sqlite_master WHERE type IN ('table', 'view')"
            ).fetchall()
            kinds = dict(objects)
            missing = sorted(REQUIRED_TABLES - {n for n, t in objects if t == "table"})
            if missing:
                raise BusinessDatabaseError(
                    f"{self.path} is not a Sakila database: missing tables {', '.join(missing)}"
                )
            clashes = sorted(SCOPE_TABLE_NAMES & set(kinds))
            if clashes:
                raise BusinessDatabaseError(
                    f"{self.path} has tables named {', '.join(clashes)}, which are reserved "
                    "for the sender's own rows; rename them"
                )
            for table in SCOPE_TABLES:  # the account columns the scope needs are present
                conn.execute(f"EXPLAIN {table.fill_sql}", {"customer_id": -1}).fetchall()
            description = [
                _describe(conn, name, "table", CATALOG_TABLES[name])
                for name in CATALOG_TABLES
                if kinds.get(name) == "table"
            ]
            description += self._open_views(conn, sorted(n for n, t in objects if t == "view"))
        except sqlite3.DatabaseError as error:
            raise BusinessDatabaseError(
                f"{self.path} is not a usable Sakila SQLite database: {_first_line(str(error))}"
            ) from None
        finally:
            conn.close()
        return tuple(description)

    def _open_views(self, conn: sqlite3.Connection, views: list[str]) -> list[TableDescription]:
        """Views every session may read: those that read nothing but catalog tables.

        Each view is probed under the authorizer with every view name readable; the tables
        behind a view are still checked one by one, so only catalog-only views pass.
        """
        described = [_describe(conn, name, "view", "") for name in views]
        probe = ScopedConnection(
            self.path,
            None,
            time_budget_seconds=self.time_budget_seconds,
            catalog_views=frozenset(views),
        )
        try:
            allowed = []
            for view in described:
                quoted = view.name.replace('"', '""')
                try:
                    probe.execute(f'SELECT * FROM main."{quoted}" LIMIT 0')
                except DataAccessRefused:
                    continue
                allowed.append(view)
        finally:
            probe.close()
        return allowed

    def resolve_sender(self, address: str) -> CustomerIdentity | None:
        """Exactly one customer whose e-mail equals ``address`` ignoring case, else None."""
        self._check_open()
        wanted = address.strip().lower() if isinstance(address, str) else ""
        if "@" not in wanted or len(wanted) > 320:
            return None
        try:
            conn = connect_read_only(self.path)
        except sqlite3.Error as error:
            raise BusinessDatabaseError(f"cannot open {self.path}: {error}") from None
        try:
            rows = conn.execute(
                "SELECT customer_id, first_name, last_name, email, active, store_id "
                "FROM main.customer WHERE lower(trim(email)) = :address LIMIT 2",
                {"address": wanted},
            ).fetchall()
        finally:
            conn.close()
        if len(rows) != 1:  # unknown, or ambiguous: either way not verified
            return None
        return CustomerIdentity.from_row(rows[0])

    @contextmanager
    def session(self, customer: CustomerIdentity | None) -> Iterator[ScopedSession]:
        """A scoped session on its own read-only connection, closed on exit."""
        self._check_open()
        try:
            connection = ScopedConnection(
                self.path,
                customer,
                time_budget_seconds=self.time_budget_seconds,
                max_rows=self.max_rows,
                catalog_views=self.catalog_views,
            )
        except sqlite3.Error as error:
            raise BusinessDatabaseError(f"cannot open {self.path}: {error}") from None
        try:
            yield SqliteScopedSession(self, connection)
        finally:
            connection.close()

    def close(self) -> None:
        """Further sessions are refused; each session closes its own connection."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise BusinessDatabaseError("the business database has been closed")


def _describe(conn: sqlite3.Connection, name: str, kind: str, text: str) -> TableDescription:
    quoted = name.replace('"', '""')
    columns = tuple(
        ColumnDescription(name=str(row[1]), type=str(row[2] or ""))
        for row in conn.execute(f'PRAGMA main.table_info("{quoted}")')
    )
    return TableDescription(
        name=name, kind="view" if kind == "view" else "table", columns=columns, description=text
    )


def _check_file(path: Path) -> None:
    if not path.exists():
        raise BusinessDatabaseError(
            f"business database not found: {path}. Build the demo database with "
            "`mediavault db init`, or point --db / MEDIAVAULT_DB at a Sakila SQLite file."
        )
    if not path.is_file():
        raise BusinessDatabaseError(f"business database {path} is not a file")
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as error:
        raise BusinessDatabaseError(f"cannot read business database {path}: {error}") from None
    if header != SQLITE_HEADER:
        raise BusinessDatabaseError(f"{path} is not a SQLite database file")
