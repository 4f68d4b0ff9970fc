"""The one sender-scoped session, written once over a small dialect adapter.

Everything the agent's SQL goes through that does not depend on the database lives here: the
guard in front of every query, the friendly scope refusal, the row and size caps, the time
measurement, the identity check of a verified sender, the wording of every refusal, the schema
description and the session lifecycle. A dialect (:mod:`.sqlite`, :mod:`.postgres`) supplies
only what its database does differently: how a connection is opened and scoped, how one
statement runs, and how a driver error is classified (:meth:`DialectConnection._run`).
"""

from __future__ import annotations

import json
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from typing import ClassVar, TypeVar

from mediavault.tools.business_db.sessions import (
    CATALOG_HINT,
    SCOPE_HINT,
    SCOPE_NOTES,
    TABLE_NOTES,
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

_T = TypeVar("_T")

#: Result size cap: a reply that large is never what a support answer needs.
MAX_RESULT_BYTES = 64 * 1024

#: Every refusal a dialect can give for a database error: its rule and its text. ``{seconds}``
#: is the time budget, ``{detail}`` what the database said, ``{where}`` what may be queried.
REFUSALS: dict[str, tuple[str, str]] = {
    "time_budget": (
        "time_budget",
        "The query ran past its {seconds:g}-second time budget and was stopped. Narrow it: "
        "filter with WHERE, avoid cross joins, aggregate.",
    ),
    "too_large": (
        "result_size",
        "The query builds a value that is too large; ask for less data.",
    ),
    "read_only": ("select_only", "The business database is read-only; only SELECT queries run."),
    "not_a_read": (
        "select_only",
        "Only reading with SELECT is allowed; writes, settings, ATTACH and schema changes are "
        "refused.",
    ),
    "no_rows": ("select_only", "Only SELECT queries run; that statement returns no rows."),
    "one_statement": ("single_statement", "Send exactly one statement."),
    "unknown_table": ("unknown_table", "{detail}. Query {where}."),
    "function": ("function_not_allowed", "Function {detail}() is not allowed in a query."),
    "unavailable": (
        "database_unavailable",
        "The business database did not answer; try again shortly.",
    ),
    "identity_mismatch": (
        "identity_mismatch",
        "The sender's identity does not match the customer on file; account data is "
        "unavailable.",
    ),
    "query_error": ("query_error", "The database rejected the query: {detail}."),
}


def first_line(text: str, limit: int = 200) -> str:
    """The first line of a driver's message, cut to ``limit`` characters."""
    line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def json_value(value: object) -> JsonScalar:
    """A database value as it appears in a JSON result row."""
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


def unique_names(names: Iterable[str]) -> list[str]:
    """Column names made unique (``id``, ``id_2``), so every value keeps its own key."""
    seen: dict[str, int] = {}
    unique: list[str] = []
    for name in names:
        count = seen.get(name, 0) + 1
        seen[name] = count
        unique.append(name if count == 1 else f"{name}_{count}")
    return unique


def table_description(
    name: str, kind: str, columns: Iterable[tuple[str, str]]
) -> TableDescription:
    """How the schema description lists a table or view: its ``(name, type)`` columns, what it
    holds (:data:`TABLE_NOTES`) and whether it holds only the sender's rows."""
    return TableDescription(
        name=name,
        kind="view" if kind == "view" else "table",
        columns=tuple(ColumnDescription(name=column, type=type_) for column, type_ in columns),
        scoped_to_sender=name in SCOPE_NOTES,
        description=TABLE_NOTES.get(name, ""),
    )


@dataclass(frozen=True, slots=True)
class FetchedRows:
    columns: list[str]
    rows: list[dict[str, JsonScalar]]
    truncation_note: str | None
    elapsed_ms: float


#: What a dialect's ``_run`` hands its raw result to: column names, then rows.
RowConsumer = Callable[[list[str], Iterable[Sequence[object]]], _T]


class DialectConnection(ABC):
    """One connection scoped to one customer (``None``: catalog data only).

    :meth:`execute` runs SQL exactly as given (the guard is the session's job); the dialect's
    connection enforces read-only access, the sender scope and the time budget by itself, and
    this class caps the rows and bytes returned.
    """

    #: Account data by name, and the sender's own tables, for refusals that say where to look.
    account_names: ClassVar[frozenset[str]]
    scope_names: ClassVar[frozenset[str]]

    def __init__(
        self,
        customer: CustomerIdentity | None,
        *,
        time_budget_seconds: float,
        max_rows: int,
        max_result_bytes: int = MAX_RESULT_BYTES,
    ) -> None:
        self.customer = customer
        self.time_budget_seconds = time_budget_seconds
        self.max_rows = max_rows
        self.max_result_bytes = max_result_bytes
        self.contacts: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    @abstractmethod
    def _run(self, sql: str, consume: RowConsumer[_T]) -> _T:
        """Run one statement and return what ``consume`` makes of its columns and rows.

        Raises :class:`DataAccessRefused` (use :meth:`refusal`) for every database error.
        """

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    def execute(self, sql: str, *, limit_hint: int | None = None) -> FetchedRows:
        """Run ``sql`` and fetch at most ``max_rows`` rows and ``max_result_bytes`` of JSON.

        ``limit_hint`` is the LIMIT the guard imposed, so that hitting it counts as
        truncation. Raises :class:`DataAccessRefused` for every database error.
        """
        with self._lock:
            started = time.perf_counter()
            fetched = self._run(sql, lambda names, raw: self._capped(names, raw, limit_hint))
            elapsed_ms = (time.perf_counter() - started) * 1000
        columns, rows, note = fetched
        return FetchedRows(columns, rows, note, round(elapsed_ms, 3))

    def _capped(
        self, names: list[str], raw: Iterable[Sequence[object]], limit_hint: int | None
    ) -> tuple[list[str], list[dict[str, JsonScalar]], str | None]:
        columns = unique_names(names)
        rows: list[dict[str, JsonScalar]] = []
        size = 0
        note: str | None = None
        for values in raw:  # rows arrive one at a time: stopping here never loads the rest
            if len(rows) >= self.max_rows:
                note = f"more than {self.max_rows} rows; only the first {self.max_rows} returned"
                break
            row = {name: json_value(value) for name, value in zip(columns, values, strict=True)}
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

    def verified_contacts(self, account: Sequence[object] | None) -> frozenset[str]:
        """The sender's own contact details from ``(email, phone, address, address2)`` as the
        scope shows them; refuses when the scope's customer is not the verified sender."""
        if self.customer is None:
            return frozenset()
        email = str(account[0] or "").strip().lower() if account is not None else ""
        if account is None or email != self.customer.email.strip().lower():
            raise self.refusal("identity_mismatch")
        return frozenset(str(v).strip() for v in account if v is not None and str(v).strip())

    def refusal(self, kind: str, detail: str = "") -> DataAccessRefused:
        """The refusal of :data:`REFUSALS` named ``kind``; ``detail`` is what the database
        said (its first line is kept)."""
        rule, text = REFUSALS[kind]
        where = CATALOG_HINT + (f", or {SCOPE_HINT}" if self.customer is not None else "")
        detail = first_line(detail) if detail else ""
        return DataAccessRefused(
            rule, text.format(seconds=self.time_budget_seconds, detail=detail, where=where)
        )

    def account_refusal(self, table: str) -> DataAccessRefused:
        """The refusal for reading ``table``, which is outside this connection's scope."""
        return account_refusal(table, verified=self.customer is not None,
                               account_names=self.account_names, scope_names=self.scope_names)


class SenderScopedSession(ScopedSession):
    """The :class:`ScopedSession` of every dialect: the SQL guard in front of its connection."""

    def __init__(self, database: DialectDatabase, connection: DialectConnection) -> None:
        self._database = database
        self._connection = connection

    @property
    def customer(self) -> CustomerIdentity | None:
        return self._connection.customer

    def run_query(self, sql: str) -> QueryResult:
        """Guard, scope-check and run one SELECT; see :meth:`ScopedSession.run_query`."""
        connection = self._connection
        guarded = guard_sql(sql, dialect=self._database.dialect, max_rows=self._database.max_rows)
        # A friendlier refusal than the database's own, which still has the final word.
        refuse_out_of_scope(guarded.tables, verified=self.customer is not None,
                            account_names=connection.account_names,
                            scope_names=connection.scope_names)
        fetched = connection.execute(
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
        database = self._database
        tables = list(database.catalog_tables())
        notes = [
            "Account tables (customer, address, rental, payment, staff, city, country) and "
            "views over them cannot be read directly.",
            *database.dialect_notes,
            "Give computed columns an alias (count(*) AS rentals): the query is re-generated "
            "before it runs, so unaliased expressions get generated names.",
        ]
        if self.customer is not None:
            notes.append(
                f"The sender is verified as customer {self.customer.customer_id}; "
                "my_account, my_rentals and my_payments hold only their rows."
            )
            tables[:0] = database.scope_tables()
        else:
            notes.append(
                "The sender could not be verified, so account data is unavailable: "
                "catalog tables only."
            )
        return SchemaDescription(
            dialect=database.dialect,
            tables=tuple(tables),
            sender_verified=self.customer is not None,
            max_rows=database.max_rows,
            notes=tuple(notes),
        )

    def sender_contacts(self) -> set[str]:
        """The sender's own e-mail, phone and street address lines."""
        return set(self._connection.contacts)


class DialectDatabase(BusinessDatabase):
    """A business database whose sessions are :class:`SenderScopedSession` objects."""

    #: The SQL dialect name the guard parses with ("sqlite", "postgres").
    dialect: ClassVar[str]
    #: Notes on the dialect's SQL for the schema description.
    dialect_notes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, time_budget_seconds: float, max_rows: int) -> None:
        if time_budget_seconds <= 0:
            raise ValueError("time_budget_seconds must be positive")
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self.time_budget_seconds = time_budget_seconds
        self.max_rows = max_rows
        self._closed = False

    @abstractmethod
    def _customers_with_address(self, address: str) -> list[Sequence[object]]:
        """Up to two customer rows whose e-mail is ``address`` (trimmed, lower case), as
        :meth:`CustomerIdentity.from_row` reads them."""

    @abstractmethod
    def _scoped_connection(self, customer: CustomerIdentity | None) -> DialectConnection:
        """A new connection scoped to ``customer``."""

    @abstractmethod
    def catalog_tables(self) -> Sequence[TableDescription]:
        """The tables and views every session may read."""

    @abstractmethod
    def scope_tables(self) -> Sequence[TableDescription]:
        """The sender's own tables, readable by a verified sender's session."""

    def resolve_sender(self, address: str) -> CustomerIdentity | None:
        """Exactly one customer whose e-mail equals ``address`` ignoring case, else None."""
        self._check_open()
        wanted = address.strip().lower() if isinstance(address, str) else ""
        if "@" not in wanted or len(wanted) > 320 or "\x00" in wanted:
            return None
        rows = self._customers_with_address(wanted)
        if len(rows) != 1:  # unknown, or ambiguous: either way not verified
            return None
        return CustomerIdentity.from_row(rows[0])

    @contextmanager
    def session(self, customer: CustomerIdentity | None) -> Iterator[ScopedSession]:
        """A scoped session on its own connection, closed on exit."""
        self._check_open()
        connection = self._scoped_connection(customer)
        try:
            yield SenderScopedSession(self, connection)
        finally:
            connection.close()

    def close(self) -> None:
        """Further sessions are refused; each session closes its own connection."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise BusinessDatabaseError("the business database has been closed")
