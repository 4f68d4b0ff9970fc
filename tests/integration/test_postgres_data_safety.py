"""The Postgres business database against a real server: grants, row security, timeouts.

Each Sakila source (the generated demo and the original file) is loaded through the loader
into a database of its own; every query then runs as ``mediavault_agent``, the role the agent
uses in production. The SQLite adversarial corpus (tests/unit) is replayed in the Postgres
dialect, then Postgres's own attacks; and every layer is checked alone: raw SQL as the agent
role with no guard at all, and the owner role bound by ``FORCE ROW LEVEL SECURITY``.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest
from postgres_cluster import PostgresCluster, shared_cluster

from mediavault.tools.business_db.postgres import PostgresScopedConnection, QueryWatchdog
from mediavault.tools.business_db.postgres_loader import (
    ACCOUNT_TABLES,
    AGENT_ROLE,
    OWNER_ROLE,
    TABLES,
    PostgresProvisioningError,
    dsn_for_role,
    init_postgres_database,
)
from mediavault.tools.business_db.scope_token import (
    IDENTIFY_BACKEND_SQL,
    SCOPE_KEY_ENV,
    Backend,
    new_scope_key,
    sign_scope,
)
from mediavault.tools.business_db.sessions import (
    BusinessDatabase,
    BusinessDatabaseError,
    CustomerIdentity,
    DataAccessRefused,
    ScopedSession,
    open_business_db,
)
from mediavault.tools.business_db.sql_guard import function_examples

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="session")
def pg_cluster(request: pytest.FixtureRequest) -> PostgresCluster:
    return shared_cluster(request)


UNIT = Path(__file__).resolve().parents[1] / "unit"


def _unit_module(name: str) -> ModuleType:
    """A unit test module, loaded for its corpus lists (its tests are not collected here)."""
    spec = importlib.util.spec_from_file_location(f"corpus_{name}", UNIT / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


_SCOPING = _unit_module("test_sender_scoping")
_GUARD = _unit_module("test_sql_guard")

#: Attacks that only mean something on Postgres.
POSTGRES_ATTACKS = [
    "SELECT set_config('mediavault.customer_id', '7', true), (SELECT email FROM customer)",
    "SELECT set_config('mediavault.customer_id', '7', true), (SELECT email FROM my_account)",
    "SET statement_timeout = 0",
    "SET LOCAL mediavault.customer_id = 7",
    "SET ROLE mediavault_owner",
    "RESET ALL",
    "RESET mediavault.customer_id",
    "SELECT pg_sleep(60)",
    "SELECT pg_catalog.pg_sleep(60)",
    "SELECT 1; UPDATE film SET title = 'x'",
    "SELECT 1; SET mediavault.customer_id = '7'",
    "COPY customer TO STDOUT",
    "COPY (SELECT email FROM customer) TO '/tmp/stolen.csv'",
    "SELECT * FROM dblink('host=evil', 'SELECT 1') AS t(a int)",
    "SELECT lo_import('/etc/passwd')",
    "SELECT lo_get(1)",
    "SELECT lo_create(0)",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT current_setting('mediavault.customer_id')",
    "SELECT query_to_xml('SELECT email FROM customer', true, true, '')",
    "SELECT * FROM pg_stat_activity",
    "SELECT usename, passwd FROM pg_shadow",
    "SELECT * FROM pg_catalog.pg_authid",
    "SELECT * FROM information_schema.role_table_grants",
    "SELECT 'customer'::regclass",
    "SELECT * FROM film FOR UPDATE",
    "SELECT * INTO stolen FROM film",
    "CREATE TEMP TABLE stolen AS SELECT * FROM film",
    "TRUNCATE rental",
    "DELETE FROM my_rentals",
    "UPDATE my_account SET email = 'x@evil.example'",
    "GRANT SELECT ON customer TO PUBLIC",
    "ALTER TABLE customer DISABLE ROW LEVEL SECURITY",
    "DO $$ BEGIN PERFORM 1; END $$",
    "SELECT repeat('x', 1000000000)",
    "SELECT email FROM public.customer",
    "SELECT * FROM mediavault_private.resolve_sender('dana.whitfield@example.com')",
    "SELECT * FROM customer_list",
    "SELECT email FROM my_account UNION ALL SELECT email FROM customer",
]


@dataclass(frozen=True)
class LoadedSakila:
    """A Sakila source loaded into its own Postgres database, and facts to check against."""

    name: str
    source: Path
    admin_dsn: str
    agent_dsn: str
    database: str
    scope_key: bytes
    sender_email: str
    sender_id: int
    other_ids: tuple[int, ...]
    foreign_pii: frozenset[str]
    own_rental_count: int


def _facts(source: Path) -> dict[str, Any]:
    with closing(sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        sender_id, email = conn.execute(
            "SELECT customer_id, email FROM customer WHERE email IS NOT NULL "
            "AND customer_id IN (SELECT customer_id FROM rental) ORDER BY customer_id LIMIT 1"
        ).fetchone()
        others = [
            row[0]
            for row in conn.execute(
                "SELECT customer_id FROM customer WHERE customer_id <> ? "
                "AND customer_id IN (SELECT customer_id FROM rental) ORDER BY customer_id LIMIT 5",
                (sender_id,),
            )
        ]
        people = conn.execute(
            "SELECT c.customer_id, c.email, a.phone, a.address FROM customer c "
            "JOIN address a USING (address_id)"
        ).fetchall()
        staff = conn.execute("SELECT email, username, password FROM staff").fetchall()
        rentals = conn.execute(
            "SELECT count(*) FROM rental WHERE customer_id = ?", (sender_id,)
        ).fetchone()[0]

    def usable(values: Any) -> set[str]:
        return {str(v).strip() for v in values if v is not None and len(str(v).strip()) >= 6}

    own = set().union(*(usable(r[1:]) for r in people if r[0] == sender_id))
    foreign = set().union(*(usable(r[1:]) for r in people if r[0] != sender_id))
    foreign |= set().union(*(usable(r) for r in staff))
    return {
        "sender_email": email,
        "sender_id": sender_id,
        "other_ids": tuple(others),
        "foreign_pii": frozenset(foreign - own),
        "own_rental_count": rentals,
    }


@pytest.fixture(scope="module", params=["demo", "original"])
def sakila(request: pytest.FixtureRequest, pg_cluster: PostgresCluster) -> Iterator[LoadedSakila]:
    source_fixture = "demo_db_path" if request.param == "demo" else "original_sakila_path"
    source: Path = request.getfixturevalue(source_fixture)
    database = pg_cluster.create_database(f"safety_{request.param}")
    admin = pg_cluster.dsn(database)
    summary = init_postgres_database(
        admin, sqlite_path=source, statement_timeout_ms=3000, scope_key=new_scope_key()
    )
    assert summary.warnings == ()
    # The application's own secret, which the agent role's credentials do not give.
    patch = pytest.MonkeyPatch()
    patch.setenv(SCOPE_KEY_ENV, summary.scope_key)
    yield LoadedSakila(
        name=request.param,
        source=source,
        admin_dsn=admin,
        agent_dsn=summary.agent_dsn,
        database=database,
        scope_key=bytes.fromhex(summary.scope_key),
        **_facts(source),
    )
    patch.undo()
    pg_cluster.drop_database(database)


@pytest.fixture(scope="module")
def database(sakila: LoadedSakila) -> Iterator[BusinessDatabase]:
    with open_business_db(sakila.agent_dsn, time_budget_seconds=0.5) as db:
        yield db


@pytest.fixture(scope="module")
def sender(database: BusinessDatabase, sakila: LoadedSakila) -> CustomerIdentity:
    customer = database.resolve_sender(sakila.sender_email.upper())
    assert customer is not None and customer.customer_id == sakila.sender_id
    return customer


@pytest.fixture
def session(database: BusinessDatabase, sender: CustomerIdentity) -> Iterator[ScopedSession]:
    with database.session(sender) as scoped:
        yield scoped


def _fingerprint(sakila: LoadedSakila) -> dict[str, Any]:
    """Everything a successful write or escape would change, seen by the superuser."""
    with psycopg.connect(sakila.admin_dsn, autocommit=True) as conn:
        counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone() for t in TABLES}
        titles = conn.execute("SELECT md5(string_agg(title, ',' ORDER BY film_id)) FROM film")
        emails = conn.execute(
            "SELECT md5(string_agg(coalesce(email, ''), ',' ORDER BY customer_id)) FROM customer"
        )
        relations = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
        )
        security = conn.execute(
            "SELECT string_agg(relname || relrowsecurity || relforcerowsecurity, ',' "
            "ORDER BY relname) FROM pg_class WHERE relname = ANY(%s)",
            [list(ACCOUNT_TABLES)],
        )
        settings = conn.execute(
            "SELECT string_agg(array_to_string(setconfig, ';'), '|') FROM pg_db_role_setting"
        )
        return {
            "counts": counts,
            "titles": titles.fetchone(),
            "emails": emails.fetchone(),
            "relations": relations.fetchone(),
            "security": security.fetchone(),
            "settings": settings.fetchone(),
        }


def _leaked(sakila: LoadedSakila, payload: object) -> set[str]:
    text = json.dumps(payload, default=str)
    return {value for value in sakila.foreign_pii if value in text}


def _agent(sakila: LoadedSakila) -> psycopg.Connection[Any]:
    """A raw connection as the agent role: no guard, no application, just the server."""
    return psycopg.connect(sakila.agent_dsn, autocommit=True)


def _bind_scope(sakila: LoadedSakila, conn: psycopg.Connection[Any], customer_id: int) -> None:
    """Do what the application does: sign this backend's scope with the application's key."""
    pid, started_us, server_now = conn.execute(IDENTIFY_BACKEND_SQL).fetchone()
    token = sign_scope(sakila.scope_key, customer_id, Backend(pid, started_us), server_now + 60)
    conn.execute(
        psycopg.sql.SQL("SET mediavault.scope = {}").format(psycopg.sql.Literal(token))
    )


# ------------------------------------------------------------ the whole corpus, Postgres dialect


def _corpus() -> list[str]:
    statements = [sql for sql, _ in _GUARD.REFUSED]
    statements += [t.format(dir="/tmp", me=1) for t in _SCOPING.WRITES_AND_ESCAPES]
    statements += [t.format(me=1) for t in _SCOPING.ACCOUNT_DATA_PROBES]
    statements += [t.format(dir="/tmp") for t in _SCOPING.RAW_WRITES]
    statements += POSTGRES_ATTACKS
    return list(dict.fromkeys(statements))


CORPUS = _corpus()


def test_the_whole_corpus_is_refused_and_changes_nothing(
    sakila: LoadedSakila, session: ScopedSession
) -> None:
    before = _fingerprint(sakila)
    answered = []
    for sql in CORPUS:
        try:
            result = session.run_query(sql)
        except DataAccessRefused as refusal:
            assert refusal.rule and 10 < len(refusal.message) < 400, sql
            assert "Traceback" not in refusal.message
            continue
        answered.append((sql, result.rows[:3]))
    assert answered == []
    assert _fingerprint(sakila) == before
    # The sender's own scope still works afterwards.
    assert session.run_query("SELECT count(*) AS n FROM my_account").rows == [{"n": 1}]


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        (
            "SELECT set_config('mediavault.customer_id', '7', true), (SELECT email FROM customer)",
            "function_not_allowed",
        ),
        ("SET statement_timeout = 0", "select_only"),
        ("RESET ALL", "select_only"),
        ("SELECT pg_sleep(60)", "function_not_allowed"),
        ("SELECT 1; UPDATE film SET title = 'x'", "single_statement"),
        ("COPY customer TO STDOUT", "select_only"),
        ("SELECT lo_import('/etc/passwd')", "function_not_allowed"),
        ("SELECT * FROM dblink('host=evil', 'SELECT 1') AS t(a int)", "table_function"),
        ("SELECT email FROM customer", "account_data"),
    ],
)
def test_postgres_attacks_are_refused_by_the_guard_with_a_reason(
    session: ScopedSession, sql: str, rule: str
) -> None:
    started = time.monotonic()
    with pytest.raises(DataAccessRefused) as refused:
        session.run_query(sql)
    assert refused.value.rule == rule
    assert time.monotonic() - started < 1  # refused before anything ran


# ------------------------------------------------------------------- the server alone


@pytest.fixture
def raw_connection(sakila: LoadedSakila, sender: CustomerIdentity) -> Iterator[Any]:
    connection = PostgresScopedConnection(sakila.agent_dsn, sender, time_budget_seconds=0.5)
    try:
        yield connection
    finally:
        connection.close()


@pytest.mark.parametrize("sql", POSTGRES_ATTACKS)
def test_the_connection_layer_refuses_postgres_attacks_without_the_guard(
    sakila: LoadedSakila, raw_connection: PostgresScopedConnection, sql: str
) -> None:
    before = _fingerprint(sakila)
    try:
        fetched = raw_connection.execute(sql)
    except DataAccessRefused:
        pass
    else:
        # Only attacks that read nothing foreign may run at all (the scope view, catalog
        # metadata that holds no customer data).
        assert not _leaked(sakila, fetched.rows), sql
    assert _fingerprint(sakila) == before
    # Nothing the statement did outlives it: the scope is still the sender's alone.
    rows = raw_connection.execute("SELECT customer_id FROM my_account").rows
    assert rows == [{"customer_id": sakila.sender_id}]
    assert raw_connection.execute("SHOW statement_timeout").rows == [{"statement_timeout": "500ms"}]


def test_set_config_in_the_same_statement_cannot_switch_customers(
    sakila: LoadedSakila, raw_connection: PostgresScopedConnection
) -> None:
    other = sakila.other_ids[0]
    sql = (
        f"SELECT set_config('mediavault.customer_id', '{other}', true), "
        "(SELECT string_agg(email, ',') FROM my_account)"
    )
    with pytest.raises(DataAccessRefused) as refused:
        raw_connection.execute(sql)
    assert refused.value.rule == "function_not_allowed"
    with _agent(sakila) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT set_config('mediavault.customer_id', %s, false)", [str(other)])


def test_no_customer_set_means_no_account_rows(sakila: LoadedSakila) -> None:
    with _agent(sakila) as conn:
        for view in ("my_account", "my_rentals", "my_payments"):
            assert conn.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,)
        for malformed in ("", "0", "-1", f"{sakila.sender_id} OR 1=1", "1e3", " 1"):
            conn.execute(
                psycopg.sql.SQL("SET mediavault.customer_id = {}").format(
                    psycopg.sql.Literal(malformed)
                )
            )
            assert conn.execute("SELECT count(*) FROM my_account").fetchone() == (0,)


def test_raw_sql_as_the_agent_sees_only_the_signed_customer_and_never_account_tables(
    sakila: LoadedSakila,
) -> None:
    with _agent(sakila) as conn:
        for table in ACCOUNT_TABLES:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM {table} LIMIT 1")
        for customer_id in (sakila.sender_id, *sakila.other_ids):
            _bind_scope(sakila, conn, customer_id)
            accounts = conn.execute("SELECT customer_id FROM my_account").fetchall()
            rentals = conn.execute("SELECT DISTINCT r.rental_id FROM my_rentals r").fetchall()
            payments = conn.execute("SELECT count(*) FROM my_payments").fetchone()
            assert accounts == [(customer_id,)]
            assert rentals, customer_id
            with psycopg.connect(sakila.admin_dsn) as admin:
                expected = admin.execute(
                    "SELECT count(*) FROM rental WHERE customer_id = %s", [customer_id]
                ).fetchone()
                paid = admin.execute(
                    "SELECT count(*) FROM payment WHERE customer_id = %s", [customer_id]
                ).fetchone()
            assert (len(rentals),) == expected and payments == paid


def test_row_security_binds_the_owner_too(sakila: LoadedSakila) -> None:
    with psycopg.connect(sakila.admin_dsn, autocommit=True) as conn:
        conn.execute(f"SET ROLE {OWNER_ROLE}")
        for setting in ("", "mediavault.customer_id", "mediavault.scope"):
            if setting:  # a bare id: what used to bind the scope, and now binds nothing
                conn.execute(f"SET {setting} = '{sakila.sender_id}'")
            assert conn.execute("SELECT count(*) FROM customer").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM staff").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM rental").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM address").fetchone() == (0,)


def test_the_agent_role_has_no_temp_no_create_and_no_write(sakila: LoadedSakila) -> None:
    with _agent(sakila) as conn:
        conn.execute("SET default_transaction_read_only = off")  # only the grants are left
        for sql, error in [
            ("CREATE TEMP TABLE stolen (a int)", psycopg.errors.InsufficientPrivilege),
            ("CREATE TABLE public.stolen (a int)", psycopg.errors.InsufficientPrivilege),
            ("CREATE SCHEMA stolen", psycopg.errors.InsufficientPrivilege),
            ("UPDATE film SET title = 'x'", psycopg.errors.InsufficientPrivilege),
            ("DELETE FROM inventory", psycopg.errors.InsufficientPrivilege),
            (
                "INSERT INTO film_text VALUES (99999, 'x', 'y')",
                psycopg.errors.InsufficientPrivilege,
            ),
            (
                "ALTER TABLE customer DISABLE ROW LEVEL SECURITY",
                psycopg.errors.InsufficientPrivilege,
            ),
            ("SET ROLE mediavault_owner", psycopg.errors.InsufficientPrivilege),
        ]:
            with pytest.raises(error):
                conn.execute(sql)
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('statement_timeout', "
                "'idle_in_transaction_session_timeout', 'default_transaction_read_only')"
            ).fetchall()
        )
    assert settings["statement_timeout"] == "3000"
    assert settings["idle_in_transaction_session_timeout"] == "10000"
    with _agent(sakila) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("CREATE TEMP TABLE x (a int)")  # read-only by default, before any grant


# ------------------------------------------------------------------------------- timeouts


def test_the_time_budget_stops_a_runaway_query(session: ScopedSession) -> None:
    started = time.monotonic()
    with pytest.raises(DataAccessRefused) as refused:
        session.run_query(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
            "SELECT max(x) AS biggest FROM n"
        )
    assert refused.value.rule == "time_budget" and "0.5-second" in refused.value.message
    assert time.monotonic() - started < 3
    assert session.run_query("SELECT count(*) AS n FROM film").rows[0]["n"] > 0


def test_pg_sleep_without_the_guard_is_stopped_by_the_statement_timeout(
    raw_connection: PostgresScopedConnection,
) -> None:
    started = time.monotonic()
    with pytest.raises(DataAccessRefused) as refused:
        raw_connection.execute("SELECT pg_sleep(60)")
    assert refused.value.rule == "time_budget"
    assert time.monotonic() - started < 2.5


def test_the_role_timeout_holds_for_a_session_the_application_did_not_set_up(
    sakila: LoadedSakila,
) -> None:
    started = time.monotonic()
    with _agent(sakila) as conn, pytest.raises(psycopg.errors.QueryCanceled):
        conn.execute("SELECT pg_sleep(60)")
    assert 2.5 < time.monotonic() - started < 10  # the role's 3-second statement_timeout


def test_the_client_watchdog_cancels_when_the_server_does_not(sakila: LoadedSakila) -> None:
    with _agent(sakila) as conn:
        conn.execute("SET statement_timeout = 0")  # as if the server-side limit were gone
        started = time.monotonic()
        with QueryWatchdog(conn, 0.5) as watchdog, pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(30)")
        assert watchdog.fired
        assert time.monotonic() - started < 3
        assert conn.execute("SELECT 1").fetchone() == (1,)


# ------------------------------------------------------------------ scoping, no false alarms


def test_scope_tricks_return_only_the_senders_rows(
    sakila: LoadedSakila, session: ScopedSession
) -> None:
    for sql in _SCOPING.SCOPE_TRICKS:
        sql = sql.replace("hex(email)", "md5(email)").replace("group_concat(phone)", "max(phone)")
        sql = sql.replace("temp.my_account", "public.my_account")
        try:
            result = session.run_query(sql)
        except DataAccessRefused as refusal:  # md5 is not on the allowlist: refused, fine
            assert refusal.rule == "function_not_allowed", sql
            continue
        assert result.row_count > 0, sql
        assert not _leaked(sakila, result.model_dump()), sql
        for row in result.rows:
            if "customer_id" in row:
                assert row["customer_id"] == sakila.sender_id


def test_other_customers_see_only_their_own_rows(
    sakila: LoadedSakila, database: BusinessDatabase
) -> None:
    with psycopg.connect(sakila.admin_dsn) as admin:
        emails = dict(
            admin.execute(
                "SELECT customer_id, email FROM customer WHERE customer_id = ANY(%s)",
                [list(sakila.other_ids)],
            ).fetchall()
        )
    for customer_id, email in emails.items():
        customer = database.resolve_sender(email)
        assert customer is not None and customer.customer_id == customer_id
        with database.session(customer) as scoped:
            rows = scoped.run_query("SELECT * FROM my_account").rows
            assert [r["customer_id"] for r in rows] == [customer_id]
            titles = scoped.run_query("SELECT count(*) AS n FROM my_rentals").rows[0]["n"]
            assert titles > 0
            assert sakila.sender_email not in json.dumps(
                scoped.run_query("SELECT * FROM my_payments LIMIT 100").rows
            )


def test_own_rentals_are_all_there_with_due_dates(
    sakila: LoadedSakila, session: ScopedSession
) -> None:
    result = session.run_query(
        "SELECT count(*) AS n, sum(CASE WHEN due_date = rental_date + rental_duration * "
        "interval '1 day' THEN 1 ELSE 0 END) AS consistent FROM my_rentals"
    )
    n = sakila.own_rental_count
    assert result.rows == [{"n": n, "consistent": n}]


def test_the_rules_models_query_runs_unchanged(session: ScopedSession) -> None:
    result = session.run_query(
        "SELECT r.rental_id, r.title, r.rental_date, r.due_date, r.return_date, "
        "r.rental_rate, r.replacement_cost, p.amount, p.payment_date "
        "FROM my_rentals AS r LEFT JOIN my_payments AS p ON p.rental_id = r.rental_id "
        "ORDER BY r.rental_date DESC LIMIT 40"
    )
    assert result.row_count > 0
    row = result.rows[0]
    # The same JSON shapes as SQLite: text timestamps, numbers as numbers.
    assert isinstance(row["rental_date"], str) and len(row["rental_date"]) == 19
    assert isinstance(row["rental_rate"], float)


@pytest.mark.parametrize(("name", "call"), list(function_examples("postgres")))
def test_every_allowlisted_postgres_function_runs_as_the_agent(
    session: ScopedSession, name: str, call: str
) -> None:
    assert session.run_query(f"SELECT {call} AS value").row_count == 1, name


def test_every_described_table_is_queryable(session: ScopedSession) -> None:
    schema = session.describe_schema()
    assert schema.dialect == "postgres" and schema.sender_verified
    names = {t.name for t in schema.tables}
    assert {"my_account", "my_rentals", "my_payments", "film", "film_list"} <= names
    assert not names & {"customer", "rental", "payment", "address", "staff"}
    for table in schema.tables:
        columns = ", ".join(f'"{c.name}"' for c in table.columns)
        session.run_query(f'SELECT {columns} FROM "{table.name}" LIMIT 1')


def test_row_and_size_caps_hold_at_the_connection(raw_connection: PostgresScopedConnection) -> None:
    fetched = raw_connection.execute("SELECT a.film_id FROM film a, film b")
    assert len(fetched.rows) == 100 and "100" in (fetched.truncation_note or "")
    fetched = raw_connection.execute("SELECT film_id, repeat('x', 2000) AS filler FROM film")
    assert 0 < len(fetched.rows) < 100 and "KiB" in (fetched.truncation_note or "")


# ------------------------------------------------------------------- identities and roles


def test_unverified_sender_gets_catalog_only(database: BusinessDatabase) -> None:
    with database.session(None) as scoped:
        assert scoped.run_query("SELECT count(*) AS n FROM film").rows[0]["n"] > 0
        with pytest.raises(DataAccessRefused) as refused:
            scoped.run_query("SELECT * FROM my_account")
        assert refused.value.rule == "unverified_sender"
        assert scoped.sender_contacts() == set()


def test_forged_identity_is_refused(database: BusinessDatabase, sender: CustomerIdentity) -> None:
    forged = sender.model_copy(update={"customer_id": sender.customer_id + 1})
    with pytest.raises(DataAccessRefused) as refused, database.session(forged):
        pass
    assert refused.value.rule == "identity_mismatch"


@pytest.mark.parametrize(
    "address", ["%", "%@%", "' OR '1'='1", "nobody@example.invalid", "", "not-an-address"]
)
def test_sender_resolution_is_an_exact_match(database: BusinessDatabase, address: str) -> None:
    assert database.resolve_sender(address) is None


def test_a_privileged_role_is_refused_as_the_agent(sakila: LoadedSakila) -> None:
    with psycopg.connect(sakila.admin_dsn, autocommit=True) as conn:
        for role, options in [("mv_test_bypass", "LOGIN BYPASSRLS"), ("mv_test_member", "LOGIN")]:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
                continue
            conn.execute(f"CREATE ROLE {role} {options}")
        conn.execute(f"GRANT {OWNER_ROLE} TO mv_test_member")
    for role, problem in [
        ("postgres", "is a superuser"),
        ("mv_test_bypass", "bypasses row-level security"),
        ("mv_test_member", "owns the business tables"),
    ]:
        with pytest.raises(BusinessDatabaseError, match=problem):
            open_business_db(dsn_for_role(sakila.admin_dsn, role))


def test_business_date_is_stored_in_the_database(sakila: LoadedSakila) -> None:
    with open_business_db(sakila.agent_dsn) as db:
        stamped = db.stamped_business_date()
    assert (stamped is None) == (sakila.name == "original")  # the original file has no stamp


# ------------------------------------------------------------------------------- the loader


def test_loaded_row_counts_match_the_source(sakila: LoadedSakila) -> None:
    with closing(sqlite3.connect(f"{sakila.source.resolve().as_uri()}?mode=ro", uri=True)) as src:
        expected = {t: src.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in TABLES}
    with psycopg.connect(sakila.admin_dsn) as conn:
        loaded = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in TABLES}
    assert loaded == expected


def test_loading_twice_needs_force(sakila: LoadedSakila) -> None:
    with pytest.raises(PostgresProvisioningError, match="--force"):
        init_postgres_database(sakila.admin_dsn, sqlite_path=sakila.source)


def test_provisioning_needs_a_superuser(pg_cluster: PostgresCluster) -> None:
    database = pg_cluster.create_database("nosuper")
    try:
        with psycopg.connect(pg_cluster.dsn(database), autocommit=True) as conn:
            conn.execute("DROP ROLE IF EXISTS plain_admin")
            conn.execute("CREATE ROLE plain_admin LOGIN CREATEROLE")
        with pytest.raises(PostgresProvisioningError, match="superuser"):
            init_postgres_database(pg_cluster.dsn(database, user="plain_admin"))
    finally:
        pg_cluster.drop_database(database)


def test_agent_dsn_names_the_agent_role_without_a_password() -> None:
    dsn = dsn_for_role(
        "postgresql://admin:s3cret@db.internal:5433/sakila?sslmode=require", AGENT_ROLE
    )
    assert dsn == "postgresql://mediavault_agent@db.internal:5433/sakila?sslmode=require"


# ------------------------------------------------------------------------- memory per query

HOSTILE_MEMORY_QUERIES = [
    "SELECT count(DISTINCT a.description || b.description) AS n FROM film a, film b",
    "SELECT a.description || b.description AS x FROM film a, film b GROUP BY x",
    "SELECT a.description, row_number() OVER (ORDER BY a.description || b.title) AS r "
    "FROM film a, film b",
    "SELECT a.description || b.description AS x FROM film a, film b ORDER BY x DESC",
    "SELECT max(a.description || b.description || a.title) AS s FROM film a, film b",
    "SELECT a.film_id FROM film a JOIN film b ON a.description || b.title = "
    "b.description || a.title",
]


def _private_memory_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return sum(int(line.split()[1]) for line in status.splitlines()
               if line.startswith(("RssAnon:", "VmSwap:")))


@pytest.mark.parametrize("query", HOSTILE_MEMORY_QUERIES)
def test_a_guard_approved_query_holds_at_most_64_mb_on_postgres(
    session: ScopedSession, query: str
) -> None:
    import threading

    from mediavault.tools.business_db.sql_guard import guard_sql

    guard_sql(query, dialect="postgres", max_rows=100)  # the guard lets it through
    pid = session._connection.connection.info.backend_pid  # type: ignore[attr-defined]
    baseline = _private_memory_kib(pid)
    peak = [baseline]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _private_memory_kib(pid))
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        session.run_query(query)
    except DataAccessRefused:
        pass  # stopped by the time budget or a cap: what it held until then still counts
    finally:
        stop.set()
        sampler.join()
    grown_mb = (peak[0] - baseline) / 1024
    print(f"postgres backend grew {grown_mb:.1f} MB")
    assert grown_mb <= 64, f"the backend held {grown_mb:.0f} MB more for {query!r}"
