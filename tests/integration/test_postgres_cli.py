"""The operator's commands against a real server: `db init --postgres` and `sql` on Postgres."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from postgres_cluster import PostgresCluster, shared_cluster
from typer.testing import CliRunner

from mediavault.cli import app

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="session")
def pg_cluster(request: pytest.FixtureRequest) -> PostgresCluster:
    return shared_cluster(request)


runner = CliRunner()


@pytest.fixture
def database(pg_cluster: PostgresCluster) -> Iterator[str]:
    name = pg_cluster.create_database("cli")
    yield name
    pg_cluster.drop_database(name)


def test_db_init_postgres_provisions_and_prints_the_agent_dsn(
    pg_cluster: PostgresCluster, database: str, demo_db_path: Path, mediavault_home: Path
) -> None:
    admin = pg_cluster.dsn(database)
    result = runner.invoke(
        app, ["db", "init", "--postgres", admin, "--from-sqlite", str(demo_db_path)]
    )
    assert result.exit_code == 0, result.output
    assert f"Provisioned Postgres database {database}" in result.output
    assert "business date 2026-03-02" in result.output
    agent_dsn = re.search(r"MEDIAVAULT_DB='([^']+)'", result.output)
    assert agent_dsn is not None and "mediavault_agent" in agent_dsn.group(1)
    scope_key = re.search(r"MEDIAVAULT_SCOPE_KEY='([0-9a-f]{64})'", result.output)
    assert scope_key is not None
    agent_env = {"MEDIAVAULT_DB": agent_dsn.group(1), "MEDIAVAULT_SCOPE_KEY": scope_key.group(1)}

    # The printed DSN and key are all the user needs: `sql` runs as the agent would.
    done = runner.invoke(
        app,
        [
            "sql",
            "--json",
            "--sender",
            "dana.whitfield@example.com",
            "SELECT count(*) AS n FROM my_account",
        ],
        env=agent_env,
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["rows"] == [{"n": 1}]
    refused = runner.invoke(
        app, ["sql", "SELECT email FROM customer"], env=agent_env
    )
    assert refused.exit_code == 2 and "account_data" in refused.output

    again = runner.invoke(app, ["db", "init", "--postgres", admin])
    assert again.exit_code == 1 and "--force" in again.output
    assert "Traceback" not in again.output
    with psycopg.connect(admin) as conn:
        assert conn.execute("SELECT count(*) FROM customer").fetchone() == (600,)


def test_db_init_postgres_refuses_a_file_that_is_not_sakila(
    pg_cluster: PostgresCluster, database: str, tmp_path: Path, mediavault_home: Path
) -> None:
    bogus = tmp_path / "notes.sqlite"
    bogus.write_text("not a database")
    result = runner.invoke(
        app, ["db", "init", "--postgres", pg_cluster.dsn(database), "--from-sqlite", str(bogus)]
    )
    assert result.exit_code == 1 and "error:" in result.output
    assert "Traceback" not in result.output
