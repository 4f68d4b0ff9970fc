"""The SQL guard's PostgreSQL dialect on its own (the server-side layers: tests/integration)."""

from __future__ import annotations

import pytest

from mediavault.tools.business_db.sql_guard import (
    SqlRefused,
    allowed_functions,
    function_examples,
    guard_sql,
)

# (statement, rule the refusal must name)
REFUSED: list[tuple[str, str]] = [
    (
        "SELECT set_config('mediavault.customer_id', '7', true), (SELECT email FROM customer)",
        "function_not_allowed",
    ),
    ("SELECT current_setting('mediavault.customer_id')", "function_not_allowed"),
    # One value growing with every row of a cross join: no server setting bounds its memory.
    ("SELECT string_agg(a.description, ',') FROM film a, film b", "function_not_allowed"),
    ("SET statement_timeout = 0", "select_only"),
    ("SET LOCAL mediavault.customer_id = 7", "select_only"),
    ("set   session authorization postgres", "select_only"),
    ("RESET ALL", "select_only"),
    ("RESET statement_timeout", "select_only"),
    ("SELECT pg_sleep(60)", "function_not_allowed"),
    ("SELECT pg_catalog.pg_sleep(60)", "syntax_not_allowed"),
    ("SELECT title FROM film WHERE pg_sleep(1) IS NULL", "function_not_allowed"),
    ("SELECT 1; UPDATE film SET title = 'x'", "single_statement"),
    ("SELECT 1; SELECT 2", "single_statement"),
    ("COPY customer TO STDOUT", "select_only"),
    ("COPY (SELECT email FROM customer) TO '/tmp/x'", "select_only"),
    ("SELECT dblink('host=evil', 'SELECT 1')", "function_not_allowed"),
    ("SELECT * FROM dblink('host=evil', 'SELECT 1') AS t(a int)", "table_function"),
    ("SELECT lo_import('/etc/passwd')", "function_not_allowed"),
    ("SELECT lo_export(1, '/tmp/x')", "function_not_allowed"),
    ("SELECT lo_get(1)", "function_not_allowed"),
    ("SELECT * FROM lo_list", "table_function"),
    ("SELECT pg_read_file('/etc/passwd')", "function_not_allowed"),
    ("SELECT query_to_xml('SELECT 1', true, true, '')", "function_not_allowed"),
    ("SELECT repeat('x', 1000000000)", "function_not_allowed"),
    ("SELECT lpad('x', 1000000000)", "function_not_allowed"),
    ("SELECT txid_current()", "function_not_allowed"),
    ("SELECT nextval('film_film_id_seq')", "function_not_allowed"),
    ("SELECT * FROM pg_stat_activity", "internal_table"),
    ("SELECT * FROM pg_catalog.pg_authid", "schema_not_allowed"),
    ("SELECT * FROM information_schema.tables", "schema_not_allowed"),
    ("SELECT * FROM mediavault_private.resolve_sender('a@b.c')", "table_function"),
    ("SELECT 'customer'::regclass", "syntax_not_allowed"),
    ("SELECT * FROM film FOR UPDATE", "select_only"),
    ("SELECT * INTO stolen FROM film", "select_only"),
    ("SELECT * FROM generate_series(1, 1000000000)", "table_function"),
    ("SELECT title FROM film TABLESAMPLE SYSTEM (10)", "syntax_not_allowed"),
    ("SELECT 1 LIMIT ALL", "syntax_not_allowed"),
    ("SELECT title FROM film WHERE film_id = $1", "placeholder"),
    ("SELECT title FROM film WHERE film_id = %s", "placeholder"),
    ("EXPLAIN ANALYZE SELECT 1", "select_only"),
    ("PREPARE p AS SELECT 1", "select_only"),
    ("DO $$ BEGIN PERFORM 1; END $$", "select_only"),
    ("CALL refresh()", "select_only"),
    ("TRUNCATE rental", "select_only"),
    ("GRANT SELECT ON customer TO PUBLIC", "select_only"),
    ("LISTEN x", "select_only"),
    ("DISCARD ALL", "select_only"),
    ("VACUUM FULL", "select_only"),
    ("LOCK TABLE film", "select_only"),
]


@pytest.mark.parametrize(("sql", "rule"), REFUSED, ids=[s[:60] for s, _ in REFUSED])
def test_postgres_attacks_are_refused_with_the_rule(sql: str, rule: str) -> None:
    with pytest.raises(SqlRefused) as refused:
        guard_sql(sql, dialect="postgres")
    assert refused.value.rule == rule
    assert 10 < len(refused.value.message) < 400 and "\n" not in refused.value.message


ALLOWED = [
    "SELECT title::text AS t, rental_rate::numeric(4, 2) AS r FROM film WHERE title ILIKE '%a%'",
    "SELECT rental_date + interval '3 days' AS d FROM my_rentals",
    "SELECT extract(day from now() - rental_date) AS days FROM my_rentals",
    "SELECT date_trunc('month', payment_date) AS month, sum(amount) AS total FROM my_payments "
    "GROUP BY 1",
    'SELECT title FROM film ORDER BY title COLLATE "C"',
    "SELECT title FROM public.film",
    "SELECT count(*) FILTER (WHERE return_date IS NULL) AS open_rentals FROM my_rentals",
    "SELECT age(return_date, rental_date) AS kept FROM my_rentals",
    "SELECT CAST(rental_date AS date) AS day FROM my_rentals",
    "SELECT title FROM film WHERE description LIKE '%SET statement_timeout%'",
]


@pytest.mark.parametrize("sql", ALLOWED)
def test_ordinary_postgres_queries_are_allowed_and_stable(sql: str) -> None:
    guarded = guard_sql(sql, dialect="postgres")
    assert guard_sql(guarded.sql, dialect="postgres").sql == guarded.sql
    assert guarded.sql.endswith("LIMIT 100")


def test_refusal_suggests_postgres_functions_not_sqlite_ones() -> None:
    with pytest.raises(SqlRefused) as refused:
        guard_sql("SELECT julianday(rental_date) FROM my_rentals", dialect="postgres")
    assert (
        "date_trunc" in refused.value.message
        and "julianday" not in (refused.value.message.split("not allowed")[1])
    )


def test_the_dialects_keep_separate_allowlists() -> None:
    postgres, sqlite = allowed_functions("postgres"), allowed_functions("sqlite")
    assert "julianday" in sqlite and "julianday" not in postgres
    assert "date_trunc" in postgres and "date_trunc" not in sqlite
    assert not {"set_config", "current_setting", "pg_sleep", "dblink"} & postgres
    assert {name for name, _ in function_examples("postgres")} == postgres


def test_sqlite_remains_the_default_dialect() -> None:
    with pytest.raises(SqlRefused):
        guard_sql("SELECT now()")  # a PostgreSQL function, unknown to SQLite's allowlist
    assert guard_sql("SELECT julianday('2006-02-20') AS d").sql.startswith("SELECT")
