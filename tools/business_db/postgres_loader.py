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
   payment, staff) with policies bound to a signed scope token in the per-transaction setting
   ``mediavault.scope``: only a token signed with the application's key for this very backend
   (see :mod:`.scope_token`) names a customer; the bare setting, a forged, expired or
   replayed token matches no row (fail closed). The key's HMAC pads sit in a table only a
   SECURITY DEFINER function reads;
4. creates the scope views ``my_account``, ``my_rentals`` and ``my_payments`` (security
   barrier views over the row-secured tables, with the same columns as on SQLite, so the
   agent's SQL is the same on both);
5. grants the agent SELECT on the catalog tables and the scope views, and nothing else: no
   account table, no CREATE, no TEMP, no ``set_config``; and gives the agent role timeouts,
   memory settings and read-only transactions by default. Any role may SET its own timeouts
   and ``work_mem``, so row security on every business table (catalog tables included)
   refuses each read in an agent session that disabled or raised one of them.

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
from mediavault.tools.business_db.scope_token import (
    SCOPE_SETTING,
    hmac_pads,
    new_scope_key,
    parse_scope_key,
)

if TYPE_CHECKING:
    import psycopg

OWNER_ROLE = "mediavault_owner"
AGENT_ROLE = "mediavault_agent"
LOOKUP_ROLE = "mediavault_sender_lookup"
#: Database default holding the business date (YYYY-MM-DD).
BUSINESS_DATE_SETTING = "mediavault.business_date"
PRIVATE_SCHEMA = "mediavault_private"
#: Defaults for every agent session, one opened by hand included (the application sets
#: its own, smaller, limit in each query's transaction).
DEFAULT_STATEMENT_TIMEOUT_MS = 5_000
DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS = 10_000
#: Memory defaults for every agent session; a session that raises them is refused.
DEFAULT_WORK_MEM_KB = 4096
DEFAULT_HASH_MEM_MULTIPLIER = 1
DEFAULT_MAX_PARALLEL_WORKERS_PER_GATHER = 0


@dataclass(frozen=True)
class AgentLimits:
    """The limits every agent session runs under: role defaults, and ceilings the database
    checks on every read (a session that disabled or raised one is refused)."""

    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS
    idle_in_transaction_timeout_ms: int = DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS
    work_mem_kb: int = DEFAULT_WORK_MEM_KB
    hash_mem_multiplier: int = DEFAULT_HASH_MEM_MULTIPLIER
    max_parallel_workers_per_gather: int = DEFAULT_MAX_PARALLEL_WORKERS_PER_GATHER

    @property
    def lock_timeout_ms(self) -> int:
        return max(100, self.statement_timeout_ms // 2)

    def ceilings(self) -> tuple[tuple[str, int, bool], ...]:
        """``(setting, ceiling in pg_settings units, whether 0 means unlimited)``."""
        return (
            ("statement_timeout", self.statement_timeout_ms, True),
            ("idle_in_transaction_session_timeout", self.idle_in_transaction_timeout_ms, True),
            ("lock_timeout", self.lock_timeout_ms, True),
            ("work_mem", self.work_mem_kb, False),
            ("hash_mem_multiplier", self.hash_mem_multiplier, False),
            ("max_parallel_workers_per_gather", self.max_parallel_workers_per_gather, False),
        )

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
#: The verified customer, as a policy or view reads it: a sub-select, so the token is checked
#: once per query, not once per row.
_SCOPED = f"(SELECT {_VERIFIED})"
_LIMITS_OK = f"{PRIVATE_SCHEMA}.session_limits_ok()"

_SCOPE_KEY_TABLE = f"""CREATE TABLE {PRIVATE_SCHEMA}.scope_key (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    inner_pad bytea NOT NULL CHECK (length(inner_pad) = 64),
    outer_pad bytea NOT NULL CHECK (length(outer_pad) = 64))"""

_FUNCTIONS = (
    # The only reader of the scope key (SECURITY DEFINER, the agent has no grant on the
    # table): the customer id of a well-formed, unexpired token signed for this very backend,
    # else NULL, and NULL matches no row. See scope_token.py for the token.
    f"""CREATE FUNCTION {PRIVATE_SCHEMA}.scope_customer_id(token text, backend_started bigint)
        RETURNS integer
        LANGUAGE plpgsql STABLE SECURITY DEFINER
        SET search_path = pg_catalog
        AS $$
        DECLARE
          parts text[] := string_to_array(token, ':');
          pads record;
        BEGIN
          -- The shape v1:<id>:<pid>:<start>:<expiry>:<64 hex digits>, checked with string
          -- functions (a regular expression here cost more than the rest of the check).
          IF token IS NULL OR cardinality(parts) <> 6 OR parts[1] <> 'v1'
             OR length(parts[2]) NOT BETWEEN 1 AND 9 OR left(parts[2], 1) = '0'
             OR length(parts[3]) NOT BETWEEN 1 AND 10 OR length(parts[4]) NOT BETWEEN 1 AND 18
             OR length(parts[5]) NOT BETWEEN 1 AND 12 OR length(parts[6]) <> 64
             OR translate(parts[2] || parts[3] || parts[4] || parts[5], '0123456789', '') <> ''
             OR translate(parts[6], '0123456789abcdef', '') <> '' THEN
            RETURN NULL;
          END IF;
          IF parts[3]::bigint <> pg_backend_pid()
             OR backend_started IS NULL OR parts[4]::bigint <> backend_started
             OR parts[5]::bigint < extract(epoch FROM now()) THEN
            RETURN NULL;
          END IF;
          SELECT k.inner_pad, k.outer_pad INTO pads FROM {PRIVATE_SCHEMA}.scope_key AS k;
          IF NOT FOUND THEN
            RETURN NULL;
          END IF;
          IF encode(sha256(pads.outer_pad || sha256(pads.inner_pad
                || convert_to(array_to_string(parts[1:5], ':'), 'UTF8'))), 'hex') <> parts[6] THEN
            RETURN NULL;
          END IF;
          RETURN parts[2]::integer;
        END
        $$""",
    # What row security asks: the token in the transaction's setting, checked against the
    # backend the caller really is (its own start time, which only it can read), and only in a
    # session that kept its limits. PL/pgSQL: its plans are cached for the session.
    f"""CREATE FUNCTION {_VERIFIED} RETURNS integer
        LANGUAGE plpgsql STABLE
        SET search_path = pg_catalog
        AS $$
        DECLARE
          token text := current_setting('{SCOPE_SETTING}', true);
          started bigint;
        BEGIN
          IF token IS NULL OR token = '' OR NOT {_LIMITS_OK} THEN
            RETURN NULL;
          END IF;
          SELECT (extract(epoch FROM a.backend_start) * 1000000)::bigint INTO started
          FROM pg_stat_get_activity(pg_backend_pid()) AS a;
          RETURN {PRIVATE_SCHEMA}.scope_customer_id(token, started);
        END
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
            AND current_setting('{SCOPE_SETTING}', true) IS NULL
          ORDER BY c.customer_id
          LIMIT 2
        $$""",
)


#: pg_settings' base units (ms, kB) per unit a setting may be written in.
_UNIT_FACTORS = (
    ("", 1), ("us", 0.001), ("ms", 1), ("s", 1000), ("min", 60_000), ("h", 3_600_000),
    ("d", 86_400_000), ("B", 1 / 1024), ("kB", 1), ("MB", 1024), ("GB", 1024**2),
    ("TB", 1024**3),
)  # fmt: skip
_QUANTITY = f"{PRIVATE_SCHEMA}.quantity"


def _quantity_function() -> str:
    """A setting's value ('5s', '4MB', '2') in pg_settings' base units; NULL if unreadable."""
    cases = " ".join(f"WHEN '{unit}' THEN {float(factor)}" for unit, factor in _UNIT_FACTORS)
    return f"""CREATE FUNCTION {_QUANTITY}(value text) RETURNS float8
        LANGUAGE plpgsql IMMUTABLE
        AS $$
        DECLARE
          -- String functions, not a regular expression: this runs a dozen times per query.
          trimmed text := btrim(value);
          unit text := ltrim(trimmed, '0123456789.');
          number text := left(trimmed, length(trimmed) - length(unit));
        BEGIN
          IF number = '' OR number LIKE '%.%.%' THEN
            RETURN NULL;
          END IF;
          RETURN number::float8 * CASE btrim(unit) {cases} END;
        END
        $$"""


def _limits_function(limits: AgentLimits) -> str:
    """The check every read of a business table runs: an agent session that disabled or raised
    a limit (any role can SET its own timeouts and work_mem) gets an error, not rows.

    The ceilings are the agent role's own settings in this database (``ALTER ROLE ... IN
    DATABASE ... SET``), read at each check, so an operator who changes them there changes the
    ceilings too; a setting the role lacks falls back to the value provisioned here. A ceiling
    of 0 on a timeout means the operator chose no limit. Written as a plain loop: it runs
    before every query's first row, and pg_settings or a join would cost ten times as much.
    """
    fallbacks = ", ".join(
        f"('{name}', {float(ceiling)}::float8, {str(zero_unlimited).lower()})"
        for name, ceiling, zero_unlimited in limits.ceilings()
    )
    return f"""CREATE FUNCTION {_LIMITS_OK} RETURNS boolean
        LANGUAGE plpgsql STABLE
        AS $$
        DECLARE
          role_config text[];
          limit_name text;
          fallback float8;
          zero_is_unlimited boolean;
          ceiling float8;
          current float8;
          entry text;
          loosened text[] := '{{}}';
        BEGIN
          IF session_user <> '{AGENT_ROLE}' THEN
            RETURN true;
          END IF;
          SELECT r.setconfig INTO role_config FROM pg_db_role_setting AS r
          WHERE r.setrole = '{AGENT_ROLE}'::regrole
            AND r.setdatabase = (SELECT d.oid FROM pg_database AS d
                                 WHERE d.datname = current_database());
          FOR limit_name, fallback, zero_is_unlimited IN VALUES {fallbacks} LOOP
            ceiling := fallback;
            FOREACH entry IN ARRAY coalesce(role_config, '{{}}'::text[]) LOOP
              IF split_part(entry, '=', 1) = limit_name THEN
                ceiling := coalesce({_QUANTITY}(substr(entry, strpos(entry, '=') + 1)), fallback);
              END IF;
            END LOOP;
            CONTINUE WHEN zero_is_unlimited AND ceiling = 0;
            current := {_QUANTITY}(current_setting(limit_name));
            IF current IS NULL OR current > ceiling OR (zero_is_unlimited AND current = 0) THEN
              loosened := loosened || (limit_name || ' = ' || current_setting(limit_name));
            END IF;
          END LOOP;
          IF cardinality(loosened) > 0 THEN
            RAISE EXCEPTION 'this session loosened its limits (%); reset them to read',
              array_to_string(loosened, ', ') USING ERRCODE = 'insufficient_privilege';
          END IF;
          RETURN true;
        END
        $$"""


_POLICIES = (
    f"CREATE POLICY verified_customer ON customer FOR SELECT USING (customer_id = {_SCOPED})",
    f"CREATE POLICY sender_lookup ON customer FOR SELECT TO {LOOKUP_ROLE} USING (true)",
    f"CREATE POLICY verified_customer ON address FOR SELECT USING (address_id IN "
    f"(SELECT c.address_id FROM customer AS c WHERE c.customer_id = {_SCOPED}))",
    f"CREATE POLICY verified_customer ON rental FOR SELECT USING (customer_id = {_SCOPED})",
    f"CREATE POLICY verified_customer ON payment FOR SELECT USING (customer_id = {_SCOPED})",
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
        WHERE c.customer_id = {_SCOPED}""",
    f"""CREATE VIEW my_rentals WITH (security_barrier) AS
        SELECT r.rental_id, i.film_id, f.title, r.inventory_id, i.store_id, r.rental_date,
               r.return_date, r.rental_date + f.rental_duration * interval '1 day' AS due_date,
               f.rental_duration, f.rental_rate, f.replacement_cost
        FROM rental AS r
        LEFT JOIN inventory AS i ON i.inventory_id = r.inventory_id
        LEFT JOIN film AS f ON f.film_id = i.film_id
        WHERE r.customer_id = {_SCOPED}""",
    f"""CREATE VIEW my_payments WITH (security_barrier) AS
        SELECT p.payment_id, p.rental_id, p.amount, p.payment_date, f.title
        FROM payment AS p
        LEFT JOIN rental AS r ON r.rental_id = p.rental_id
        LEFT JOIN inventory AS i ON i.inventory_id = r.inventory_id
        LEFT JOIN film AS f ON f.film_id = i.film_id
        WHERE p.customer_id = {_SCOPED}""",
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
    #: The secret the agent signs each session's scope with (``MEDIAVAULT_SCOPE_KEY``).
    scope_key: str = field(repr=False)
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
    scope_key: str | None = None,
) -> PostgresInitSummary:
    """Create the Sakila schema in the database ``admin_dsn`` names, load data, provision roles.

    ``sqlite_path`` is any Sakila SQLite file to copy; without it the demo data is generated
    (``seed``, ``as_of``). The business date is ``as_of``, else the date stamped in the
    SQLite file, else none (the agent then uses the calendar date). An already initialised
    database is refused unless ``replace`` is true; everything happens in one transaction, so
    a failure leaves the database as it was (roles, which are cluster-wide, excepted).

    ``scope_key`` (hexadecimal, see :mod:`.scope_token`) is the secret the application signs
    each session's customer scope with; a new one is generated when none is given, and the
    summary returns it: the agent needs it as ``MEDIAVAULT_SCOPE_KEY``.
    """
    started = time.perf_counter()
    if statement_timeout_ms < 100 or idle_in_transaction_timeout_ms < 100:
        raise PostgresProvisioningError("timeouts must be at least 100 ms")
    limits = AgentLimits(
        statement_timeout_ms=int(statement_timeout_ms),
        idle_in_transaction_timeout_ms=int(idle_in_transaction_timeout_ms),
    )
    key_text = scope_key.strip() if scope_key else new_scope_key()
    try:
        key = parse_scope_key(key_text)
    except ValueError as error:
        raise PostgresProvisioningError(str(error)) from None
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
                limits=limits,
                scope_key=key,
            )
    return PostgresInitSummary(
        database=database,
        source=source_label,
        row_counts=counts,
        business_date=business,
        agent_role=AGENT_ROLE,
        agent_dsn=dsn_for_role(admin_dsn, AGENT_ROLE),
        scope_key=key_text,
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
    limits: AgentLimits,
    scope_key: bytes,
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
            _create_roles(cursor, database, agent_password, limits)
            _database_privileges(cursor, database)
            cursor.execute(f"SET LOCAL ROLE {_ident(OWNER_ROLE)}")
            _create_tables(cursor)
            with closing(
                sqlite3.connect(f"{source_path.resolve().as_uri()}?mode=ro", uri=True)
            ) as source:
                counts = {table: _copy_table(connection, source, table) for table in TABLES}
            _constrain(cursor)
            _secure(cursor, limits, scope_key)
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
    limits: AgentLimits,
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
    # A session can still SET these itself: session_limits_ok() refuses every read of a
    # business table in a session that loosened one.
    for setting, value in (
        ("statement_timeout", f"{limits.statement_timeout_ms}ms"),
        ("idle_in_transaction_session_timeout", f"{limits.idle_in_transaction_timeout_ms}ms"),
        ("lock_timeout", f"{limits.lock_timeout_ms}ms"),
        ("work_mem", f"{limits.work_mem_kb}kB"),
        ("hash_mem_multiplier", str(limits.hash_mem_multiplier)),
        ("max_parallel_workers_per_gather", str(limits.max_parallel_workers_per_gather)),
        ("default_transaction_read_only", "on"),
        ("search_path", "public"),
        # Temporary files are how a runaway sort or join would fill a disk. Memory per query:
        # each sort or hash step gets work_mem before it spills to those files, and no parallel
        # workers multiply it (the session sets the same again).
        ("temp_file_limit", "64MB"),
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


def _secure(cursor: psycopg.Cursor[Any], limits: AgentLimits, scope_key: bytes) -> None:
    agent, lookup = _ident(AGENT_ROLE), _ident(LOOKUP_ROLE)
    private = _ident(PRIVATE_SCHEMA)
    cursor.execute(f"CREATE SCHEMA {private}")
    cursor.execute(f"REVOKE ALL ON SCHEMA {private} FROM PUBLIC")
    cursor.execute(_SCOPE_KEY_TABLE)
    cursor.execute(
        f"INSERT INTO {private}.scope_key (inner_pad, outer_pad) VALUES (%s, %s)",
        list(hmac_pads(scope_key)),
    )
    for statement in (_quantity_function(), _limits_function(limits), *_FUNCTIONS):
        cursor.execute(statement)
    cursor.execute(f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {private} FROM PUBLIC")
    # FORCE: the owner (and so every view it owns) is bound by the policies too.
    for table in (*ACCOUNT_TABLES, *CATALOG_TABLES):
        cursor.execute(f"ALTER TABLE {_ident(table)} ENABLE ROW LEVEL SECURITY")
        cursor.execute(f"ALTER TABLE {_ident(table)} FORCE ROW LEVEL SECURITY")
    for table in CATALOG_TABLES:
        # Every row of the catalog, for a session that kept its limits (other roles pass).
        cursor.execute(
            f"CREATE POLICY session_limits ON {_ident(table)} USING ((SELECT {_LIMITS_OK}))"
        )
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
    cursor.execute(
        f"GRANT EXECUTE ON FUNCTION {_VERIFIED}, {_LIMITS_OK}, {_QUANTITY}(text), "
        f"{PRIVATE_SCHEMA}.scope_customer_id(text, bigint) TO {agent}"
    )


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
