"""The business-data interface: the only door through which the agent reads Sakila data.

Nothing above this layer touches a database driver. A :class:`BusinessDatabase` resolves a
sender to a customer and opens a :class:`ScopedSession` bound to that customer (or to nobody,
for an unverified sender). Every query goes through the session, which enforces the SQL guard,
the sender scope, a time budget and row/size caps on its own, whatever the gate decided.

The one implementation of these sessions is :mod:`.scoped_session`; the SQLite and Postgres
modules are its dialects.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Literal

from pydantic import BaseModel, ConfigDict

#: A value in a query result row, as it appears in JSON.
JsonScalar = str | int | float | None

#: ``scheme://`` prefixes that name a database server rather than a file (a one-letter
#: "scheme" is a Windows drive).
_DSN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")


class DataAccessRefused(Exception):
    """A query or data access the data layer will not perform.

    ``rule`` is a stable identifier (``select_only``, ``account_data``, ``time_budget``, ...);
    ``message`` is one or two sentences a model can act on: what was refused and how to fix it.
    """

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message

    def __str__(self) -> str:
        return f"refused ({self.rule}): {self.message}"


class BusinessDatabaseError(RuntimeError):
    """The business database cannot be used at all (missing, not Sakila, unreachable, ...)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CustomerIdentity(_Frozen):
    """The customer a sender address resolved to; the scope of every account query."""

    customer_id: int
    first_name: str
    last_name: str
    email: str
    active: bool
    store_id: int

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @classmethod
    def from_row(cls, row: Sequence[object]) -> CustomerIdentity:
        """From ``(customer_id, first_name, last_name, email, active, store_id)`` as stored.

        Sakila stores ``active`` as text or a number depending on the port; any of the usual
        spellings of "yes" counts.
        """
        customer_id, first_name, last_name, email, active, store_id = row
        return cls(
            customer_id=int(str(customer_id)),
            first_name=str(first_name or ""),
            last_name=str(last_name or ""),
            email=str(email).strip(),
            active=str(active).strip().lower() in {"1", "y", "yes", "true", "t"},
            store_id=int(str(store_id)),
        )


class QueryResult(_Frozen):
    """Rows returned by :meth:`ScopedSession.run_query`, ready to serialise as JSON.

    ``sql`` is the statement actually executed (after the guard's rewrite). ``truncated`` says
    the rows are cut at the row or size cap and more may exist; ``truncation_note`` says which.
    """

    sql: str
    columns: list[str]
    rows: list[dict[str, JsonScalar]]
    row_count: int
    truncated: bool = False
    truncation_note: str | None = None
    elapsed_ms: float


class ColumnDescription(_Frozen):
    name: str
    type: str = ""


class TableDescription(_Frozen):
    """One table or view the session may read."""

    name: str
    kind: Literal["table", "view"]
    columns: tuple[ColumnDescription, ...]
    #: True for tables holding only the verified sender's own rows.
    scoped_to_sender: bool = False
    description: str = ""


class SchemaDescription(_Frozen):
    """What a session may query, like ``\\d+`` in psql, for the model and for operators."""

    dialect: str
    tables: tuple[TableDescription, ...]
    sender_verified: bool
    max_rows: int
    notes: tuple[str, ...] = ()

    def table(self, name: str) -> TableDescription | None:
        """The description of ``name`` (case-insensitive), or None if it is not queryable."""
        wanted = name.lower()
        return next((t for t in self.tables if t.name.lower() == wanted), None)

    def as_text(self) -> str:
        """A compact plain-text listing, small enough to hand to a model."""
        lines = [
            f"Queryable tables ({self.dialect}, read-only, one SELECT per query, "
            f"at most {self.max_rows} rows returned)."
        ]
        lines.extend(self.notes)
        for table in self.tables:
            marker = "  [sender's own rows only]" if table.scoped_to_sender else ""
            lines.append("")
            lines.append(f"{table.kind} {table.name}{marker}")
            if table.description:
                lines.append(f"  -- {table.description}")
            width = max((len(c.name) for c in table.columns), default=0)
            for column in table.columns:
                lines.append(f"  {column.name.ljust(width)}  {column.type}".rstrip())
        return "\n".join(lines)


class ScopedSession(ABC):
    """Database access bound to one verified sender (or to none: catalog data only)."""

    @property
    @abstractmethod
    def customer(self) -> CustomerIdentity | None:
        """The verified sender this session is scoped to; None means catalog data only."""

    @abstractmethod
    def run_query(self, sql: str) -> QueryResult:
        """Run one read-only SELECT within the sender's scope.

        Raises :class:`DataAccessRefused` (never a driver error) when the query is refused,
        reads data outside the scope, or exceeds the time budget.
        """

    @abstractmethod
    def describe_schema(self) -> SchemaDescription:
        """The tables and columns this session may query."""

    @abstractmethod
    def sender_contacts(self) -> set[str]:
        """The sender's own e-mail, phone and street address lines (empty when unverified).

        Output checks use these as the only contact details a draft may contain.
        """


class BusinessDatabase(ABC):
    """A Sakila business database: sender resolution and sender-scoped read sessions."""

    @abstractmethod
    def resolve_sender(self, address: str) -> CustomerIdentity | None:
        """The one customer whose e-mail on file equals ``address``, ignoring case, or None."""

    @abstractmethod
    def session(self, customer: CustomerIdentity | None) -> AbstractContextManager[ScopedSession]:
        """A read session scoped to ``customer``; ``None`` gives catalog data only."""

    @abstractmethod
    def close(self) -> None:
        """Release resources; further sessions are refused."""

    def stamped_business_date(self) -> date | None:
        """The business date a server database stores (``db init`` sets it), if any.

        File databases carry theirs in the file header, read by ``business_date``.
        """
        return None

    def __enter__(self) -> BusinessDatabase:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


#: URL schemes that name a PostgreSQL server.
POSTGRES_SCHEMES = frozenset({"postgres", "postgresql", "postgresql+psycopg"})


def is_server_dsn(db: str | Path) -> bool:
    """Whether ``db`` names a database server (``scheme://...``) rather than a file."""
    return bool(_DSN.match(str(db).strip()))


def open_business_db(
    db: str | Path, *, time_budget_seconds: float = 2.0, max_rows: int = 100
) -> BusinessDatabase:
    """Open the business database ``db``: a Sakila SQLite file path or a ``postgresql://`` DSN.

    A DSN opens the PostgreSQL implementation (connect as the SELECT-only role that
    ``mediavault db init --postgres`` provisions). Raises :class:`BusinessDatabaseError` with
    a message an operator can act on when the file is missing, is not SQLite, is not a Sakila
    schema, the server cannot be reached, or the role is more privileged than the agent's.
    """
    text = str(db).strip()
    if _DSN.match(text):
        scheme = text.split(":", 1)[0].lower()
        if scheme not in POSTGRES_SCHEMES:
            raise BusinessDatabaseError(
                f"unsupported database URL scheme {scheme!r}; pass the path of a Sakila SQLite "
                "file or a postgresql:// DSN"
            )
        if text.split("://", 1)[0].lower() != scheme or "://" not in text:
            # A Path collapses "postgresql://host" to "postgresql:/host": the DSN was mangled
            # on its way here; pass the original text.
            raise BusinessDatabaseError(
                f"{text!r} is not a complete DSN; write it as postgresql://user@host/database"
            )
        from mediavault.tools.business_db.postgres import PostgresBusinessDatabase

        dsn = "postgresql" + text[len(scheme):] if scheme == "postgresql+psycopg" else text
        return PostgresBusinessDatabase(
            dsn, time_budget_seconds=time_budget_seconds, max_rows=max_rows
        )
    # Imported here so that the interface module stays free of any driver.
    from mediavault.tools.business_db.sqlite import SqliteBusinessDatabase

    return SqliteBusinessDatabase(
        Path(db), time_budget_seconds=time_budget_seconds, max_rows=max_rows
    )


#: What each queryable table holds, for the schema description (the same on every database):
#: the catalog tables every session reads, and the sender's own tables.
CATALOG_NOTES: dict[str, str] = {
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
SCOPE_NOTES: dict[str, str] = {
    "my_account": "the sender's own customer record, with address and phone",
    "my_rentals": "the sender's rentals; due_date = rental_date + rental_duration days; "
    "return_date NULL means not returned yet",
    "my_payments": "the sender's payments; title is the rented film, when the payment "
    "belongs to a rental",
}
TABLE_NOTES: dict[str, str] = CATALOG_NOTES | SCOPE_NOTES

CATALOG_HINT = "catalog tables such as film, category, actor and inventory"
SCOPE_HINT = "my_account, my_rentals and my_payments, which hold only the sender's own rows"


def account_refusal(
    table: str, *, verified: bool, account_names: Collection[str], scope_names: Collection[str]
) -> DataAccessRefused:
    """The refusal for reading ``table`` outside the session's scope, saying where to look."""
    if table in scope_names and not verified:
        return DataAccessRefused(
            "unverified_sender",
            f"The sender could not be verified, so account data ({table}) is unavailable; "
            f"only {CATALOG_HINT} can be queried.",
        )
    where = (
        f"use {SCOPE_HINT}"
        if verified
        else (
            "the sender could not be verified, so account data is unavailable; "
            f"only {CATALOG_HINT} can be queried"
        )
    )
    if table in account_names:
        return DataAccessRefused(
            "account_data", f"{table} holds other customers' data and cannot be read; {where}."
        )
    return DataAccessRefused("account_data", f"Reading {table or 'that'} is not allowed; {where}.")


def refuse_out_of_scope(
    tables: Iterable[str],
    *,
    verified: bool,
    account_names: Collection[str],
    scope_names: Collection[str],
) -> None:
    """Raise a friendly refusal when a query names account data the session may not read.

    Each backend's own enforcement (authorizer, row-level security) still has the final word.
    """
    for qualified in sorted(tables):
        table = qualified.rsplit(".", 1)[-1]
        if table in account_names or (table in scope_names and not verified):
            raise account_refusal(table, verified=verified, account_names=account_names,
                                  scope_names=scope_names)
