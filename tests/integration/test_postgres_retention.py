"""Checkpoint retention on the shared Postgres state: the same guarantees as on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from postgres_cluster import PostgresCluster, shared_cluster

from mediavault.agent.api import ReviewDecision, resume, triage_email
from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.agent.ops.batch import run_triage_batch
from mediavault.agent.stores.checkpoint_retention import prune_checkpoints
from mediavault.graph.context import Context

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
EMAILS = read_inbox_csv(REPO / "examples" / "inbox.csv").emails


@pytest.fixture(scope="session")
def pg_cluster(request: pytest.FixtureRequest) -> PostgresCluster:
    return shared_cluster(request)


@pytest.fixture
def state_dsn(pg_cluster: PostgresCluster) -> Iterator[str]:
    name = pg_cluster.create_database("retention")
    yield pg_cluster.dsn(name)
    pg_cluster.drop_database(name)


def _count(dsn: str, table: str, thread_id: str | None = None) -> int:
    with psycopg.connect(dsn) as connection:
        if thread_id is None:
            row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
        else:
            row = connection.execute(f"SELECT count(*) FROM {table} WHERE thread_id = %s",
                                     [thread_id]).fetchone()
    assert row is not None
    return int(row[0])


def _audit_lines(context: Context) -> int:
    return len(context.audit_path.read_text().splitlines())


def test_a_finished_email_keeps_only_its_last_checkpoint_and_answers_again(
    state_dsn: str, demo_db_path: Path, tmp_path: Path
) -> None:
    context = Context(home=tmp_path, db=str(demo_db_path), state_db=state_dsn, review="none")
    results = [triage_email(email, context=context) for email in EMAILS[:3]]
    for result in results:
        assert result.status in {"approved", "escalated"}
        assert _count(state_dsn, "checkpoints", result.thread_id) == 1
        assert _count(state_dsn, "checkpoint_writes", result.thread_id) == 0
    lines = _audit_lines(context)
    for email, first in zip(EMAILS[:3], results, strict=True):
        again = triage_email(email, context=context)
        assert again.already_recorded and again.status == first.status
        assert again.reason_code == first.reason_code
    assert _audit_lines(context) == lines


def test_keeping_none_under_a_batch_spares_pending_reviews(
    state_dsn: str, demo_db_path: Path, tmp_path: Path
) -> None:
    context = Context(home=tmp_path, db=str(demo_db_path), state_db=state_dsn, review="all",
                      checkpoint_retention="none")
    results = run_triage_batch(EMAILS[:4], context=context, concurrency=2)
    waiting = [r for r in results if r.status == "awaiting_review"]
    finished = [r for r in results if r.status == "escalated"]
    assert waiting and finished
    for result in finished:
        assert _count(state_dsn, "checkpoints", result.thread_id) == 0
        assert _count(state_dsn, "checkpoint_blobs", result.thread_id) == 0
    for result in waiting:
        assert _count(state_dsn, "checkpoints", result.thread_id) > 1
    decided = resume(waiting[0].email_id, ReviewDecision(type="approve", reviewer="sam"),
                     context=context)
    assert decided.status == "approved"
    assert _count(state_dsn, "checkpoints", decided.thread_id) == 0
    again = run_triage_batch(EMAILS[:4], context=context, concurrency=2)
    assert all(r.already_recorded for r in again)
    assert [r.status for r in again if r.email_id == decided.email_id] == ["approved"]


def test_prune_on_postgres_says_what_it_frees_then_frees_it(
    state_dsn: str, demo_db_path: Path, tmp_path: Path
) -> None:
    context = Context(home=tmp_path, db=str(demo_db_path), state_db=state_dsn, review="none",
                      checkpoint_retention="all")
    results = [triage_email(email, context=context) for email in EMAILS[:3]]
    rows = _count(state_dsn, "checkpoints")
    blobs = _count(state_dsn, "checkpoint_blobs")
    planned = prune_checkpoints(context, policy="last", dry_run=True)
    assert planned.pruned == 3 and planned.bytes_freed > 0
    assert _count(state_dsn, "checkpoints") == rows
    done = prune_checkpoints(context, policy="last")
    assert done.bytes_freed == planned.bytes_freed
    assert _count(state_dsn, "checkpoints") == 3
    assert _count(state_dsn, "checkpoint_blobs") < blobs
    for email, first in zip(EMAILS[:3], results, strict=True):
        again = triage_email(email, context=context)
        assert again.already_recorded and again.status == first.status
        assert again.gate_log == first.gate_log  # the final state is intact
