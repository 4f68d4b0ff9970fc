"""The SQL guard on its own: which statements it refuses, why, and how it rewrites LIMIT."""

from __future__ import annotations

import pytest
import sqlglot

from mediavault.tools.business_db.sessions import DataAccessRefused
from mediavault.tools.business_db.sql_guard import (
    MAX_SQL_CHARS,
    GuardedQuery,
    SqlRefused,
    guard_sql,
)

# (statement, rule the refusal must name)
REFUSED: list[tuple[str, str]] = [
    ("REPLACE INTO film (film_id, title) VALUES (1, 'x')", "select_only"),
    ("WITH a AS (SELECT 1) REPLACE INTO film (film_id) SELECT * FROM a", "select_only"),
    ("WITH a AS (SELECT 1) INSERT INTO film (film_id) SELECT * FROM a", "select_only"),
    ("WITH a AS (SELECT 1) DELETE FROM rental", "select_only"),
    ("WITH a AS (SELECT 1) UPDATE film SET title = 'x'", "select_only"),
    ("WITH x AS (DELETE FROM rental RETURNING *) SELECT * FROM x", "select_only"),
    ("INSERT INTO film SELECT * FROM film", "select_only"),
    ("UPDATE customer SET email = 'a@b.c'", "select_only"),
    ("DELETE FROM rental", "select_only"),
    ("CREATE TABLE stolen AS SELECT * FROM customer", "select_only"),
    ("CREATE TEMP VIEW v AS SELECT 1", "select_only"),
    ("DROP TABLE rental", "select_only"),
    ("ALTER TABLE film ADD COLUMN x", "select_only"),
    ("ATTACH DATABASE '/tmp/evil.db' AS evil", "select_only"),
    ("DETACH DATABASE evil", "select_only"),
    ("VACUUM INTO '/tmp/copy.db'", "select_only"),
    ("VACUUM", "select_only"),
    ("PRAGMA query_only=0", "select_only"),
    ("PRAGMA writable_schema=ON", "select_only"),
    ("pragma   QUERY_ONLY = false", "select_only"),
    ("BEGIN", "select_only"),
    ("SELECT load_extension('/tmp/evil.so')", "function_not_allowed"),
    ("SELECT LOAD_EXTENSION('/tmp/evil.so', 'entry')", "function_not_allowed"),
    ("SELECT readfile('/etc/passwd')", "function_not_allowed"),
    ("SELECT writefile('/tmp/x', 'data')", "function_not_allowed"),
    ("SELECT edit('text', 'vi')", "function_not_allowed"),
    ("SELECT fts3_tokenizer('simple')", "function_not_allowed"),
    ("SELECT sqlite_version()", "function_not_allowed"),
    ("SELECT sqlite_compileoption_used('ENABLE_LOAD_EXTENSION')", "function_not_allowed"),
    ("SELECT changes()", "function_not_allowed"),
    (
        "SELECT title FROM film WHERE upper(title) = lower(load_extension('x'))",
        "function_not_allowed",
    ),
    (
        "SELECT title FROM film WHERE film_id IN (SELECT readfile('/etc/passwd'))",
        "function_not_allowed",
    ),
    ("SELECT 1; DELETE FROM rental", "single_statement"),
    ("SELECT 1; SELECT 2", "single_statement"),
    ("SELECT * FROM pragma_table_info('customer')", "pragma"),
    ("SELECT name FROM pragma_database_list", "pragma"),
    ("SELECT * FROM json_each('[1, 2]')", "table_function"),
    ("SELECT * FROM json_tree", "table_function"),
    ("SELECT * FROM dbstat", "table_function"),
    ("SELECT * FROM main.pragma_table_list", "pragma"),
    ("SELECT * FROM sqlite_master", "internal_table"),
    ("SELECT sql FROM sqlite_schema", "internal_table"),
    ("SELECT * FROM temp.sqlite_temp_master", "internal_table"),
    ("SELECT * FROM evil.customer", "schema_not_allowed"),
    ("SELECT randomblob(1000000000)", "blob_size"),
    ("SELECT zeroblob(2000000)", "blob_size"),
    ("SELECT randomblob(film_id) FROM film", "blob_size"),
    ("SELECT randomblob(8 * 1024 * 1024)", "blob_size"),
    ("SELECT title FROM film LIMIT -1", "limit"),
    ("SELECT title FROM film LIMIT (SELECT 100000)", "limit"),
    ("SELECT title FROM film LIMIT 5.5", "limit"),
    ("SELECT title FROM film LIMIT '1000'", "limit"),
    ("SELECT title FROM film WHERE film_id = ?", "placeholder"),
    ("SELECT title FROM film WHERE film_id = :id", "placeholder"),
    ("SELECT title FROM film WHERE film_id = $id", "placeholder"),
    ("SELECT title FROM film WHERE film_id = @id", "placeholder"),
    ("SELECT title FROM film ORDER BY title COLLATE evil", "syntax_not_allowed"),
    ("(SELECT 1)", "select_only"),
    ("SELEC title FROM film", "parse_error"),
    ("SELECT title FROM film WHERE", "parse_error"),
    ("", "empty"),
    ("   \n\t ", "empty"),
    (";", "empty"),
    ("SELECT 'a\x00b'", "invalid_character"),
    ("SELECT " + "(" * 3000 + "1" + ")" * 3000, "too_complex"),
    ("SELECT 1 FROM film WHERE " + " OR ".join(["title = 'x'"] * 900), "too_long"),
]


@pytest.mark.parametrize(("sql", "rule"), REFUSED, ids=[s[:60] or "empty" for s, _ in REFUSED])
def test_refused_statements_name_the_rule(sql: str, rule: str) -> None:
    with pytest.raises(SqlRefused) as refused:
        guard_sql(sql)
    assert refused.value.rule == rule
    message = refused.value.message
    # Short and actionable, never a traceback or an echo of a huge statement.
    assert 10 < len(message) < 400
    assert "Traceback" not in message and "\n" not in message


def test_refusal_is_a_data_access_refusal_with_rule_in_text() -> None:
    with pytest.raises(DataAccessRefused) as refused:
        guard_sql("DELETE FROM rental")
    assert str(refused.value).startswith("refused (select_only): ")
    assert "SELECT" in refused.value.message


def test_write_keyword_hidden_in_unparseable_statement_is_explained_as_write() -> None:
    with pytest.raises(SqlRefused) as refused:
        guard_sql("WITH a AS (SELECT 1) REPLACE INTO film SELECT * FROM a")
    assert refused.value.rule == "select_only"
    assert "REPLACE" in refused.value.message


def test_overlong_statement_is_refused_before_parsing() -> None:
    with pytest.raises(SqlRefused) as refused:
        guard_sql("SELECT '" + "x" * MAX_SQL_CHARS + "'")
    assert refused.value.rule == "too_long"
    assert str(MAX_SQL_CHARS) in refused.value.message


def test_function_refusal_names_the_function() -> None:
    with pytest.raises(SqlRefused) as refused:
        guard_sql("SELECT load_extension('x')")
    assert "load_extension()" in refused.value.message


ALLOWED: list[str] = [
    "SELECT title FROM film WHERE title LIKE '%UPDATE%'",
    "SELECT title FROM film WHERE description LIKE '%DELETE FROM rental; DROP TABLE x%'",
    "SELECT last_update FROM film",
    "SELECT title, replace(title, 'A', 'a') AS t FROM film",
    "SELECT 'INSERT INTO x' AS looks_like_a_write",
    "WITH recent AS (SELECT * FROM my_rentals WHERE return_date IS NULL) SELECT * FROM recent",
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 10) SELECT x FROM n",
    "SELECT title FROM film UNION SELECT name FROM category",
    "SELECT film_id FROM film INTERSECT SELECT film_id FROM inventory",
    "SELECT film_id FROM film EXCEPT SELECT film_id FROM inventory",
    "SELECT c.name, count(*) AS n FROM film_category fc JOIN category c USING (category_id) "
    "GROUP BY c.name HAVING count(*) > 10 ORDER BY n DESC",
    "SELECT title, rank() OVER (ORDER BY rental_rate DESC) AS r FROM film",
    "SELECT CASE WHEN return_date IS NULL THEN 'out' ELSE 'back' END AS state FROM my_rentals",
    "SELECT julianday('2006-02-20') - julianday(due_date) AS days_late FROM my_rentals",
    "SELECT strftime('%Y-%m', payment_date) AS month, round(sum(amount), 2) AS total "
    "FROM my_payments GROUP BY month",
    "SELECT title FROM film WHERE film_id IN (SELECT film_id FROM inventory WHERE store_id = 1)",
    "SELECT title FROM film WHERE EXISTS "
    "(SELECT 1 FROM inventory i WHERE i.film_id = film.film_id)",
    "SELECT hex(randomblob(16)) AS token",
    "SELECT title FROM film ORDER BY title COLLATE NOCASE",
    "SELECT CAST(rental_rate AS INTEGER) AS rate FROM film",
    "SELECT title FROM main.film",
    "SELECT * FROM temp.my_account",
    "SELECT title FROM film -- trailing comment",
    "SELECT title FROM film;",
    "SELECT coalesce(return_date, 'not returned') AS returned, ifnull(1, 2) AS x FROM my_rentals",
    "SELECT group_concat(title, ', ') AS titles FROM my_rentals",
    "SELECT count(*) FILTER (WHERE return_date IS NULL) AS open_rentals FROM my_rentals",
]


@pytest.mark.parametrize("sql", ALLOWED)
def test_ordinary_support_queries_are_allowed(sql: str) -> None:
    guarded = guard_sql(sql)
    assert isinstance(guarded, GuardedQuery)
    assert guarded.original == sql
    # What runs is a single SELECT the guard itself accepts again.
    assert guard_sql(guarded.sql).sql == guarded.sql


def test_missing_limit_is_added_to_the_tree() -> None:
    guarded = guard_sql("SELECT title FROM film", max_rows=100)
    assert guarded.limit == 100 and guarded.limit_rewritten
    tree = sqlglot.parse_one(guarded.sql, read="sqlite")
    assert tree.args["limit"].expression.this == "100"


def test_smaller_limit_is_kept() -> None:
    guarded = guard_sql("SELECT title FROM film LIMIT 5", max_rows=100)
    assert guarded.limit == 5 and not guarded.limit_rewritten
    assert guarded.sql.endswith("LIMIT 5")


def test_larger_limit_is_lowered() -> None:
    guarded = guard_sql("SELECT title FROM film LIMIT 1000", max_rows=100)
    assert guarded.limit == 100 and guarded.limit_rewritten
    assert "1000" not in guarded.sql and guarded.sql.endswith("LIMIT 100")


def test_offset_is_kept_and_limit_lowered() -> None:
    guarded = guard_sql("SELECT title FROM film LIMIT 20, 500", max_rows=100)
    assert guarded.limit == 100
    assert guarded.sql.endswith("LIMIT 100 OFFSET 20")


def test_union_limit_applies_to_the_whole_compound_query() -> None:
    guarded = guard_sql("SELECT title FROM film UNION ALL SELECT name FROM category")
    tree = sqlglot.parse_one(guarded.sql, read="sqlite")
    assert isinstance(tree, sqlglot.exp.Union)
    assert tree.args["limit"] is not None
    assert tree.this.args.get("limit") is None and tree.expression.args.get("limit") is None


def test_inner_limits_do_not_count_as_the_outer_limit() -> None:
    guarded = guard_sql("SELECT * FROM (SELECT title FROM film LIMIT 5000)", max_rows=50)
    assert guarded.sql.endswith("LIMIT 50")
    assert guarded.limit == 50


def test_comments_cannot_carry_a_second_statement_into_the_executed_sql() -> None:
    guarded = guard_sql("SELECT 1 AS one -- */ ; DELETE FROM rental\n")
    assert "DELETE" not in guarded.sql
    assert guarded.sql == "SELECT 1 AS one LIMIT 100"


def test_tables_exclude_cte_names_but_not_what_a_cte_reads() -> None:
    guarded = guard_sql("WITH my_account AS (SELECT email FROM customer) SELECT * FROM my_account")
    assert guarded.tables == frozenset({"customer"})


def test_a_cte_name_does_not_hide_the_same_table_outside_its_scope() -> None:
    guarded = guard_sql(
        "SELECT * FROM (WITH customer AS (SELECT 1 AS x) SELECT * FROM customer) AS a, customer"
    )
    assert "customer" in guarded.tables


def test_tables_keep_schema_qualifiers() -> None:
    guarded = guard_sql("SELECT * FROM main.film JOIN temp.my_rentals USING (film_id)")
    assert guarded.tables == frozenset({"main.film", "temp.my_rentals"})


def test_small_literal_blob_is_allowed_and_large_one_refused_at_the_boundary() -> None:
    guard_sql("SELECT zeroblob(1024)")
    with pytest.raises(SqlRefused):
        guard_sql("SELECT zeroblob(1025)")


@pytest.mark.parametrize("max_rows", [0, -5])
def test_invalid_max_rows_is_a_programming_error(max_rows: int) -> None:
    with pytest.raises(ValueError):
        guard_sql("SELECT 1", max_rows=max_rows)


def test_unknown_dialect_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="dialect"):
        guard_sql("SELECT 1", dialect="oracle")
