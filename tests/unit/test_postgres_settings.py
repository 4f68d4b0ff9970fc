"""Postgres settings, offline: which store, saver and SQL dialect each configuration picks.

The server-side behaviour is tested against a real cluster in tests/integration.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver
from typer.testing import CliRunner

from mediavault.agent.stores.case_store import CaseStore
from mediavault.agent.stores.case_store_postgres import PostgresCaseStore, open_case_store
from mediavault.agent.stores.checkpoints import open_checkpointer
from mediavault.cli import app
from mediavault.graph.approval_gate import GateFacts, judge_tool_call
from mediavault.graph.context import ConfigurationError, Context
from mediavault.tools.business_db.postgres_loader import dsn_for_role, redact_dsn

DSN = "postgresql://mediavault_agent@db.internal:5433/mediavault?sslmode=require"
STATE = "postgresql://mediavault_worker:s3cret@db.internal/mediavault_state"


def test_a_dsn_stays_text_and_switches_the_dialect(tmp_path: Path) -> None:
    context = Context(home=tmp_path, db=DSN)
    assert context.db_is_server and context.sql_dialect == "postgres"
    assert context.db_location == DSN  # not Path("postgresql:/db.internal...")
    with pytest.raises(ConfigurationError, match="not a file"):
        _ = context.db_path


def test_a_file_keeps_the_sqlite_dialect(tmp_path: Path) -> None:
    context = Context(home=tmp_path, db=str(tmp_path / "sakila.db"))
    assert not context.db_is_server and context.sql_dialect == "sqlite"
    assert context.db_location == context.db_path == tmp_path / "sakila.db"
    assert Context(home=tmp_path, db=None).db_location == tmp_path / "sakila_demo.sqlite"


def test_state_defaults_to_files_in_the_home(tmp_path: Path) -> None:
    context = Context(home=tmp_path, state_db=None)
    assert type(open_case_store(context)) is CaseStore
    with open_checkpointer(context) as saver:
        assert isinstance(saver, SqliteSaver)
    assert (tmp_path / "checkpoints.sqlite").exists()


def test_a_state_dsn_picks_the_postgres_case_store_without_connecting(tmp_path: Path) -> None:
    store = open_case_store(Context(home=tmp_path, state_db=STATE))
    assert isinstance(store, PostgresCaseStore)
    assert "s3cret" not in repr(store)
    with pytest.raises(ConfigurationError, match="postgresql://"):
        open_case_store(Context(home=tmp_path, state_db="sqlite:///tmp/x"))


def test_an_unreachable_state_database_is_a_configuration_error(tmp_path: Path) -> None:
    context = Context(home=tmp_path, state_db="postgresql://w@/state?host=/nonexistent-socket")
    with (
        pytest.raises(ConfigurationError, match="cannot connect to the state database"),
        open_checkpointer(context),
    ):
        pass


def test_dsns_are_rewritten_for_the_agent_and_redacted_for_logs() -> None:
    assert redact_dsn(STATE) == "postgresql://mediavault_worker:***@db.internal/mediavault_state"
    assert dsn_for_role(STATE, "mediavault_agent") == (
        "postgresql://mediavault_agent@db.internal/mediavault_state"
    )
    socket_dsn = "postgresql://postgres@/sakila?host=/tmp/pg&port=5433"
    assert dsn_for_role(socket_dsn, "mediavault_agent") == (
        "postgresql://mediavault_agent@/sakila?host=/tmp/pg&port=5433"
    )


def _facts(dialect: str) -> GateFacts:
    return GateFacts(
        phase="investigate",
        sender="a@example.com",
        forced_escalation=False,
        forced_reason=None,
        tool_calls_used=0,
        max_tool_calls=6,
        sql_max_rows=100,
        sql_dialect=dialect,
    )


def test_the_gate_checks_sql_in_the_business_databases_dialect() -> None:
    call = {
        "id": "call-1",
        "name": "run_sql_query",
        "args": {"query": "SELECT date_trunc('month', payment_date) AS m FROM my_payments"},
    }
    assert judge_tool_call(call, _facts("postgres")).verdict == "allow"
    assert judge_tool_call(call, _facts("sqlite")).verdict == "deny"
    attack = {**call, "args": {"query": "SELECT set_config('mediavault.customer_id', '7', true)"}}
    verdict = judge_tool_call(attack, _facts("postgres"))
    assert verdict.verdict == "deny" and "set_config" in verdict.reason


def test_db_init_from_sqlite_needs_postgres(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["db", "init", "--home", str(tmp_path), "--from-sqlite", str(tmp_path / "x.db")]
    )
    assert result.exit_code == 2 and "--postgres" in result.output
    assert "Traceback" not in result.output


def test_db_init_postgres_reports_an_unreachable_server_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "db",
            "init",
            "--home",
            str(tmp_path),
            "--postgres",
            "postgresql://postgres@/mediavault?host=/nonexistent-socket",
        ],
    )
    assert result.exit_code == 1 and "cannot connect" in result.output
    assert "Traceback" not in result.output


def test_worker_without_a_state_database_exits_2(
    mediavault_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 2 and "MEDIAVAULT_STATE_DB" in result.output
