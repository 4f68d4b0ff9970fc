"""Provision a PostgreSQL business database: Sakila schema, data, roles, grants and row security.

``mediavault db init --postgres ADMIN_DSN`` calls :func:`init_postgres_database`. It connects
with an administrator's DSN (a superuser: it creates roles and changes function privileges),
and in one transaction:

1. creates three roles when missing: ``mediavault_owner`` (NOLOGIN; owns every object, the
   role for migrations), ``mediavault_sender_lookup`` (NOLOGIN; owns the one function that
   may search all customers, by exact address) and ``mediavault_agent`` (LOGIN; what the agent
   connects as);
2. creates the 16 Sakila tables with PostgreSQL types and loads the demo data or any Sakila
   SQLite file, then adds keys, indexes and Sakila's views;
3. turns on ``FORCE ROW LEVEL SECURITY`` for the account tables (customer, address, rental,
   payment, staff) with policies bound to the per-transaction setting
   ``mediavault.customer_id``: unset, empty or malformed, it matches no row (fail closed);
4. creates the scope views ``my_account``, ``my_rentals`` and ``my_payments`` (security
   barrier views over the row-secured tables, with the same columns as on SQLite, so the
   agent's SQL is the same on both);
5. grants the agent SELECT on the catalog tables and the scope views, and nothing else: no
   account table, no CREATE, no TEMP, no ``set_config`` (so a single SELECT cannot switch
   the customer id the application set); and gives the agent role a ``statement_timeout``,
   an ``idle_in_transaction_session_timeout`` and read-only transactions by default.

The business date is stored as the database default of ``mediavault.business_date``.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mediavault.tools.business_db.business_date import BusinessDateError, stamped_business_date

if TYPE_CHECKING:
    import psycopg

OWNER_ROLE = "mediavault_owner"
AGENT_ROLE = "mediavault_agent"
LOOKUP_ROLE = "mediavault_sender_lookup"
#: The per-transaction setting the application sets to the verified customer's id.
CUSTOMER_SETTING = "mediavault.customer_id"
#: Database default holding the business date (YYYY-MM-DD).
BUSINESS_DATE_SETTING = "mediavault.business_date"
PRIVATE_SCHEMA = "mediavault_private"
#: Defaults for every agent session, one opened by hand included (the application sets
#: its own, smaller, limit in each query's transaction).
DEFAULT_STATEMENT_TIMEOUT_MS = 5_000
DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS = 10_000

#: Sakila's tables with PostgreSQL types, in an order that respects foreign keys. Text
#: columns are ``text``: SQLite never enforced the port's VARCHAR lengths.
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "language": (("language_id", "integer NOT NULL"), ("name", "text NOT NULL"),
                 ("last_update", "timestamp NOT NULL")),
    "category": (("category_id", "integer NOT NULL"), ("name", "text NOT NULL"),
                 ("last_update", "timestamp NOT NULL")),
    "country": (("country_id", "integer NOT NULL"), ("country", "text NOT NULL"),
                ("last_update", "timestamp")),
    "city": (("city_id", "integer NOT NULL"), ("city", "text NOT NULL"),
             ("country_id", "integer NOT NULL"), ("last_update", "timestamp NOT NULL")),
    "address": (("address_id", "integer NOT NULL"), ("address", "text NOT NULL"),
                ("address2", "text"), ("district", "text NOT NULL"),
                ("city_id", "integer NOT NULL"), ("postal_code", "text"),
                ("phone", "text NOT NULL"), ("last_update", "timestamp NOT NULL")),
    "actor": (("actor_id", "integer NOT NULL"), ("first_name", "text NOT NULL"),
              ("last_name", "text NOT NULL"), ("last_update", "timestamp NOT NULL")),
    "film": (("film_id", "integer NOT NULL"), ("title", "text NOT NULL"),
             ("description", "text"), ("release_year", "text"),
             ("language_id", "integer NOT NULL"), ("original_language_id", "integer"),
             ("rental_duration", "smallint NOT NULL DEFAULT 3"),
             ("rental_rate", "numeric(4,2) NOT NULL DEFAULT 4.99"), ("length", "smallint"),
             ("replacement_cost", "numeric(5,2) NOT NULL DEFAULT 19.99"),
             ("rating", "text DEFAULT 'G'"), ("special_features", "text"),
             ("last_update", "timestamp NOT NULL")),
    "film_actor": (("actor_id", "integer NOT NULL"), ("film_id", "integer NOT NULL"),
                   ("last_update", "timestamp NOT NULL")),
    "film_category": (("film_id", "integer NOT NULL"), ("category_id", "integer NOT NULL"),
                      ("last_update", "timestamp NOT NULL")),
    "film_text": (("film_id", "integer NOT NULL"), ("title", "text NOT NULL"),
                  ("description", "text")),
    "staff": (("staff_id", "integer NOT NULL"), ("first_name", "text NOT NULL"),
              ("last_name", "text NOT NULL"), ("address_id", "integer NOT NULL"),
              ("picture", "bytea"), ("email", "text"), ("store_id", "integer NOT NULL"),
              ("active", "smallint NOT NULL DEFAULT 1"), ("username", "text NOT NULL"),
              ("password", "text"), ("last_update", "timestamp NOT NULL")),
    "store": (("store_id", "integer NOT NULL"), ("manager_staff_id", "integer NOT NULL"),
              ("address_id", "integer NOT NULL"), ("last_update", "timestamp NOT NULL")),
    "customer": (("customer_id", "integer NOT NULL"), ("store_id", "integer NOT NULL"),
                 ("first_name", "text NOT NULL"), ("last_name", "text NOT NULL"),
                 ("email", "text"), ("address_id", "integer NOT NULL"),
                 ("active", "text NOT NULL DEFAULT 'Y'"),
                 ("create_date", "timestamp NOT NULL"), ("last_update", "timestamp NOT NULL")),
    "inventory": (("inventory_id", "integer NOT NULL"), ("film_id", "integer NOT NULL"),
                  ("store_id", "integer NOT NULL"), ("last_update", "timestamp NOT NULL")),
    "rental": (("rental_id", "integer NOT NULL"), ("rental_date", "timestamp NOT NULL"),
               ("inventory_id", "integer NOT NULL"), ("customer_id", "integer NOT NULL"),
               ("return_date", "timestamp"), ("staff_id", "integer NOT NULL"),
               ("last_update", "timestamp NOT NULL")),
    "payment": (("payment_id", "integer NOT NULL"), ("customer_id", "integer NOT NULL"),
                ("staff_id", "integer NOT NULL"), ("rental_id", "integer"),
                ("amount", "numeric(5,2) NOT NULL"), ("payment_date", "timestamp NOT NULL"),
                ("last_update", "timestamp NOT NULL")),
}  # fmt: skip

PRIMARY_KEYS: dict[str, str] = {
    "film_actor": "actor_id, film_id",
    "film_category": "film_id, category_id",
}

#: Added after the load, so that the store/staff cycle needs no special order.
FOREIGN_KEYS: tuple[tuple[str, str, str, str], ...] = (
    ("city", "country_id", "country", "country_id"),
    ("address", "city_id", "city", "city_id"),
    ("film", "language_id", "language", "language_id"),
    ("film", "original_language_id", "language", "language_id"),
    ("film_actor", "actor_id", "actor", "actor_id"),
    ("film_actor", "film_id", "film", "film_id"),
    ("film_category", "film_id", "film", "film_id"),
    ("film_category", "category_id", "category", "category_id"),
    ("staff", "store_id", "store", "store_id"),
    ("staff", "address_id", "address", "address_id"),
    ("store", "manager_staff_id", "staff", "staff_id"),
    ("store", "address_id", "address", "address_id"),
    ("customer", "store_id", "store", "store_id"),
    ("customer", "address_id", "address", "address_id"),
    ("inventory", "store_id", "store", "store_id"),
    ("inventory", "film_id", "film", "film_id"),
    ("rental", "staff_id", "staff", "staff_id"),
    ("rental", "inventory_id", "inventory", "inventory_id"),
    ("rental", "customer_id", "customer", "customer_id"),
    ("payment", "rental_id", "rental", "rental_id"),
    ("payment", "customer_id", "customer", "customer_id"),
    ("payment", "staff_id", "staff", "staff_id"),
)

INDEXES: tuple[str, ...] = (
    "CREATE INDEX idx_actor_last_name ON actor (last_name)",
    "CREATE INDEX idx_fk_city_id ON address (city_id)",
    "CREATE INDEX idx_fk_country_id ON city (country_id)",
    "CREATE INDEX idx_customer_fk_address_id ON customer (address_id)",
    "CREATE INDEX idx_customer_fk_store_id ON customer (store_id)",
    "CREATE INDEX idx_customer_last_name ON customer (last_name)",
    # Sender resolution: an exact, case-insensitive match on the address on file.
    "CREATE INDEX idx_customer_email_lower ON customer (lower(btrim(email)))",
    "CREATE INDEX idx_fk_language_id ON film (language_id)",
    "CREATE INDEX idx_fk_film_actor_film ON film_actor (film_id)",
    "CREATE INDEX idx_fk_film_category_category ON film_category (category_id)",
    "CREATE INDEX idx_fk_film_id ON inventory (film_id)",
    "CREATE INDEX idx_fk_film_id_store_id ON inventory (store_id, film_id)",
    "CREATE INDEX idx_fk_customer_id ON payment (customer_id)",
    "CREATE INDEX idx_fk_payment_rental_id ON payment (rental_id)",
    "CREATE INDEX idx_rental_fk_customer_id ON rental (customer_id)",
    "CREATE INDEX idx_rental_fk_inventory_id ON rental (inventory_id)",
    "CREATE UNIQUE INDEX idx_rental_uq ON rental (rental_date, inventory_id, customer_id)",
)

#: Tables with no customer data: the agent may read them whoever the sender is.
CATALOG_TABLES: tuple[str, ...] = (
    "film", "category", "film_category", "language", "actor", "film_actor", "film_text",
    "inventory", "store",
)  # fmt: skip
#: Tables holding customers' or staff's data: row security on, never granted to the agent.
ACCOUNT_TABLES: tuple[str, ...] = ("customer", "address", "rental", "payment", "staff")
SCOPE_VIEWS: tuple[str, ...] = ("my_account", "my_rentals", "my_payments")
CATALOG_VIEWS: tuple[str, ...] = ("film_list",)
ACCOUNT_VIEWS: tuple[str, ...] = (
    "customer_list", "staff_list", "sales_by_store", "sales_by_film_category",
)  # fmt: skip

_VERIFIED = f"{PRIVATE_SCHEMA}.verified_customer_id()"

_FUNCTIONS = (
    # The one reading of the setting: digits only, else NULL, and NULL matches no row.
    f"""CREATE FUNCTION {_VERIFIED} RETURNS integer
        LANGUAGE sql STABLE PARALLEL SAFE
        SET search_path = pg_catalog
        AS $$
          SELECT CASE WHEN setting ~ '^[1-9][0-9]{{0,8}}$' THEN setting::integer END
          FROM (SELECT current_setting('{CUSTOMER_SETTING}', true) AS setting) AS current
        $$""",
    # Runs as the lookup role, the only role row security lets see every customer, and
    # answers nothing but an exact (case-insensitive) match on the whole address.
    f"""CREATE FUNCTION {PRIVATE_SCHEMA}.resolve_sender(sender_address text)
        RETURNS TABLE (customer_id integer, first_name text, last_name text, email text,
                       active text, store_id integer)
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = pg_catalog
        AS $$
          SELECT c.customer_id, c.first_name, c.last_name, c.email, c.active, c.store_id
          FROM public.customer AS c
          WHERE lower(btrim(c.email)) = lower(btrim(sender_address))
            AND position('@' IN sender_address) > 0
            -- Never inside a scoped transaction (where the model's SQL runs): the
            -- application resolves senders on a connection of their own.
            AND current_setting('{CUSTOMER_SETTING}', true) IS NULL
          ORDER BY c.customer_id
          LIMIT 2
        $$""",
)

_POLICIES = (
    f"CREATE POLICY verified_customer ON customer FOR SELECT USING (customer_id = {_VERIFIED})",
    f"CREATE POLICY sender_lookup ON customer FOR SELECT TO {LOOKUP_ROLE} USING (true)",
    f"CREATE POLICY verified_customer ON address FOR SELECT USING (address_id IN "
    f"(SELECT c.address_id FROM customer AS c WHERE c.customer_id = {_VERIFIED}))",
    f"CREATE POLICY verified_customer ON rental FOR SELECT USING (customer_id = {_VERIFIED})",
    f"CREATE POLICY verified_customer ON payment FOR SELECT USING (customer_id = {_VERIFIED})",
    # staff: row security on and no policy at all, so no role but a superuser sees a row.
)

_ACTIVE = "CASE WHEN c.active IN ('1', 'Y', 'y', 't', 'true', 'TRUE') THEN 1 ELSE 0 END"

_VIEWS = (
    f"""CREATE VIEW my_account WITH (security_barrier) AS
        SELECT c.customer_id, c.store_id, c.first_name, c.last_name, c.email,
               {_ACTIVE} AS active, c.create_date, a.address, a.address2, a.district,
               ci.city, a.postal_code, co.country, a.phone
        FROM customer AS c
        LEFT JOIN address AS a ON a.address_id = c.address_id
        LEFT JOIN city AS ci ON ci.city_id = a.city_id
        LEFT JOIN country AS co ON co.country_id = ci.country_id
        WHERE c.customer_id = {_VERIFIED}""",
    f"""CREATE VIEW my_rentals WITH (security_barrier) AS
        SELECT r.rental_id, i.film_id, f.title, r.inventory_id, i.store_id, r.rental_date,
               r.return_date, r.rental_date + f.rental_duration * interval '1 day' AS due_date,
               f.rental_duration, f.rental_rate, f.replacement_cost
        FROM rental AS r
        LEFT JOIN inventory AS i ON i.inventory_id = r.inventory_id
        LEFT JOIN film AS f ON f.film_id = i.film_id
        WHERE r.customer_id = {_VERIFIED}""",
    f"""CREATE VIEW my_payments WITH (security_barrier) AS
        SELECT p.payment_id, p.rental_id, p.amount, p.payment_date, f.title
        FROM payment AS p
        LEFT JOIN rental AS r ON r.rental_id = p.rental_id
        LEFT JOIN inventory AS i ON i.inventory_id = r.inventory_id
        LEFT JOIN film AS f ON f.film_id = i.film_id
        WHERE p.customer_id = {_VERIFIED}""",
    """CREATE VIEW film_list AS
        SELECT film.film_id AS fid, film.title, film.description, category.name AS category,
               film.rental_rate AS price, film.length, film.rating,
               actor.first_name || ' ' || actor.last_name AS actors
        FROM category
        LEFT JOIN film_category ON category.category_id = film_category.category_id
        LEFT JOIN film ON film_category.film_id = film.film_id
        JOIN film_actor ON film.film_id = film_actor.film_id
        JOIN actor ON film_actor.actor_id = actor.actor_id""",
    """CREATE VIEW customer_list AS
        SELECT cu.customer_id AS id, cu.first_name || ' ' || cu.last_name AS name,
               a.address, a.postal_code AS zip_code, a.phone, city.city, country.country,
               CASE WHEN cu.active IN ('1', 'Y') THEN 'active' ELSE '' END AS notes,
               cu.store_id AS sid
        FROM customer AS cu
        JOIN address AS a ON cu.address_id = a.address_id
        JOIN city ON a.city_id = city.city_id
        JOIN country ON city.country_id = country.country_id""",
    """CREATE VIEW staff_list AS
        SELECT s.staff_id AS id, s.first_name || ' ' || s.last_name AS name, a.address,
               a.postal_code AS zip_code, a.phone, city.city, country.country, s.store_id AS sid
        FROM staff AS s
        JOIN address AS a ON s.address_id = a.address_id
        JOIN city ON a.city_id = city.city_id
        JOIN country ON city.country_id = country.country_id""",
    """CREATE VIEW sales_by_film_category AS
        SELECT c.name AS category, sum(p.amount) AS total_sales
        FROM payment AS p
        JOIN rental AS r ON p.rental_id = r.rental_id
        JOIN inventory AS i ON r.inventory_id = i.inventory_id
        JOIN film AS f ON i.film_id = f.film_id
        JOIN film_category AS fc ON f.film_id = fc.film_id
        JOIN category AS c ON fc.category_id = c.category_id
        GROUP BY c.name""",
    """CREATE VIEW sales_by_store AS
        SELECT s.store_id, c.city || ',' || cy.country AS store,
               m.first_name || ' ' || m.last_name AS manager, sum(p.amount) AS total_sales
        FROM payment AS p
        JOIN rental AS r ON p.rental_id = r.rental_id
        JOIN inventory AS i ON r.inventory_id = i.inventory_id
        JOIN store AS s ON i.store_id = s.store_id
        JOIN address AS a ON s.address_id = a.address_id
        JOIN city AS c ON a.city_id = c.city_id
        JOIN country AS cy ON c.country_id = cy.country_id
        JOIN staff AS m ON s.manager_staff_id = m.staff_id
        GROUP BY s.store_id, c.city || ',' || cy.country, m.first_name || ' ' || m.last_name""",
)


class PostgresProvisioningError(RuntimeError):
    """``db init --postgres`` cannot complete; the message says why and what to do."""


@dataclass(frozen=True)
class PostgresInitSummary:
    """What :func:`init_postgres_database` did."""

    database: str
    source: str
    row_counts: dict[str, int]
    business_date: date | None
    agent_role: str
    agent_dsn: str
    seconds: float
    warnings: tuple[str, ...] = field(default_factory=tuple)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise PostgresProvisioningError(
            "PostgreSQL support needs the `postgres` extra: "
            "pip install 'mediavault-agent[postgres]'"
        ) from None
    return psycopg


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ``***``, fit for logs and messages."""
    psycopg = _psycopg()
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable DSN>"
    if "password" in params:
        params["password"] = "***"
    return _as_url(params)


def dsn_for_role(dsn: str, role: str) -> str:
    """``dsn`` with the user set to ``role`` and no password: what MEDIAVAULT_DB should hold."""
    psycopg = _psycopg()
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    params.pop("password", None)
    params["user"] = role
    return _as_url(params)


def _as_url(params: dict[str, Any]) -> str:
    params = {k: str(v) for k, v in params.items() if v is not None}
    user = quote(params.pop("user", ""), safe="")
    password = params.pop("password", None)
    dbname = quote(params.pop("dbname", ""), safe="")
    host = params.pop("host", "")
    port = params.pop("port", "")
    netloc = user + (f":{quote(password, safe='*')}" if password else "")
    netloc = f"{netloc}@" if netloc else ""
    if host and not host.startswith("/") and "," not in host:
        netloc += host + (f":{port}" if port else "")
    else:
        # A unix-socket directory (or a host list) goes into the query string.
        if host:
            params["host"] = host
        if port:
            params["port"] = port
    query = "&".join(f"{quote(k)}={quote(v, safe='/')}" for k, v in sorted(params.items()))
    return f"postgresql://{netloc}/{dbname}" + (f"?{query}" if query else "")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _check_sqlite_source(path: Path) -> None:
    if not path.is_file():
        raise PostgresProvisioningError(f"Sakila SQLite file not found: {path}")
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as source:
            present = {
                name.lower()
                for (name,) in source.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
    except sqlite3.DatabaseError as error:
        raise PostgresProvisioningError(f"{path} is not a SQLite database: {error}") from None
    missing = [name for name in TABLES if name not in present]
    if missing:
        raise PostgresProvisioningError(
            f"{path} is not a Sakila database: missing table(s) {', '.join(missing)}"
        )


def _copy_table(connection: psycopg.Connection[Any], source: sqlite3.Connection, table: str) -> int:
    columns = [name for name, _ in TABLES[table]]
    select = f"SELECT {', '.join(_ident(c) for c in columns)} FROM {_ident(table)}"
    copied = 0
    with connection.cursor() as cursor:
        copy_sql = f"COPY {_ident(table)} ({', '.join(_ident(c) for c in columns)}) FROM STDIN"
        with cursor.copy(copy_sql) as copy:
            for row in source.execute(select):
                # Text COPY: the server parses timestamps and numbers as it would literals.
                copy.write_row(
                    [value if isinstance(value, bytes | int) or value is None else str(value)
                     for value in row]
                )  # fmt: skip
                copied += 1
    return copied


@contextmanager
def _admin_connection(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    psycopg = _psycopg()
    try:
        connection = psycopg.connect(dsn, autocommit=True, connect_timeout=15)
    except psycopg.Error as error:
        raise PostgresProvisioningError(
            f"cannot connect to {redact_dsn(dsn)}: {_first_line(str(error))}"
        ) from None
    try:
        yield connection
    finally:
        connection.close()


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return line if len(line) <= 300 else line[:297] + "..."


def _create_role(cursor: psycopg.Cursor[Any], role: str, options: str, *, enforce: str) -> None:
    """Create ``role`` with ``options``; an existing one keeps its own, bar ``enforce``."""
    exists = cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
    if exists is None:
        cursor.execute(f"CREATE ROLE {_ident(role)} {options} {enforce}")
    else:
        cursor.execute(f"ALTER ROLE {_ident(role)} {enforce}")


def _existing_objects(cursor: psycopg.Cursor[Any]) -> list[str]:
    names = [*TABLES, *SCOPE_VIEWS, *CATALOG_VIEWS, *ACCOUNT_VIEWS]
    rows = cursor.execute(
        "SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relname = ANY(%s)",
        [names],
    ).fetchall()
    found = [str(row[0]) for row in rows]
    schema = cursor.execute(
        "SELECT 1 FROM pg_namespace WHERE nspname = %s", [PRIVATE_SCHEMA]
    ).fetchone()
    return found + ([PRIVATE_SCHEMA] if schema else [])


def _drop_existing(cursor: psycopg.Cursor[Any]) -> None:
    for view in (*SCOPE_VIEWS, *CATALOG_VIEWS, *ACCOUNT_VIEWS):
        cursor.execute(f"DROP VIEW IF EXISTS public.{_ident(view)} CASCADE")
    for table in reversed(TABLES):
        cursor.execute(f"DROP TABLE IF EXISTS public.{_ident(table)} CASCADE")
    cursor.execute(f"DROP SCHEMA IF EXISTS {_ident(PRIVATE_SCHEMA)} CASCADE")


def init_postgres_database(
    admin_dsn: str,
    *,
    sqlite_path: Path | None = None,
    seed: int = 42,
    as_of: date | None = None,
    agent_password: str | None = None,
    replace: bool = False,
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
    idle_in_transaction_timeout_ms: int = DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS,
) -> PostgresInitSummary:
    """Create the Sakila schema in the database ``admin_dsn`` names, load data, provision roles.

    ``sqlite_path`` is any Sakila SQLite file to copy; without it the demo data is generated
    (``seed``, ``as_of``). The business date is ``as_of``, else the date stamped in the
    SQLite file, else none (the agent then uses the calendar date). An already initialised
    database is refused unless ``replace`` is true; everything happens in one transaction, so
    a failure leaves the database as it was (roles, which are cluster-wide, excepted).
    """
    started = time.perf_counter()
    if statement_timeout_ms < 100 or idle_in_transaction_timeout_ms < 100:
        raise PostgresProvisioningError("timeouts must be at least 100 ms")
    with tempfile.TemporaryDirectory(prefix="mediavault-load-") as scratch:
        if sqlite_path is None:
            from mediavault.tools.business_db.demo_database import build_demo_database

            built = build_demo_database(
                Path(scratch) / "sakila_demo.sqlite", seed=seed, as_of=as_of or date.today()
            )
            source_path, source_label = built.path, f"demo data (seed {seed})"
        else:
            source_path, source_label = Path(sqlite_path), str(sqlite_path)
            _check_sqlite_source(source_path)
        business = as_of
        if business is None:
            try:
                business = stamped_business_date(source_path)
            except BusinessDateError:
                business = None
        with _admin_connection(admin_dsn) as connection:
            counts, warnings, database = _provision(
                connection,
                source_path,
                business=business,
                agent_password=agent_password,
                replace=replace,
                statement_timeout_ms=statement_timeout_ms,
                idle_timeout_ms=idle_in_transaction_timeout_ms,
            )
    return PostgresInitSummary(
        database=database,
        source=source_label,
        row_counts=counts,
        business_date=business,
        agent_role=AGENT_ROLE,
        agent_dsn=dsn_for_role(admin_dsn, AGENT_ROLE),
        seconds=round(time.perf_counter() - started, 3),
        warnings=tuple(warnings),
    )


def _provision(
    connection: psycopg.Connection[Any],
    source_path: Path,
    *,
    business: date | None,
    agent_password: str | None,
    replace: bool,
    statement_timeout_ms: int,
    idle_timeout_ms: int,
) -> tuple[dict[str, int], list[str], str]:
    psycopg = _psycopg()
    warnings: list[str] = []
    cursor = connection.cursor()
    database = str(_one(cursor, "SELECT current_database()"))
    if not _one(cursor, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
        raise PostgresProvisioningError(
            "db init needs a superuser connection: it creates roles, turns on row security "
            "and revokes set_config from PUBLIC"
        )
    try:
        with connection.transaction():
            existing = _existing_objects(cursor)
            if existing and not replace:
                raise PostgresProvisioningError(
                    f"database {database} already has MediaVault objects "
                    f"({', '.join(existing[:4])}{', ...' if len(existing) > 4 else ''}); "
                    "pass --force to drop and reload them"
                )
            if existing:
                _drop_existing(cursor)
            _create_roles(cursor, database, agent_password, statement_timeout_ms, idle_timeout_ms)
            _database_privileges(cursor, database)
            cursor.execute(f"SET LOCAL ROLE {_ident(OWNER_ROLE)}")
            _create_tables(cursor)
            with closing(
                sqlite3.connect(f"{source_path.resolve().as_uri()}?mode=ro", uri=True)
            ) as source:
                counts = {table: _copy_table(connection, source, table) for table in TABLES}
            _constrain(cursor)
            _secure(cursor)
            cursor.execute("RESET ROLE")
            cursor.execute(
                f"ALTER FUNCTION {PRIVATE_SCHEMA}.resolve_sender(text) OWNER TO {LOOKUP_ROLE}"
            )
            _stamp_business_date(cursor, database, business)
            try:
                with connection.transaction():
                    cursor.execute(
                        "REVOKE EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) "
                        "FROM PUBLIC"
                    )
            except psycopg.errors.InsufficientPrivilege:  # managed services keep pg_catalog
                warnings.append(
                    "could not revoke set_config from PUBLIC: the agent's SQL guard is then "
                    "the only layer stopping a query from changing the customer id setting"
                )
    except psycopg.Error as error:
        raise PostgresProvisioningError(
            f"provisioning {database} failed: {_first_line(str(error))}"
        ) from None
    for table in TABLES:
        cursor.execute(f"ANALYZE {_ident(table)}")
    return counts, warnings, database


def _create_roles(
    cursor: psycopg.Cursor[Any],
    database: str,
    agent_password: str | None,
    statement_timeout_ms: int,
    idle_timeout_ms: int,
) -> None:
    # Whatever an operator changed since, none of these roles may ever bypass row security.
    safe = "NOSUPERUSER NOBYPASSRLS NOREPLICATION NOCREATEDB NOCREATEROLE"
    _create_role(cursor, OWNER_ROLE, "NOLOGIN", enforce=safe)
    _create_role(cursor, LOOKUP_ROLE, "NOLOGIN", enforce=safe)
    agent_login = "LOGIN NOINHERIT" + (
        f" PASSWORD {_literal(agent_password)}" if agent_password is not None else ""
    )
    _create_role(cursor, AGENT_ROLE, "", enforce=f"{safe} {agent_login}")
    agent, db = _ident(AGENT_ROLE), _ident(database)
    # Defaults for every agent session in this database, one opened by hand included (the
    # application sets its own per-query limit); per database, so staging and production in
    # one cluster keep their own. temp_file_limit is superuser-only: a session cannot raise it.
    for setting, value in (
        ("statement_timeout", f"{int(statement_timeout_ms)}ms"),
        ("idle_in_transaction_session_timeout", f"{int(idle_timeout_ms)}ms"),
        ("lock_timeout", f"{max(100, int(statement_timeout_ms) // 2)}ms"),
        ("default_transaction_read_only", "on"),
        ("search_path", "public"),
        # Temporary files are how a runaway sort or join would fill a disk.
        ("temp_file_limit", "64MB"),
        # Memory per query: each sort or hash step gets 4 MB before it spills to those temp
        # files, and no parallel workers multiply it (the session sets the same again).
        ("work_mem", "4MB"),
        ("hash_mem_multiplier", "1"),
        ("max_parallel_workers_per_gather", "0"),
    ):
        cursor.execute(f"ALTER ROLE {agent} IN DATABASE {db} SET {setting} = {_literal(value)}")


def _database_privileges(cursor: psycopg.Cursor[Any], database: str) -> None:
    db = _ident(database)
    owner, agent, lookup = (_ident(r) for r in (OWNER_ROLE, AGENT_ROLE, LOOKUP_ROLE))
    cursor.execute(f"GRANT CONNECT, CREATE ON DATABASE {db} TO {owner}")
    # No temporary tables for anyone but explicit grantees: the agent gets none.
    cursor.execute(f"REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC")
    cursor.execute(f"REVOKE ALL ON DATABASE {db} FROM {agent}")
    cursor.execute(f"GRANT CONNECT ON DATABASE {db} TO {agent}")
    cursor.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    cursor.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {owner}")
    cursor.execute(f"GRANT USAGE ON SCHEMA public TO {agent}, {lookup}")


def _create_tables(cursor: psycopg.Cursor[Any]) -> None:
    for table, columns in TABLES.items():
        body = ", ".join(f"{_ident(name)} {type_}" for name, type_ in columns)
        cursor.execute(f"CREATE TABLE {_ident(table)} ({body})")


def _constrain(cursor: psycopg.Cursor[Any]) -> None:
    for table, columns in TABLES.items():
        key = PRIMARY_KEYS.get(table, columns[0][0])
        cursor.execute(f"ALTER TABLE {_ident(table)} ADD PRIMARY KEY ({key})")
    for table, column, target, target_column in FOREIGN_KEYS:
        cursor.execute(
            f"ALTER TABLE {_ident(table)} ADD CONSTRAINT "
            f"{_ident(f'fk_{table}_{column}')} FOREIGN KEY ({_ident(column)}) "
            f"REFERENCES {_ident(target)} ({_ident(target_column)})"
        )
    for statement in INDEXES:
        cursor.execute(statement)


def _secure(cursor: psycopg.Cursor[Any]) -> None:
    agent, lookup = _ident(AGENT_ROLE), _ident(LOOKUP_ROLE)
    private = _ident(PRIVATE_SCHEMA)
    cursor.execute(f"CREATE SCHEMA {private}")
    cursor.execute(f"REVOKE ALL ON SCHEMA {private} FROM PUBLIC")
    for statement in _FUNCTIONS:
        cursor.execute(statement)
    cursor.execute(f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {private} FROM PUBLIC")
    for table in ACCOUNT_TABLES:
        # FORCE: the owner (and so every view it owns) is bound by the policies too.
        cursor.execute(f"ALTER TABLE {_ident(table)} ENABLE ROW LEVEL SECURITY")
        cursor.execute(f"ALTER TABLE {_ident(table)} FORCE ROW LEVEL SECURITY")
    for statement in (*_POLICIES, *_VIEWS):
        cursor.execute(statement)
    cursor.execute("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC")
    readable = [*CATALOG_TABLES, *CATALOG_VIEWS, *SCOPE_VIEWS]
    cursor.execute(f"GRANT SELECT ON {', '.join(_ident(n) for n in readable)} TO {agent}")
    # The lookup role reads identity columns only, and only through resolve_sender.
    cursor.execute(
        f"GRANT SELECT (customer_id, first_name, last_name, email, active, store_id) "
        f"ON customer TO {lookup}"
    )
    cursor.execute(f"GRANT USAGE ON SCHEMA {private} TO {agent}, {lookup}")
    cursor.execute(f"GRANT EXECUTE ON FUNCTION {PRIVATE_SCHEMA}.resolve_sender(text) TO {agent}")
    # A view's caller needs EXECUTE on the functions the view calls; this one only reads the
    # caller's own setting.
    cursor.execute(f"GRANT EXECUTE ON FUNCTION {_VERIFIED} TO {agent}")


def _stamp_business_date(cursor: psycopg.Cursor[Any], database: str, day: date | None) -> None:
    if day is None:
        cursor.execute(f"ALTER DATABASE {_ident(database)} RESET {BUSINESS_DATE_SETTING}")
    else:
        cursor.execute(
            f"ALTER DATABASE {_ident(database)} SET {BUSINESS_DATE_SETTING} = "
            f"{_literal(day.isoformat())}"
        )


def row_counts(
    connection: psycopg.Connection[Any], tables: Sequence[str] = tuple(TABLES)
) -> dict[str, int]:
    """Rows per table, counted over a connection that sees every row (an administrator's)."""
    cursor = connection.cursor()
    return {table: int(_one(cursor, f"SELECT count(*) FROM {_ident(table)}")) for table in tables}


def _one(cursor: psycopg.Cursor[Any], sql: str) -> Any:
    """The single value ``sql`` returns (None for no row)."""
    row = cursor.execute(sql).fetchone()
    return None if row is None else row[0]
