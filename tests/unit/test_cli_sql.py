"""`mediavault sql`: the operator's view of exactly what the agent's database tool would do."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mediavault.cli import app

runner = CliRunner()


def _sender_with_rentals(path: Path) -> tuple[str, int]:
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        email, rentals = conn.execute(
            "SELECT c.email, count(*) FROM customer c JOIN rental r USING (customer_id) "
            "WHERE c.email IS NOT NULL GROUP BY c.customer_id ORDER BY c.customer_id LIMIT 1"
        ).fetchone()
    return str(email), int(rentals)


@pytest.fixture(scope="module", params=["demo", "original"])
def db_copy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    source: Path = request.getfixturevalue(
        "demo_db_path" if request.param == "demo" else "original_sakila_path"
    )
    copy = tmp_path_factory.mktemp(f"cli-sql-{request.param}") / "sakila.sqlite"
    shutil.copyfile(source, copy)
    copy.chmod(0o644)
    return copy


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["sql", *args])
    return result.exit_code, result.stdout, result.stderr


def test_own_rentals_as_json(mediavault_home: Path, db_copy: Path) -> None:
    email, rentals = _sender_with_rentals(db_copy)
    code, out, err = _run(
        "--db", str(db_copy), "--sender", email.upper(), "--json",
        "SELECT rental_id, title, due_date FROM my_rentals",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["row_count"] == min(rentals, 100)
    assert result["columns"] == ["rental_id", "title", "due_date"]
    assert result["sql"].endswith("LIMIT 100")


def test_rows_print_as_a_table_with_a_row_count(mediavault_home: Path, db_copy: Path) -> None:
    email, _ = _sender_with_rentals(db_copy)
    code, out, _ = _run(
        "--db", str(db_copy), "--sender", email, "SELECT first_name, last_name FROM my_account"
    )
    assert code == 0
    with closing(sqlite3.connect(db_copy)) as conn:
        (first_name,) = conn.execute(
            "SELECT first_name FROM customer WHERE lower(email) = lower(?)", (email,)
        ).fetchone()
    assert first_name in out
    assert "1 row" in out


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT email, phone FROM customer_list",
        "WITH my_account AS (SELECT email FROM customer) SELECT * FROM my_account",
        "SELECT username, password FROM staff",
    ],
)
def test_other_customers_data_is_refused_with_exit_2(
    mediavault_home: Path, db_copy: Path, sql: str
) -> None:
    email, _ = _sender_with_rentals(db_copy)
    digest = _sha256(db_copy)
    code, out, err = _run("--db", str(db_copy), "--sender", email, "--json", sql)
    assert code == 2
    assert out == ""
    assert "refused (account_data)" in err and "my_account" in err
    assert _sha256(db_copy) == digest


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("DELETE FROM rental", "select_only"),
        ("SELECT 1; DELETE FROM rental", "single_statement"),
        ("PRAGMA writable_schema=ON", "select_only"),
        ("SELECT load_extension('x')", "function_not_allowed"),
    ],
)
def test_writes_are_refused_with_the_rule_on_stderr(
    mediavault_home: Path, db_copy: Path, sql: str, rule: str
) -> None:
    digest, listing = _sha256(db_copy), sorted(p.name for p in db_copy.parent.iterdir())
    code, out, err = _run("--db", str(db_copy), sql)
    assert code == 2 and out == ""
    assert f"refused ({rule})" in err
    assert "Traceback" not in err
    assert _sha256(db_copy) == digest
    assert sorted(p.name for p in db_copy.parent.iterdir()) == listing


def test_without_sender_only_catalog_data_is_readable(mediavault_home: Path, db_copy: Path) -> None:
    code, out, _ = _run("--db", str(db_copy), "--json", "SELECT count(*) AS n FROM film")
    assert code == 0 and json.loads(out)["rows"][0]["n"] > 0
    code, out, err = _run("--db", str(db_copy), "SELECT * FROM my_account")
    assert code == 2 and out == ""
    assert "could not be verified" in err


def test_unknown_sender_is_warned_and_gets_catalog_only(
    mediavault_home: Path, db_copy: Path
) -> None:
    code, _, err = _run(
        "--db", str(db_copy), "--sender", "stranger@example.invalid", "SELECT * FROM my_rentals"
    )
    assert code == 2
    assert "not a customer on file" in err and "could not be verified" in err


def test_schema_lists_the_senders_tables(mediavault_home: Path, db_copy: Path) -> None:
    email, _ = _sender_with_rentals(db_copy)
    code, out, _ = _run("--db", str(db_copy), "--sender", email, "--schema")
    assert code == 0
    assert "my_rentals  [sender's own rows only]" in out
    assert "table customer" not in out


def test_default_database_comes_from_home(mediavault_home: Path, db_copy: Path) -> None:
    home = mediavault_home / "elsewhere"
    home.mkdir()
    shutil.copyfile(db_copy, home / "sakila_demo.sqlite")
    code, out, err = _run("--home", str(home), "--json", "SELECT count(*) AS n FROM film")
    assert code == 0, err
    assert json.loads(out)["rows"][0]["n"] > 0


def test_missing_database_is_a_clear_error(mediavault_home: Path) -> None:
    code, out, err = _run("SELECT 1")
    assert code == 2 and out == ""
    assert "business database not found" in err and "mediavault db init" in err
    assert not (mediavault_home / "sakila_demo.sqlite").exists()


def test_non_database_file_is_a_clear_error(mediavault_home: Path) -> None:
    bogus = mediavault_home / "bogus.sqlite"
    bogus.write_text("hello")
    code, _, err = _run("--db", str(bogus), "SELECT 1")
    assert code == 2 and "not a SQLite database" in err


def test_unreachable_postgres_url_is_a_clear_error(mediavault_home: Path) -> None:
    # A socket directory that does not exist: fails at once, with no network involved.
    dsn = "postgresql://mediavault_agent@/sakila?host=/nonexistent-mediavault-socket"
    code, _, err = _run("--db", dsn, "SELECT 1")
    assert code == 2 and "cannot connect to the Postgres business database" in err
    assert "Traceback" not in err


def test_query_or_schema_is_required(mediavault_home: Path, db_copy: Path) -> None:
    code, _, err = _run("--db", str(db_copy))
    assert code == 2 and "--schema" in err


def test_help_describes_the_command() -> None:
    result = runner.invoke(app, ["sql", "--help"])
    assert result.exit_code == 0
    assert "--sender" in result.stdout and "--json" in result.stdout
