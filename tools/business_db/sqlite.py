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

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from mediavault.tools.business_db.scoped_session import (
    MAX_RESULT_BYTES,
    DialectConnection,
    DialectDatabase,
    RowConsumer,
    table_description,
)
from mediavault.tools.business_db.sessions import (
    CATALOG_NOTES,
    BusinessDatabaseError,
    CustomerIdentity,
    DataAccessRefused,
    TableDescription,
)
from mediavault.tools.business_db.sql_guard import allowed_functions

_T = TypeVar("_T")

#: Catalog tables: no customer data, readable by every session.
CATALOG_TABLES: dict[str, str] = CATALOG_NOTES
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
#: The sender's own tables as the schema description lists them.
SCOPE_DESCRIPTION: tuple[TableDescription, ...] = tuple(
    table_description(table.name, "table", table.columns) for table in SCOPE_TABLES
)


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


class ScopedConnection(DialectConnection):
    """The connection layer: one read-only SQLite connection scoped to one sender.

    It enforces read-only access, the sender scope, the time budget and the result caps by
    itself; :meth:`execute` runs SQL exactly as given (the guard is the session's job).
    ``customer=None`` gives catalog access only.
    """

    account_names = ACCOUNT_TABLES | ACCOUNT_VIEWS
    scope_names = SCOPE_TABLE_NAMES

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
        super().__init__(customer, time_budget_seconds=time_budget_seconds, max_rows=max_rows,
                         max_result_bytes=max_result_bytes)
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
        account = conn.execute(
            "SELECT email, phone, address, address2 FROM temp.my_account"
        ).fetchone()
        return self.verified_contacts(account)

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

    def _run(self, sql: str, consume: RowConsumer[_T]) -> _T:
        self._authorizer.denials.clear()
        self._clock.start()
        try:
            cursor = self.connection.execute(sql)
            try:
                return consume([d[0] for d in cursor.description or ()], cursor)
            finally:
                cursor.close()
        except (sqlite3.Error, sqlite3.Warning) as error:
            raise self._explain(str(error)) from None

    def _explain(self, text: str) -> DataAccessRefused:
        if self._clock.expired or text == "interrupted":
            return self.refusal("time_budget")
        if self._authorizer.denials or "not authorized" in text:
            action, name = self._authorizer.denials[0] if self._authorizer.denials else (-1, "")
            if action == sqlite3.SQLITE_READ:
                return self.account_refusal(name)
            return self.refusal("function" if action == sqlite3.SQLITE_FUNCTION else "not_a_read",
                                name)
        for marker, kind in _ERROR_MARKERS:
            if marker in text:
                return self.refusal(kind, text)
        return self.refusal("query_error", text)

    def close(self) -> None:
        with self._lock:
            self.connection.close()


#: What SQLite's error text says, and the refusal it becomes (first match wins).
_ERROR_MARKERS: tuple[tuple[str, str], ...] = (
    ("too big", "too_large"),
    ("readonly", "read_only"),
    ("read-only", "read_only"),
    ("query_only", "read_only"),
    ("one statement", "one_statement"),
    ("no such table", "unknown_table"),
)


class SqliteBusinessDatabase(DialectDatabase):
    """A Sakila SQLite file, opened read-only for every session."""

    dialect = "sqlite"

    def __init__(
        self, path: Path, *, time_budget_seconds: float = 2.0, max_rows: int = 100
    ) -> None:
        super().__init__(time_budget_seconds=time_budget_seconds, max_rows=max_rows)
        self.path = Path(path)
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
                _describe(conn, name, "table")
                for name in CATALOG_TABLES
                if kinds.get(name) == "table"
            ]
            description += self._open_views(conn, sorted(n for n, t in objects if t == "view"))
        except sqlite3.DatabaseError as error:
            raise BusinessDatabaseError(
                f"{self.path} is not a usable Sakila SQLite database: {str(error).strip()}"
            ) from None
        finally:
            conn.close()
        return tuple(description)

    def _open_views(self, conn: sqlite3.Connection, views: list[str]) -> list[TableDescription]:
        """Views every session may read: those that read nothing but catalog tables.

        Each view is probed under the authorizer with every view name readable; the tables
        behind a view are still checked one by one, so only catalog-only views pass.
        """
        described = [_describe(conn, name, "view") for name in views]
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

    def catalog_tables(self) -> Sequence[TableDescription]:
        return self.catalog_description

    def scope_tables(self) -> Sequence[TableDescription]:
        return SCOPE_DESCRIPTION

    def _customers_with_address(self, address: str) -> list[Sequence[object]]:
        try:
            conn = connect_read_only(self.path)
        except sqlite3.Error as error:
            raise BusinessDatabaseError(f"cannot open {self.path}: {error}") from None
        try:
            return conn.execute(
                "SELECT customer_id, first_name, last_name, email, active, store_id "
                "FROM main.customer WHERE lower(trim(email)) = :address LIMIT 2",
                {"address": address},
            ).fetchall()
        finally:
            conn.close()

    def _scoped_connection(self, customer: CustomerIdentity | None) -> ScopedConnection:
        try:
            return ScopedConnection(
                self.path,
                customer,
                time_budget_seconds=self.time_budget_seconds,
                max_rows=self.max_rows,
                catalog_views=self.catalog_views,
            )
        except sqlite3.Error as error:
            raise BusinessDatabaseError(f"cannot open {self.path}: {error}") from None


def _describe(conn: sqlite3.Connection, name: str, kind: str) -> TableDescription:
    quoted = name.replace('"', '""')
    columns = conn.execute(f'PRAGMA main.table_info("{quoted}")').fetchall()
    return table_description(name, kind, ((str(row[1]), str(row[2] or "")) for row in columns))


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
