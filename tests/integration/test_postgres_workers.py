"""Several `mediavault worker` processes sharing one inbox through Postgres.

Business data in one database (as ``mediavault_agent``), the queue, checkpoints and cases in
another (as a worker role that owns it), each worker with a home folder of its own, as on
separate machines. Every email must end in exactly one outcome, the same outcome a single
process on SQLite records, whether two workers split the inbox or one is killed mid-email
and the other takes its email over when the lease runs out.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from postgres_cluster import PostgresCluster, shared_cluster

from mediavault.agent.api import triage_email
from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.agent.stores.case_store import CASE_STATUSES
from mediavault.graph.context import Context
from mediavault.tools.business_db.postgres_loader import init_postgres_database

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="session")
def pg_cluster(request: pytest.FixtureRequest) -> PostgresCluster:
    return shared_cluster(request)


REPO = Path(__file__).resolve().parents[2]
INBOX = REPO / "examples" / "inbox.csv"
EMAIL_IDS = sorted(email.email_id for email in read_inbox_csv(INBOX).emails)
WORKER_ROLE = "mediavault_worker"
LEASE_SECONDS = "4"


@dataclass(frozen=True)
class Deployment:
    agent_dsn: str
    scope_key: str
    cluster: PostgresCluster


@pytest.fixture(scope="module")
def deployment(pg_cluster: PostgresCluster, demo_db_path: Path) -> Iterator[Deployment]:
    database = pg_cluster.create_database("workers_business")
    summary = init_postgres_database(pg_cluster.dsn(database), sqlite_path=demo_db_path)
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [WORKER_ROLE]).fetchone():
            conn.execute(f"CREATE ROLE {WORKER_ROLE} LOGIN")
    yield Deployment(agent_dsn=summary.agent_dsn, scope_key=summary.scope_key, cluster=pg_cluster)
    pg_cluster.drop_database(database)


@pytest.fixture
def state_dsn(deployment: Deployment) -> Iterator[str]:
    """A fresh state database owned by the worker role, as an operator would create it."""
    cluster = deployment.cluster
    name = f"workers_state_{int(time.time() * 1000) % 10_000_000}"
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER {WORKER_ROLE}')
    yield cluster.dsn(name, user=WORKER_ROLE)
    cluster.drop_database(name)


@pytest.fixture(scope="module")
def sqlite_outcomes(demo_db_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What one process on SQLite records for the sample inbox: the outcomes to match."""
    context = Context(
        home=tmp_path_factory.mktemp("sqlite-baseline"),
        db=str(demo_db_path),
        model="rules",
        review="all",
        today=None,
        state_db=None,
    )
    outcomes = {}
    for email in read_inbox_csv(INBOX).emails:
        result = triage_email(email, context=context)
        outcomes[email.email_id] = (result.status, result.route, result.reason_code)
    return outcomes


def _worker(
    deployment: Deployment, state: str, home: Path, worker_id: str
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAVAULT_")}
    env.update(
        MEDIAVAULT_HOME=str(home), MEDIAVAULT_DB=deployment.agent_dsn, MEDIAVAULT_STATE_DB=state,
        MEDIAVAULT_SCOPE_KEY=deployment.scope_key,
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mediavault",
            "worker",
            str(INBOX),
            "--lease",
            LEASE_SECONDS,
            "--worker-id",
            worker_id,
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"worker did not finish:\n{out}\n{err}")
    return process.returncode, out, err


def _rows(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def _assert_one_outcome_per_email(state: str, sqlite_outcomes: dict[str, Any]) -> None:
    cases = _rows(state, "SELECT email_id, status, route, reason_code FROM cases ORDER BY 1")
    assert [row[0] for row in cases] == EMAIL_IDS
    assert all(row[1] in CASE_STATUSES for row in cases)
    # The same outcomes as one process on SQLite: Postgres changes where, not what.
    assert {row[0]: tuple(row[1:]) for row in cases} == sqlite_outcomes
    assert (
        _rows(
            state,
            "SELECT email_id FROM drafts WHERE source = 'model' "
            "GROUP BY email_id HAVING count(*) > 1",
        )
        == []
    )
    tickets = _rows(state, "SELECT count(*), count(DISTINCT email_id) FROM tickets")[0]
    escalated = sum(1 for row in cases if row[1] == "escalated")
    assert tickets == (escalated, escalated)
    threads = _rows(state, "SELECT count(DISTINCT thread_id) FROM checkpoints")[0][0]
    assert threads == len(EMAIL_IDS)  # checkpoints live in Postgres, one thread per email
    assert _rows(state, "SELECT status, count(*) FROM inbox_queue GROUP BY 1") == [
        ("done", len(EMAIL_IDS))
    ]


def test_two_workers_share_the_inbox_with_one_outcome_per_email(
    deployment: Deployment, state_dsn: str, tmp_path: Path, sqlite_outcomes: dict[str, Any]
) -> None:
    workers = [
        _worker(deployment, state_dsn, tmp_path / name, name) for name in ("worker-a", "worker-b")
    ]
    results = [_finish(worker) for worker in workers]
    for code, out, err in results:
        assert code == 0, f"{out}\n{err}"
        assert "Traceback" not in err
    _assert_one_outcome_per_email(state_dsn, sqlite_outcomes)
    claims = _rows(state_dsn, "SELECT worker, attempts FROM inbox_queue")
    assert all(attempts == 1 for _, attempts in claims)  # no email was claimed twice
    printed = sum(out.count("msg-") for _, out, _ in results)
    assert printed == len(EMAIL_IDS)  # each email triaged by exactly one of the two
    for name in ("worker-a", "worker-b"):  # each machine keeps its own audit log
        assert not (tmp_path / name / "checkpoints.sqlite").exists()
        assert not (tmp_path / name / "cases.sqlite").exists()


def test_a_worker_killed_mid_email_is_taken_over_after_its_lease(
    deployment: Deployment, state_dsn: str, tmp_path: Path, sqlite_outcomes: dict[str, Any]
) -> None:
    first = _worker(deployment, state_dsn, tmp_path / "worker-a", "worker-a")
    held: str | None = None
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and held is None:
            time.sleep(0.01)
            try:
                rows = _rows(
                    state_dsn,
                    "SELECT email_id FROM inbox_queue WHERE worker = 'worker-a' AND "
                    "status = 'claimed' AND (SELECT count(*) FROM inbox_queue "
                    "WHERE status = 'done') >= 2",
                )
            except psycopg.errors.UndefinedTable:
                continue  # the worker has not created the queue yet
            held = rows[0][0] if rows else None
            if first.poll() is not None:
                pytest.fail(f"worker-a finished before it could be killed: {first.communicate()}")
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    assert held is not None, "worker-a never held a claim"
    unfinished = _rows(state_dsn, "SELECT count(*) FROM inbox_queue WHERE status <> 'done'")
    assert unfinished[0][0] > 0, "the batch finished before the kill"

    started = time.monotonic()
    second = _worker(deployment, state_dsn, tmp_path / "worker-b", "worker-b")
    code, out, err = _finish(second)
    assert code == 0, f"{out}\n{err}"
    assert time.monotonic() - started >= float(LEASE_SECONDS) - 1  # it waited for the lease
    taken_over = _rows(
        state_dsn, f"SELECT worker, attempts FROM inbox_queue WHERE email_id = '{held}'"
    )
    assert taken_over == [("worker-b", 2)]
    assert f"{held}:" in out
    _assert_one_outcome_per_email(state_dsn, sqlite_outcomes)


def test_a_worker_without_a_state_database_is_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAVAULT_")}
    env["MEDIAVAULT_HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "mediavault", "worker", str(INBOX)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "MEDIAVAULT_STATE_DB" in done.stderr and "Traceback" not in done.stderr
