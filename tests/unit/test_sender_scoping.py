"""The data layer: read-only access, sender scoping and query limits, layer by layer.

Every test runs against the generated demo database and the original Sakila file, each copied
into a private, writable directory: if any layer let a write through, the copy would change.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from mediavault.tools.business_db.sessions import (
    BusinessDatabase,
    BusinessDatabaseError,
    CustomerIdentity,
    DataAccessRefused,
    ScopedSession,
    open_business_db,
)
from mediavault.tools.business_db.sql_guard import allowed_functions, function_examples
from mediavault.tools.business_db.sqlite import ScopeAuthorizer, ScopedConnection, connect_read_only


@dataclass(frozen=True)
class Sakila:
    """A private copy of a Sakila database and the facts the tests check against."""

    path: Path
    sender_email: str
    sender_id: int
    own_values: frozenset[str]
    #: Other customers' and staff's e-mails, phones, street addresses and credentials.
    foreign_pii: frozenset[str]
    own_rental_count: int
    own_payment_total: float


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _facts(path: Path) -> Sakila:
    with closing(_raw(path)) as conn:
        sender_id, email = conn.execute(
            "SELECT c.customer_id, c.email FROM customer c "
            "WHERE c.email IS NOT NULL AND c.customer_id IN (SELECT customer_id FROM rental) "
            "AND c.customer_id IN (SELECT customer_id FROM payment) ORDER BY c.customer_id LIMIT 1"
        ).fetchone()
        people = conn.execute(
            "SELECT c.customer_id, c.email, a.phone, a.address, a.address2 FROM customer c "
            "JOIN address a USING (address_id)"
        ).fetchall()
        staff = conn.execute(
            "SELECT s.email, s.username, s.password, a.phone, a.address FROM staff s "
            "JOIN address a USING (address_id)"
        ).fetchall()
        rentals = conn.execute(
            "SELECT count(*) FROM rental WHERE customer_id = ?", (sender_id,)
        ).fetchone()[0]
        total = conn.execute(
            "SELECT round(sum(amount), 2) FROM payment WHERE customer_id = ?", (sender_id,)
        ).fetchone()[0]

    def usable(values: Iterable[object]) -> set[str]:
        # Blank or very short values (' ', '') would match anything.
        return {str(v).strip() for v in values if v is not None and len(str(v).strip()) >= 6}

    own = set().union(*(usable(row[1:]) for row in people if row[0] == sender_id))
    foreign = set().union(*(usable(row[1:]) for row in people if row[0] != sender_id))
    foreign |= set().union(*(usable(row) for row in staff))
    return Sakila(
        path=path,
        sender_email=email,
        sender_id=sender_id,
        own_values=frozenset(own),
        foreign_pii=frozenset(foreign - own),
        own_rental_count=rentals,
        own_payment_total=total,
    )


@pytest.fixture(scope="module", params=["demo", "original"])
def sakila(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Sakila:
    source_fixture = "demo_db_path" if request.param == "demo" else "original_sakila_path"
    source: Path = request.getfixturevalue(source_fixture)
    copy = tmp_path_factory.mktemp(f"scoping-{request.param}") / "sakila.sqlite"
    shutil.copyfile(source, copy)
    copy.chmod(0o644)  # writable: only the data layer may keep it unchanged
    return _facts(copy)


@pytest.fixture(scope="module")
def database(sakila: Sakila) -> Iterator[BusinessDatabase]:
    with open_business_db(sakila.path, time_budget_seconds=0.5) as db:
        yield db


@pytest.fixture(scope="module")
def sender(database: BusinessDatabase, sakila: Sakila) -> CustomerIdentity:
    customer = database.resolve_sender(sakila.sender_email)
    assert customer is not None and customer.customer_id == sakila.sender_id
    return customer


@pytest.fixture
def session(database: BusinessDatabase, sender: CustomerIdentity) -> Iterator[ScopedSession]:
    with database.session(sender) as scoped:
        yield scoped


@pytest.fixture
def catalog_session(database: BusinessDatabase) -> Iterator[ScopedSession]:
    with database.session(None) as scoped:
        yield scoped


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def file_untouched(path: Path) -> Iterator[None]:
    """Assert the database file's bytes and its directory's listing do not change."""
    digest, listing = _sha256(path), sorted(p.name for p in path.parent.iterdir())
    yield
    assert _sha256(path) == digest, "the database file changed"
    assert sorted(p.name for p in path.parent.iterdir()) == listing, "a file appeared beside it"


def _refused(session: ScopedSession, sql: str) -> DataAccessRefused:
    with pytest.raises(DataAccessRefused) as refused:
        session.run_query(sql)
    return refused.value


def _leaked(sakila: Sakila, payload: object) -> set[str]:
    text = json.dumps(payload, default=str)
    return {value for value in sakila.foreign_pii if value in text}


# ---------------------------------------------------------------- writes and escapes refused

WRITES_AND_ESCAPES = [
    "REPLACE INTO film (film_id, title, language_id) VALUES (1, 'x', 1)",
    "WITH a AS (SELECT 1) REPLACE INTO film (film_id) SELECT * FROM a",
    "CREATE TABLE stolen AS SELECT * FROM customer",
    "ATTACH DATABASE '{dir}/evil.sqlite' AS evil",
    "VACUUM INTO '{dir}/copy.sqlite'",
    "PRAGMA query_only=0",
    "PRAGMA writable_schema=ON",
    "SELECT load_extension('evil')",
    "SELECT 1; DELETE FROM rental",
    "DELETE FROM rental",
    "UPDATE film SET title = 'x'",
    "INSERT INTO temp.my_account (customer_id) VALUES (999)",
    "DROP TABLE temp.my_rentals",
    "SELECT * FROM pragma_table_info('customer')",
    "SELECT name FROM pragma_database_list",
    "SELECT randomblob(1000000000)",
    "SELECT count(*) FROM rental a, rental b, rental c",
]


@pytest.mark.parametrize("template", WRITES_AND_ESCAPES)
def test_writes_and_escapes_are_refused_and_leave_the_file_untouched(
    sakila: Sakila, session: ScopedSession, template: str
) -> None:
    # Files a successful escape would create land beside the database, where they are seen.
    sql = template.format(dir=sakila.path.parent)
    with file_untouched(sakila.path):
        refusal = _refused(session, sql)
    assert refusal.rule and refusal.message
    # The sender's own scope is intact afterwards.
    assert session.run_query("SELECT count(*) AS n FROM my_account").rows == [{"n": 1}]


def test_infinite_recursive_cte_is_stopped_by_the_time_budget(
    sakila: Sakila, session: ScopedSession
) -> None:
    started = time.monotonic()
    with file_untouched(sakila.path):
        refusal = _refused(
            session,
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
            "SELECT max(x) AS biggest FROM n",
        )
    assert refusal.rule == "time_budget"
    assert "0.5-second" in refusal.message
    assert time.monotonic() - started < 3


def test_triple_cross_join_is_stopped_by_the_time_budget(
    sakila: Sakila, session: ScopedSession
) -> None:
    with file_untouched(sakila.path):
        refusal = _refused(
            session, "SELECT count(*) AS n FROM inventory a, inventory b, inventory c"
        )
    assert refusal.rule == "time_budget"


def test_triple_cross_join_of_rental_is_refused_as_account_data(
    sakila: Sakila, session: ScopedSession
) -> None:
    with file_untouched(sakila.path):
        refusal = _refused(session, "SELECT count(*) AS n FROM rental a, rental b, rental c")
    assert refusal.rule == "account_data"
    assert "my_rentals" in refusal.message


# ---------------------------------------------------------------- no other customer's PII

#: Queries that read account tables, however disguised: refused outright.
ACCOUNT_DATA_PROBES = [
    "SELECT email FROM customer -- WHERE customer_id = {me}",
    "SELECT email, phone FROM customer_list /* WHERE ID = {me} */",
    "SELECT email FROM customer WHERE first_name = 'x'' OR 1=1 --'",
    "SELECT email FROM customer WHERE 'WHERE customer_id = {me}' <> ''",
    "SELECT email FROM customer WHERE customer_id = customer_id",
    "SELECT c.email FROM my_account m JOIN customer c ON c.customer_id = c.customer_id",
    "SELECT email FROM customer WHERE customer_id = {me} OR 1=1",
    "SELECT * FROM customer_list",
    "SELECT * FROM staff_list",
    "SELECT * FROM sales_by_store",
    "SELECT * FROM sales_by_film_category",
    "SELECT hex(email) AS h FROM customer",
    "SELECT (SELECT group_concat(email) FROM customer) AS everyone FROM my_account",
    "SELECT title FROM film WHERE EXISTS (SELECT 1 FROM customer WHERE email LIKE 'a%')",
    "SELECT title FROM film WHERE film_id IN (SELECT customer_id FROM customer)",
    "SELECT title FROM film ORDER BY (SELECT count(*) FROM payment)",
    "SELECT title FROM film LIMIT 1 OFFSET (SELECT count(*) FROM rental)",
    "WITH my_account AS (SELECT * FROM customer) SELECT * FROM my_account",
    "WITH my_account AS (SELECT email FROM customer) SELECT * FROM my_account",
    "WITH MY_ACCOUNT AS (SELECT * FROM Customer) SELECT email FROM my_account",
    'WITH "my_account" AS (SELECT * FROM "customer") SELECT * FROM "my_account"',
    "WITH my_rentals AS (SELECT * FROM rental) SELECT count(*) AS n FROM my_rentals",
    "WITH film AS (SELECT email AS title FROM customer) SELECT title FROM film",
    "WITH RECURSIVE my_payments(x) AS (SELECT email FROM customer UNION SELECT x FROM my_payments)"
    " SELECT x FROM my_payments",
    "WITH a AS (SELECT * FROM my_account), b AS (SELECT * FROM customer) SELECT * FROM a, b",
    "SELECT title FROM film UNION SELECT email FROM customer",
    "SELECT title FROM film UNION ALL SELECT phone FROM address",
    "SELECT group_concat(email) AS all_emails FROM customer",
    "SELECT a.phone, a.address FROM my_account m JOIN address a ON 1 = 1",
    "SELECT phone FROM address",
    "SELECT s.store_id, a.address, a.phone FROM store s JOIN address a USING (address_id)",
    "SELECT username, password FROM staff",
    "SELECT email FROM main.customer",
    'SELECT email FROM "CUSTOMER"',
    "SELECT rowid FROM customer",
    "SELECT count(*) AS n FROM customer",
    "SELECT city FROM city",
    "SELECT * FROM my_account, customer",
    "SELECT * FROM my_rentals r JOIN rental x ON x.inventory_id = r.inventory_id",
    "SELECT * FROM my_payments p JOIN payment x ON x.rental_id = p.rental_id",
    "SELECT json_group_array(email) AS j FROM customer",
]


@pytest.mark.parametrize("template", ACCOUNT_DATA_PROBES)
def test_account_data_probes_are_refused(
    sakila: Sakila, session: ScopedSession, template: str
) -> None:
    with file_untouched(sakila.path):
        refusal = _refused(session, template.format(me=sakila.sender_id))
    assert refusal.rule in {"account_data", "function_not_allowed"}


#: Tricks within the sender's own tables: they run, and return only the sender's rows.
SCOPE_TRICKS = [
    "SELECT * FROM my_account WHERE customer_id = customer_id",
    "SELECT * FROM my_account WHERE customer_id = 2 OR 1=1",
    "SELECT * FROM my_account /* WHERE customer_id = 2 */",
    "SELECT * FROM my_account WHERE 'WHERE customer_id = 2' = 'x' OR email IS NOT NULL",
    "SELECT hex(email) AS h, group_concat(phone) AS p FROM my_account",
    "SELECT * FROM temp.my_account UNION SELECT * FROM my_account",
    "SELECT * FROM my_rentals WHERE 1=1 OR rental_id > 0",
    "SELECT * FROM my_payments WHERE amount >= 0 OR 1=1",
    "WITH customer AS (SELECT * FROM my_account) SELECT * FROM customer",
    "SELECT title FROM film UNION SELECT email FROM my_account",
]


@pytest.mark.parametrize("sql", SCOPE_TRICKS)
def test_scope_tricks_return_only_the_senders_rows(
    sakila: Sakila, session: ScopedSession, sql: str
) -> None:
    with file_untouched(sakila.path):
        result = session.run_query(sql)
    assert result.row_count > 0
    assert not _leaked(sakila, result.model_dump())
    for row in result.rows:
        if "customer_id" in row:
            assert row["customer_id"] == sakila.sender_id


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT email FROM customer",
        "SELECT * FROM customer_list",
        "SELECT username, password FROM staff",
        "WITH my_account AS (SELECT email FROM customer) SELECT * FROM my_account",
        "SELECT count(*) AS n FROM customer",
    ],
)
def test_account_tables_are_refused_with_a_pointer_to_the_scope_tables(
    session: ScopedSession, sql: str
) -> None:
    refusal = _refused(session, sql)
    assert refusal.rule == "account_data"
    assert "my_account" in refusal.message


# ---------------------------------------------------------------- connection layer alone

RAW_WRITES = [
    "DELETE FROM rental",
    "SELECT 1; DELETE FROM rental",
    "UPDATE film SET title = 'x'",
    "INSERT INTO film (film_id, title, language_id) VALUES (99999, 'x', 1)",
    "REPLACE INTO film (film_id, title, language_id) VALUES (1, 'x', 1)",
    "CREATE TABLE stolen AS SELECT * FROM film",
    "CREATE TEMP TABLE stolen (x)",
    "INSERT INTO temp.my_account (customer_id) VALUES (999)",
    "UPDATE temp.my_account SET email = 'x'",
    "DELETE FROM temp.my_rentals",
    "DROP TABLE temp.my_payments",
    "ATTACH DATABASE '{dir}/evil.sqlite' AS evil",
    "VACUUM INTO '{dir}/copy.sqlite'",
    "VACUUM",
    "PRAGMA query_only = 0",
    "PRAGMA writable_schema = ON",
    "PRAGMA main.journal_mode = WAL",
    "SELECT load_extension('evil')",
    "SELECT * FROM sqlite_master",
    "SELECT * FROM pragma_table_info('customer')",
    "SELECT randomblob(1000000000)",
    "SELECT email FROM customer",
    "WITH my_account AS (SELECT email FROM customer) SELECT * FROM my_account",
    "SELECT count(*) FROM customer",
    "SELECT * FROM customer_list",
    "SELECT username, password FROM staff",
    "SELECT phone FROM main.address",
]


@pytest.fixture
def scoped_connection(sakila: Sakila, sender: CustomerIdentity) -> Iterator[ScopedConnection]:
    connection = ScopedConnection(sakila.path, sender, time_budget_seconds=0.3)
    try:
        yield connection
    finally:
        connection.close()


@pytest.mark.parametrize("template", RAW_WRITES)
def test_connection_layer_refuses_without_the_guard(
    sakila: Sakila, scoped_connection: ScopedConnection, template: str
) -> None:
    sql = template.format(dir=sakila.path.parent)
    with file_untouched(sakila.path):
        with pytest.raises(DataAccessRefused):
            scoped_connection.execute(sql)
        # The bare sqlite3 connection refuses just the same.
        with pytest.raises((sqlite3.Error, sqlite3.Warning)):
            scoped_connection.connection.execute(sql).fetchall()
    rows = scoped_connection.execute("SELECT customer_id FROM my_account").rows
    assert rows == [{"customer_id": sakila.sender_id}]


@pytest.mark.parametrize(
    "sql",
    [
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT max(x) FROM n",
        "SELECT count(*) FROM film a, film b, film c",
    ],
)
def test_connection_layer_enforces_the_time_budget_without_the_guard(
    sakila: Sakila, scoped_connection: ScopedConnection, sql: str
) -> None:
    started = time.monotonic()
    with pytest.raises(DataAccessRefused) as refused:
        scoped_connection.execute(sql)
    assert refused.value.rule == "time_budget"
    assert time.monotonic() - started < 2
    # The connection stays usable after an interrupted query.
    assert scoped_connection.execute("SELECT count(*) AS n FROM film").rows[0]["n"] > 0


def test_connection_layer_caps_rows_without_the_guard(scoped_connection: ScopedConnection) -> None:
    fetched = scoped_connection.execute("SELECT film_id FROM film")
    assert len(fetched.rows) == 100
    assert fetched.truncation_note is not None and "100" in fetched.truncation_note


def test_read_only_open_alone_refuses_writes(sakila: Sakila) -> None:
    with (
        file_untouched(sakila.path),
        closing(connect_read_only(sakila.path)) as conn,
        pytest.raises(sqlite3.OperationalError, match="readonly"),
    ):
        conn.execute("DELETE FROM rental")


def test_authorizer_alone_refuses_writes_and_account_reads_on_a_writable_connection(
    sakila: Sakila,
) -> None:
    # Even on a connection that could write, the authorizer by itself refuses.
    with file_untouched(sakila.path), closing(sqlite3.connect(sakila.path)) as conn:
        conn.set_authorizer(ScopeAuthorizer(frozenset(), allowed_functions("sqlite")))
        for sql in [
            "DELETE FROM rental",
            "UPDATE film SET title = 'x'",
            "SELECT email FROM customer",
        ]:
            with pytest.raises(sqlite3.DatabaseError, match=r"not authorized|prohibited"):
                conn.execute(sql)
        assert conn.execute("SELECT count(*) FROM film").fetchone()[0] > 0


def test_path_with_uri_characters_cannot_change_the_open_mode(
    sakila: Sakila, tmp_path: Path
) -> None:
    odd_dir = tmp_path / "a b?mode=rwc&immutable=0#x %41"
    odd_dir.mkdir()
    odd = odd_dir / "sakila?mode=rwc.sqlite"
    shutil.copyfile(sakila.path, odd)
    with file_untouched(odd), closing(connect_read_only(odd)) as conn:
        assert conn.execute("SELECT count(*) FROM film").fetchone()[0] > 0
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("DELETE FROM film")


# ---------------------------------------------------------------- no false positives


def test_title_containing_a_write_keyword_is_allowed(session: ScopedSession) -> None:
    result = session.run_query("SELECT title FROM film WHERE title LIKE '%UPDATE%'")
    assert all("UPDATE" in row["title"].upper() for row in result.rows)


def test_last_update_column_is_allowed(session: ScopedSession) -> None:
    result = session.run_query("SELECT last_update FROM film LIMIT 3")
    assert result.columns == ["last_update"] and result.row_count == 3


def test_limit_5_keeps_5_rows(session: ScopedSession) -> None:
    result = session.run_query("SELECT title FROM film LIMIT 5")
    assert result.row_count == 5 and not result.truncated
    assert result.sql.endswith("LIMIT 5")


def test_limit_1000_becomes_100_and_is_flagged(session: ScopedSession) -> None:
    result = session.run_query("SELECT title FROM film LIMIT 1000")
    assert result.row_count == 100
    assert result.truncated and "100" in (result.truncation_note or "")
    assert result.sql.endswith("LIMIT 100")


def test_own_rentals_are_all_there_and_due_dates_follow_the_loan_period(
    sakila: Sakila, session: ScopedSession
) -> None:
    result = session.run_query(
        "SELECT count(*) AS n, "
        "sum(julianday(due_date) - julianday(rental_date) = rental_duration) AS consistent "
        "FROM my_rentals"
    )
    assert result.rows == [{"n": sakila.own_rental_count, "consistent": sakila.own_rental_count}]


def test_own_payments_add_up(sakila: Sakila, session: ScopedSession) -> None:
    result = session.run_query("SELECT round(sum(amount), 2) AS total FROM my_payments")
    assert result.rows[0]["total"] == pytest.approx(sakila.own_payment_total)


def test_own_account_shows_own_contact_details(sakila: Sakila, session: ScopedSession) -> None:
    result = session.run_query("SELECT * FROM my_account")
    assert result.row_count == 1
    assert result.rows[0]["email"].lower() == sakila.sender_email.lower()
    assert not _leaked(sakila, result.rows)


def test_catalog_view_over_catalog_tables_is_readable(session: ScopedSession) -> None:
    result = session.run_query("SELECT title, category FROM film_list LIMIT 3")
    assert result.row_count == 3


@pytest.mark.parametrize(("name", "call"), list(function_examples()))
def test_every_allowlisted_function_runs_under_the_authorizer(
    session: ScopedSession, name: str, call: str
) -> None:
    result = session.run_query(f"SELECT {call} AS value")
    assert result.row_count == 1, name


def test_result_size_cap_truncates_instead_of_failing(session: ScopedSession) -> None:
    result = session.run_query("SELECT film_id, hex(zeroblob(1000)) AS filler FROM film")
    assert result.truncated and "KiB" in (result.truncation_note or "")
    assert 0 < result.row_count < 100
    assert len(json.dumps(result.rows)) <= 64 * 1024


def test_binary_values_come_back_as_json_text(session: ScopedSession) -> None:
    result = session.run_query("SELECT randomblob(4) AS b")
    assert result.rows == [{"b": "<binary, 4 bytes>"}]
    json.dumps(result.model_dump())


def test_duplicate_column_names_are_kept_apart(session: ScopedSession) -> None:
    result = session.run_query("SELECT 1 AS n, 2 AS n")
    assert result.rows == [{"n": 1, "n_2": 2}]


def test_query_errors_are_refusals_without_tracebacks(session: ScopedSession) -> None:
    refusal = _refused(session, "SELECT no_such_column FROM film")
    assert refusal.rule == "query_error" and "no_such_column" in refusal.message
    refusal = _refused(session, "SELECT * FROM no_such_table")
    assert refusal.rule == "unknown_table" and "my_rentals" in refusal.message


# ---------------------------------------------------------------- unverified sender


def test_unverified_sender_gets_catalog_only(catalog_session: ScopedSession) -> None:
    assert catalog_session.run_query("SELECT count(*) AS n FROM film").rows[0]["n"] > 0
    for table in ("my_account", "my_rentals", "my_payments"):
        refusal = _refused(catalog_session, f"SELECT * FROM {table}")
        assert refusal.rule == "unverified_sender"
        assert "could not be verified" in refusal.message
    assert catalog_session.sender_contacts() == set()


def test_unverified_sender_cannot_reach_scope_tables_by_name_at_connection_level(
    sakila: Sakila,
) -> None:
    connection = ScopedConnection(sakila.path, None)
    try:
        for sql in ["SELECT * FROM temp.my_account", "SELECT email FROM customer"]:
            with pytest.raises(DataAccessRefused):
                connection.execute(sql)
    finally:
        connection.close()


def test_unverified_schema_lists_catalog_only(catalog_session: ScopedSession) -> None:
    schema = catalog_session.describe_schema()
    assert not schema.sender_verified
    names = {t.name for t in schema.tables}
    assert "film" in names and not names & {"my_account", "customer", "rental", "staff"}
    assert "could not be verified" in schema.as_text()


# ---------------------------------------------------------------- schema and contacts


def test_schema_marks_scope_tables_and_hides_account_tables(session: ScopedSession) -> None:
    schema = session.describe_schema()
    assert schema.sender_verified and schema.max_rows == 100
    rentals = schema.table("my_rentals")
    assert rentals is not None and rentals.scoped_to_sender
    assert "due_date" in {c.name for c in rentals.columns}
    film = schema.table("film")
    assert film is not None and not film.scoped_to_sender
    for hidden in ("customer", "address", "rental", "payment", "staff", "customer_list"):
        assert schema.table(hidden) is None
    text = schema.as_text()
    assert "my_payments  [sender's own rows only]" in text and "film_list" in text


def test_every_described_table_is_actually_queryable(session: ScopedSession) -> None:
    for table in session.describe_schema().tables:
        columns = ", ".join(f'"{c.name}"' for c in table.columns)
        session.run_query(f'SELECT {columns} FROM "{table.name}" LIMIT 1')


def test_sender_contacts_are_the_senders_own(sakila: Sakila, session: ScopedSession) -> None:
    contacts = session.sender_contacts()
    assert sakila.sender_email in contacts
    assert not contacts & sakila.foreign_pii
    assert {value for value in sakila.own_values if value in contacts}


# ---------------------------------------------------------------- sender resolution


def test_sender_resolution_ignores_case_and_surrounding_space(
    database: BusinessDatabase, sakila: Sakila
) -> None:
    customer = database.resolve_sender(f"  {sakila.sender_email.upper()} ")
    assert customer is not None and customer.customer_id == sakila.sender_id


@pytest.mark.parametrize(
    "address",
    ["%", "%@%", "_%", "' OR '1'='1", "nobody@example.invalid", "", "not-an-address"],
)
def test_sender_resolution_is_an_exact_match(database: BusinessDatabase, address: str) -> None:
    assert database.resolve_sender(address) is None


def test_partial_address_does_not_resolve(database: BusinessDatabase, sakila: Sakila) -> None:
    assert database.resolve_sender(sakila.sender_email[1:]) is None
    assert database.resolve_sender(sakila.sender_email + ".evil") is None


def test_ambiguous_sender_is_not_verified(sakila: Sakila, tmp_path: Path) -> None:
    copy = tmp_path / "dupes.sqlite"
    shutil.copyfile(sakila.path, copy)
    with closing(sqlite3.connect(copy)) as conn, conn:
        conn.execute(
            "UPDATE customer SET email = upper(?) WHERE customer_id = "
            "(SELECT min(customer_id) FROM customer WHERE customer_id <> ?)",
            (sakila.sender_email, sakila.sender_id),
        )
    with open_business_db(copy) as db:
        assert db.resolve_sender(sakila.sender_email) is None


def test_forged_identity_is_refused(database: BusinessDatabase, sender: CustomerIdentity) -> None:
    forged = sender.model_copy(update={"customer_id": sender.customer_id + 1})
    with pytest.raises(DataAccessRefused) as refused, database.session(forged):
        pass
    assert refused.value.rule == "identity_mismatch"


# ---------------------------------------------------------------- opening the database


def test_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BusinessDatabaseError, match="not found"):
        open_business_db(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()


def test_non_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.sqlite"
    bogus.write_text("not a database")
    with pytest.raises(BusinessDatabaseError, match="not a SQLite database"):
        open_business_db(bogus)


def test_non_sakila_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE film (film_id INTEGER)")
    with pytest.raises(BusinessDatabaseError, match="not a Sakila database: missing tables"):
        open_business_db(other)


def test_unreachable_postgres_dsn_is_a_clear_error() -> None:
    with pytest.raises(BusinessDatabaseError, match="cannot connect to the Postgres"):
        open_business_db("postgresql://mediavault_agent@/sakila?host=/nonexistent-mediavault")


def test_mangled_postgres_dsn_is_a_clear_error() -> None:
    # What Path("postgresql://host/db") turns the DSN into.
    with pytest.raises(BusinessDatabaseError, match="not a complete DSN"):
        open_business_db(Path("postgresql://support@db.internal/sakila"))


def test_closed_database_refuses_new_sessions(sakila: Sakila) -> None:
    db = open_business_db(sakila.path)
    db.close()
    with pytest.raises(BusinessDatabaseError, match="closed"), db.session(None):
        pass


def test_database_removed_after_opening_is_a_clear_error(sakila: Sakila, tmp_path: Path) -> None:
    copy = tmp_path / "gone.sqlite"
    shutil.copyfile(sakila.path, copy)
    with open_business_db(copy) as db:
        copy.unlink()
        with pytest.raises(BusinessDatabaseError, match="cannot open"), db.session(None):
            pass
        with pytest.raises(BusinessDatabaseError, match="cannot open"):
            db.resolve_sender(sakila.sender_email)
    assert not copy.exists()
