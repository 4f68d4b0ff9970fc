"""Checkpoints on disk: resumes from a new process, and a batch killed midway."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mediavault.agent.api import triage_email
from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.graph.context import Context

#: Slow tier (processes killed and resumed): `make unit` runs it after the fast tier.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
INBOX = REPO / "examples" / "inbox.csv"


def _run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _env(home: Path, db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAVAULT_")}
    env.update(MEDIAVAULT_HOME=str(home), MEDIAVAULT_DB=str(db))
    return env


def _query(path: Path, sql: str) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("decision", "status"),
    [
        ('{"type": "approve", "reviewer": "ana"}', "approved"),
        (
            '{"type": "edit", "body": BODY.replace("MediaVault Support Team", '
            '"See you soon.\\nMediaVault Support Team")}',
            "approved",
        ),
        ('{"type": "reject", "reason_category": "tone", "message": "warmer"}', "awaiting_review"),
    ],
)
def test_a_review_decision_resumes_from_a_fresh_process(
    demo_db_path: Path, mediavault_home: Path, decision: str, status: str
) -> None:
    context = Context(home=mediavault_home, db=str(demo_db_path))
    email = next(e for e in read_inbox_csv(INBOX).emails if e.email_id == "msg-003")
    first = triage_email(email, context=context)
    assert first.status == "awaiting_review"
    code = f"""
        from mediavault.agent.api import resume, pending_reviews
        from mediavault.graph.context import Context
        BODY = pending_reviews()[0]["latest_draft"]["text"]
        result = resume("msg-003", {decision})
        print(result.status)
    """
    completed = _run_python(code, _env(mediavault_home, demo_db_path))
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().splitlines()[-1] == status


SLOW_BATCH = """
import sys, time
from mediavault.agent.api import triage_email
from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.agent.models.rules_model import RulesChatModel

class SlowRules(RulesChatModel):
    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        time.sleep(0.15)
        return super()._generate(messages, stop, run_manager, **kwargs)

for email in read_inbox_csv(sys.argv[1]).emails:
    triage_email(email, model=SlowRules())
print("done")
"""


def test_a_batch_killed_with_sigkill_and_run_again_leaves_one_outcome_per_email(
    demo_db_path: Path, mediavault_home: Path, tmp_path: Path
) -> None:
    script = tmp_path / "slow_batch.py"
    script.write_text(SLOW_BATCH)
    env = _env(mediavault_home, demo_db_path)
    cases = mediavault_home / "cases.sqlite"
    process = subprocess.Popen(
        [sys.executable, str(script), str(INBOX)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            if cases.exists():
                try:
                    rows = _query(cases, "SELECT count(*) FROM cases WHERE status IS NOT NULL")
                except sqlite3.OperationalError:  # the store is still being created
                    rows = []
                if rows and int(str(rows[0][0])) >= 4:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("the batch never got going")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()
    killed_with = _query(cases, "SELECT count(*) FROM cases")[0][0]
    total = len(read_inbox_csv(INBOX).emails)
    assert int(str(killed_with)) < total, "the batch finished before it was killed"

    rerun = subprocess.run(
        [sys.executable, str(script), str(INBOX)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert rerun.returncode == 0, rerun.stderr
    statuses = _query(cases, "SELECT email_id, status FROM cases")
    assert len(statuses) == total
    assert all(status in ("awaiting_review", "escalated") for _, status in statuses)
    duplicates = _query(
        cases,
        "SELECT email_id, count(*) FROM drafts WHERE source = 'model' "
        "GROUP BY email_id HAVING count(*) > 1",
    )
    assert duplicates == []
    tickets = _query(cases, "SELECT count(*), count(DISTINCT email_id) FROM tickets")[0]
    assert tickets[0] == tickets[1]
    escalated = _query(cases, "SELECT count(*) FROM cases WHERE status = 'escalated'")[0][0]
    assert tickets[0] == escalated


def test_checkpoints_go_to_a_replaced_checkpoint_file_not_to_the_deleted_one(
    demo_db_path: Path, mediavault_home: Path
) -> None:
    # The saver stays open between calls; an operator who moves the file aside must not have
    # the next emails' checkpoints vanish into the unlinked file.
    context = Context(home=mediavault_home, db=str(demo_db_path), review="none")
    emails = read_inbox_csv(INBOX).emails
    triage_email(emails[0], context=context)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{context.checkpoint_path}{suffix}").unlink(missing_ok=True)
    second = triage_email(emails[1], context=context)
    threads = {row[0] for row in _query(context.checkpoint_path,
                                        "SELECT DISTINCT thread_id FROM checkpoints")}
    assert threads == {second.thread_id}


def test_a_forked_child_opens_its_own_checkpoint_connection(
    demo_db_path: Path, mediavault_home: Path
) -> None:
    context = Context(home=mediavault_home, db=str(demo_db_path), review="none")
    emails = read_inbox_csv(INBOX).emails
    triage_email(emails[0], context=context)  # the parent's saver is now open
    pid = os.fork()
    if pid == 0:  # the child: a SQLite connection must not be used across a fork
        code = 0
        try:
            code = 0 if triage_email(emails[1], context=context).status == "approved" else 3
        except BaseException:
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert triage_email(emails[2], context=context).status in {"approved", "escalated"}
    assert len(_query(context.checkpoint_path,
                      "SELECT DISTINCT thread_id FROM checkpoints")) == 3
