"""`mediavault db init` and `mediavault db info`: what the operator sees, and the exit codes."""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from sakila_paths import DEMO_AS_OF
from typer.testing import CliRunner, Result

from mediavault.cli import app
from mediavault.graph.context import DEMO_DB_NAME
from mediavault.tools.business_db.business_date import stamped_business_date
from mediavault.tools.business_db.demo_database import SAKILA_TABLES

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, ["db", *args])


def assert_one_red_line(result: Result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def installed_demo(mediavault_home: Path, demo_db_path: Path) -> Path:
    """The session's demo database copied to where the CLI looks by default."""
    target = mediavault_home / DEMO_DB_NAME
    shutil.copyfile(demo_db_path, target)
    return target


def test_init_builds_into_home_and_reports_counts(mediavault_home: Path) -> None:
    result = invoke("init", "--as-of", "2026-03-02")
    assert result.exit_code == 0, result.output
    target = mediavault_home / DEMO_DB_NAME
    assert target.is_file()
    assert f"Built {target}" in result.stdout.splitlines()
    assert "rental" in result.stdout and "business date 2026-03-02" in result.stdout
    assert "built in" in result.stdout
    assert stamped_business_date(target) == DEMO_AS_OF


def test_init_refuses_to_overwrite_without_force(installed_demo: Path) -> None:
    before = installed_demo.read_bytes()
    result = invoke("init")
    assert_one_red_line(result, 1, "already exists", "--force")
    assert installed_demo.read_bytes() == before


def test_init_force_replaces_a_demo_database(installed_demo: Path, tmp_path: Path) -> None:
    result = invoke("init", "--force", "--as-of", "2026-04-01", "--seed", "7")
    assert result.exit_code == 0, result.output
    assert stamped_business_date(installed_demo) == DEMO_AS_OF.replace(month=4, day=1)


def test_init_force_never_replaces_a_database_that_is_not_a_demo(
    mediavault_home: Path, tmp_path: Path
) -> None:
    theirs = tmp_path / "theirs.sqlite"
    with closing(sqlite3.connect(theirs)) as connection:
        connection.execute("CREATE TABLE customer (customer_id INTEGER)")
    before = theirs.read_bytes()
    result = invoke("init", "--path", str(theirs), "--force")
    assert_one_red_line(result, 1, "not a MediaVault demo database")
    assert theirs.read_bytes() == before


def test_init_honours_home_and_path_options(mediavault_home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    result = invoke("init", "--home", str(elsewhere), "--as-of", "2026-03-02")
    assert result.exit_code == 0, result.output
    assert (elsewhere / DEMO_DB_NAME).is_file()
    assert not (mediavault_home / DEMO_DB_NAME).exists()


@pytest.mark.parametrize("bad", ["2026-13-01", "yesterday", "02/03/2026"])
def test_init_rejects_a_bad_date(mediavault_home: Path, bad: str) -> None:
    result = invoke("init", "--as-of", bad)
    assert_one_red_line(result, 2, "--as-of", bad)
    assert not (mediavault_home / DEMO_DB_NAME).exists()


def test_info_json_reports_database_counts_and_stamped_date(installed_demo: Path) -> None:
    result = invoke("info", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["database"] == str(installed_demo)
    assert info["database_source"] == "demo database in MEDIAVAULT_HOME"
    assert info["demo_database"] is True
    assert info["business_date"] == "2026-03-02"
    assert info["business_date_source"].startswith("stamped")
    assert list(info["row_counts"]) == list(SAKILA_TABLES)
    with closing(sqlite3.connect(installed_demo)) as connection:
        rentals = connection.execute("SELECT count(*) FROM rental").fetchone()[0]
    assert info["row_counts"]["rental"] == rentals


def test_info_date_overrides_win_in_order(
    installed_demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIAVAULT_TODAY", "2026-05-05")
    info = json.loads(invoke("info", "--json").stdout)
    assert (info["business_date"], info["business_date_source"]) == (
        "2026-05-05",
        "MEDIAVAULT_TODAY",
    )
    info = json.loads(invoke("info", "--json", "--as-of", "2026-06-06").stdout)
    assert (info["business_date"], info["business_date_source"]) == ("2026-06-06", "--as-of")


def test_info_table_on_the_original_sakila(
    mediavault_home: Path, original_sakila_path: Path
) -> None:
    result = invoke("info", "--db", str(original_sakila_path), "--as-of", "2006-02-20")
    assert result.exit_code == 0, result.output
    assert "business date: 2006-02-20 (--as-of)" in result.stdout
    assert "16,044" in result.stdout  # rentals in the published data set
    info = json.loads(invoke("info", "--db", str(original_sakila_path), "--json").stdout)
    assert info["demo_database"] is False
    assert info["business_date_source"].startswith("calendar date")  # user_version 0


def test_info_follows_mediavault_db(
    mediavault_home: Path, demo_db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIAVAULT_DB", str(demo_db_path))
    info = json.loads(invoke("info", "--json").stdout)
    assert (info["database"], info["database_source"]) == (str(demo_db_path), "MEDIAVAULT_DB")


def test_info_bad_inputs_fail_with_one_red_line(mediavault_home: Path, tmp_path: Path) -> None:
    assert_one_red_line(invoke("info"), 2, "does not exist", "mediavault db init")
    assert_one_red_line(invoke("info", "--db", str(tmp_path / "nope.sqlite")), 2, "does not exist")

    text = tmp_path / "notes.sqlite"
    text.write_text("these are my notes, not a database " * 40)
    assert_one_red_line(invoke("info", "--db", str(text)), 2, "cannot read", "not a database")

    other = tmp_path / "other.sqlite"
    with closing(sqlite3.connect(other)) as connection:
        connection.execute("CREATE TABLE film (film_id INTEGER)")
    assert_one_red_line(invoke("info", "--db", str(other)), 2, "not a Sakila database", "rental")

    assert_one_red_line(invoke("info", "--db", str(other), "--as-of", "someday"), 2, "--as-of")


def test_a_bad_environment_date_is_one_red_line(
    mediavault_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIAVAULT_TODAY", "tomorrow")
    assert_one_red_line(invoke("info"), 2, "tomorrow")
    assert_one_red_line(invoke("init"), 2, "tomorrow")


def test_every_db_command_has_help() -> None:
    for command in ("init", "info"):
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "Usage" in result.stdout
