"""Shared state on Postgres: the case store and the checkpoints several workers rely on.

The same script of writes runs on the SQLite case store and on the Postgres one, with one
hand-moved clock: the records must come back identical, idempotency rules included. Then what
only a shared server has to get right: writers in parallel, and a review resumed by another
process from checkpoints that live in Postgres.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from postgres_cluster import PostgresCluster, shared_cluster

from mediavault.agent.stores.case_store import CaseNotFoundError, CaseStore
from mediavault.agent.stores.case_store_postgres import PostgresCaseStore, open_case_store
from mediavault.agent.stores.checkpoints import open_checkpointer
from mediavault.graph.context import ConfigurationError, Context
from mediavault.graph.inbound_email import MAX_BODY_CHARS, InboundEmail

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="session")
def pg_cluster(request: pytest.FixtureRequest) -> PostgresCluster:
    return shared_cluster(request)


REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.current = START

    def __call__(self) -> datetime:
        return self.current

    def advance(self) -> None:
        self.current += timedelta(seconds=7)


@pytest.fixture
def state_dsn(pg_cluster: PostgresCluster) -> Iterator[str]:
    name = pg_cluster.create_database("state")
    yield pg_cluster.dsn(name)
    pg_cluster.drop_database(name)


def _email(email_id: str, **fields: object) -> InboundEmail:
    values: dict[str, object] = {
        "email_id": email_id,
        "received_at": START,
        "from": "Alice Doe <alice@example.com>",
        "subject": "Late fee",
        "body": "Why was I charged?",
        "message_id": f"<{email_id}@x>",
    }
    values.update(fields)
    return InboundEmail.from_fields(**values)


def _script(store: CaseStore, clock: Clock) -> list[object]:
    """Every write, twice where idempotency matters; returns what the calls answered."""
    answers: list[object] = []
    long_body = "x" * (MAX_BODY_CHARS + 50)
    for index, email in enumerate(
        [_email("e-1"), _email("e-2", body=long_body), _email("e-3", subject="Hello\r\nBcc: x")]
    ):
        for _ in range(2):
            store.record_email(email)
            store.open_case(
                email.email_id,
                thread_id=f"t-{index}",
                sender=" Alice@Example.com ",
                customer_id=7 if index else None,
                received_at=email.received_at,
            )
        clock.advance()
    answers.append(
        store.record_draft(
            "e-1",
            text="v1",
            source="model",
            valid=False,
            problems=["no sign-off"],
            policy_refs=["3.1"],
        )
    )
    answers.append(
        store.record_draft(
            "e-1",
            text="v1",
            source="model",
            valid=False,
            problems=["no sign-off"],
            policy_refs=["3.1"],
        )
    )
    clock.advance()
    answers.append(
        store.record_draft(
            "e-1", text="v2", source="reviewer", valid=True, problems=[], policy_refs=[]
        )
    )
    store.set_outcome(
        "e-1",
        route="draft",
        reason_code="late_fee_dispute",
        risk_flags=["x"],
        status="awaiting_review",
    )
    clock.advance()
    answers.append(
        store.record_review(
            "r-1", "e-1", decision="edit", reviewer="sam", edit_size=3, message="warmer"
        )
    )
    answers.append(store.record_review("r-1", "e-1", decision="edit", reviewer="sam"))
    store.set_status("e-1", "approved", reason="sent")
    clock.advance()
    store.set_status("e-1", "approved", reason="sent again")  # decided_at stays
    store.record_outbox("e-1", path="/outbox/e-1.eml", message_id="<m1>")
    store.record_outbox("e-1", path="/outbox/other.eml", message_id="<m2>")
    ticket = {
        "ticket_id": "T-1",
        "suggested_routing": "tier2_legal",
        "priority": "high",
        "reason_code": "legal_threat",
        "summary": "lawyer",
    }
    store.record_ticket("e-2", ticket)
    clock.advance()
    store.record_ticket("e-2", {**ticket, "priority": "urgent"})
    store.set_outcome(
        "e-2",
        route="escalate",
        reason_code="legal_threat",
        risk_flags=[],
        status="escalated",
        queue="tier2_legal",
    )
    for bad in (
        lambda: store.record_draft(
            "nope", text="x", source="model", valid=True, problems=[], policy_refs=[]
        ),
        lambda: store.set_status("nope", "failed"),
        lambda: store.record_review("r-1", "e-2", decision="approve", reviewer="x"),
        lambda: store.set_outcome(
            "e-3", route="sideways", reason_code=None, risk_flags=[], status="failed"
        ),
    ):
        try:
            bad()
        except (CaseNotFoundError, ValueError) as error:
            answers.append(type(error).__name__)
    return answers


def test_postgres_store_records_exactly_what_the_sqlite_store_records(
    state_dsn: str, tmp_path: Path
) -> None:
    sqlite_clock, postgres_clock = Clock(), Clock()
    sqlite_store = CaseStore(tmp_path / "cases.sqlite", now=sqlite_clock)
    postgres_store = PostgresCaseStore(state_dsn, now=postgres_clock)
    assert _script(postgres_store, postgres_clock) == _script(sqlite_store, sqlite_clock)
    assert postgres_store.list_cases() == sqlite_store.list_cases()
    assert postgres_store.get_case("e-1") == sqlite_store.get_case("e-1")
    assert postgres_store.count_by_status() == sqlite_store.count_by_status()
    assert postgres_store.pending_reviews() == sqlite_store.pending_reviews() == []
    window = {"since": START, "until": START + timedelta(hours=1), "status": "escalated"}
    assert postgres_store.list_cases(**window) == sqlite_store.list_cases(**window)
    assert postgres_store.list_cases(limit=1) == sqlite_store.list_cases(limit=1)
    assert [postgres_store.has_outcome(e) for e in ("e-1", "e-3", "x")] == [True, False, False]
    case = postgres_store.get_case("e-2")
    assert case is not None and case.email is not None
    assert case.email.body.count("truncated") == 1  # stored once, never cut again
    assert postgres_store.migrate() == []  # already up to date


def test_parallel_writers_get_distinct_draft_versions(state_dsn: str) -> None:
    setup = PostgresCaseStore(state_dsn)
    setup.record_email(_email("busy"))
    setup.open_case(
        "busy", thread_id="t", sender="a@example.com", customer_id=None, received_at=START
    )
    versions: list[int] = []
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        store = PostgresCaseStore(state_dsn)  # a connection each, like separate processes
        try:
            for n in range(10):
                versions.append(
                    store.record_draft(
                        "busy",
                        text=f"{worker}-{n}",
                        source="model",
                        valid=True,
                        problems=[],
                        policy_refs=[],
                    )
                )
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            store.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(versions) == list(range(1, 41))


def test_the_store_reconnects_after_the_server_drops_it(
    state_dsn: str, pg_cluster: PostgresCluster
) -> None:
    store = PostgresCaseStore(state_dsn)
    assert store.count_by_status()["open"] == 0
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'mediavault-cases'"
        )
    assert store.count_by_status()["open"] == 0


def test_open_case_store_follows_the_settings(state_dsn: str, tmp_path: Path) -> None:
    assert type(open_case_store(Context(home=tmp_path, state_db=None))) is CaseStore
    assert isinstance(
        open_case_store(Context(home=tmp_path, state_db=state_dsn)), PostgresCaseStore
    )
    with pytest.raises(ConfigurationError, match="postgresql://"):
        open_case_store(Context(home=tmp_path, state_db="mysql://x"))


def test_a_review_is_resumed_by_another_process_from_postgres_checkpoints(
    state_dsn: str, tmp_path: Path, demo_db_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAVAULT_")}
    env.update(MEDIAVAULT_DB=str(demo_db_path), MEDIAVAULT_STATE_DB=state_dsn)
    email = {
        "email_id": "pg-review-1",
        "received_at": "2026-03-01T09:00:00Z",
        "from": "Dana Whitfield <dana.whitfield@example.com>",
        "subject": "When is my film due?",
        "body": "Hi, when do I bring it back?",
    }

    def run(code: str, home: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env={**env, "MEDIAVAULT_HOME": home},
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    # Two different homes: nothing can be shared through local files.
    first = run(
        f"from agent import triage_email; print(triage_email({email!r}).status)",
        str(tmp_path / "machine-1"),
    )
    assert first == "awaiting_review"
    second = run(
        "from agent import resume, ReviewDecision\n"
        "print(resume('pg-review-1', ReviewDecision(type='approve', reviewer='sam')).status)",
        str(tmp_path / "machine-2"),
    )
    assert second == "approved"
    case = PostgresCaseStore(state_dsn).get_case("pg-review-1")
    assert case is not None and case.status == "approved"
    assert [review.reviewer for review in case.reviews] == ["sam"]
    # A third machine shows the evidence in full (the rows live with the thread's Postgres
    # checkpoints) and a trace; its own audit log is empty, so the trace comes from the
    # checkpoint: the gate's verdicts and the decision.
    third = run(
        "from mediavault.agent.ops.review_desk import show_case\n"
        "case = show_case('pg-review-1')\n"
        "query = next(item for item in case.evidence if item.sql)\n"
        "print(len(query.rows) == query.row_count > 0, query.sql.endswith('LIMIT 100'),"
        " case.trace[-1].kind, sum(step.verdict == 'allow' for step in case.trace))",
        str(tmp_path / "machine-3"),
    )
    first_word, full_sql, last_step, allowed = third.split()
    assert (first_word, full_sql, last_step) == ("True", "True", "decision")
    assert int(allowed) >= 2
    assert not (tmp_path / "machine-1" / "checkpoints.sqlite").exists()
    with open_checkpointer(Context(home=tmp_path, state_db=state_dsn)) as saver:
        assert type(saver).__name__ == "PostgresSaver"


SET_UP_CHECKPOINTS = """
import sys
from mediavault.agent.stores.checkpoints import open_checkpointer
from mediavault.graph.context import Context
with open_checkpointer(Context(home=sys.argv[2], state_db=sys.argv[1])) as saver:
    print(type(saver).__name__)
"""


def test_workers_starting_together_set_up_the_checkpoint_tables_without_deadlock(
    state_dsn: str, tmp_path: Path
) -> None:
    # The saver's set-up builds indexes CONCURRENTLY, which waits for other open transactions:
    # workers queueing on a blocking lock would deadlock with it.
    script = tmp_path / "setup.py"
    script.write_text(SET_UP_CHECKPOINTS)
    workers = [
        subprocess.Popen([sys.executable, str(script), state_dsn, str(tmp_path / f"h{i}")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(4)
    ]
    results = [worker.communicate(timeout=180) for worker in workers]
    for worker, (out, err) in zip(workers, results, strict=True):
        assert worker.returncode == 0, err
        assert out.strip() == "PostgresSaver"
