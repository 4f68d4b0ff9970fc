"""State files are private to their owner, and nothing but regular files and folders is read.

Cases, checkpoints and the audit log hold customers' data: 0600 files in a 0700 folder. A FIFO
would hang a run and a symlink to /dev/zero would read until memory runs out; both are refused
with a message naming the path.
"""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mediavault.agent.mail.outbox import write_outbox_message
from mediavault.cli import app

REPO = Path(__file__).resolve().parents[2]
INBOX = REPO / "examples" / "inbox.csv"
ONE_EMAIL = ("email_id,received_at,from,subject,body\n"
             "p-1,2026-03-01T09:00:00Z,sofia.marchetti@example.com,Due date,"
             "\"Hi, when is my film due?\"\n")

runner = CliRunner()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def db(demo_db_path: Path, mediavault_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEDIAVAULT_DB", str(demo_db_path))
    return demo_db_path


def _limited() -> None:  # the child may not eat the machine's memory while it misbehaves
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def run_cli(*args: str, env_home: Path, db: Path) -> subprocess.CompletedProcess[str]:
    """The command in a child process: a hang or a runaway read fails the test, not the run."""
    env = {**os.environ, "MEDIAVAULT_HOME": str(env_home), "MEDIAVAULT_DB": str(db)}
    return subprocess.run([sys.executable, "-c", "from mediavault.cli import app; app()", *args],
                          env=env, capture_output=True, text=True, timeout=60,
                          preexec_fn=_limited, cwd=REPO)


def test_a_run_leaves_owner_only_state(
    db: Path, mediavault_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = os.umask(0o022)  # the usual umask of a shell
    try:
        home = mediavault_home / "fresh"
        monkeypatch.setenv("MEDIAVAULT_HOME", str(home))
        inbox = tmp_path / "one.csv"
        inbox.write_text(ONE_EMAIL)
        result = runner.invoke(app, ["triage", str(inbox)])
        assert result.exit_code == 0, result.output
        write_outbox_message(home / "outbox", email_id="p-1", to="a@example.com",
                             subject="s", body="b", in_reply_to=None)
    finally:
        os.umask(previous)
    assert mode(home) == 0o700
    assert mode(home / "outbox") == 0o700
    state = [p for p in home.rglob("*") if p.is_file()]
    assert {p.name for p in state} >= {"cases.sqlite", "checkpoints.sqlite", "audit.jsonl"}
    loose = {str(p.relative_to(home)): oct(mode(p)) for p in state if mode(p) & 0o077}
    assert loose == {}


def test_state_an_older_version_left_readable_is_tightened(
    db: Path, mediavault_home: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "one.csv"
    inbox.write_text(ONE_EMAIL)
    assert runner.invoke(app, ["triage", str(inbox)]).exit_code == 0
    os.chmod(mediavault_home, 0o755)
    for name in ("cases.sqlite", "checkpoints.sqlite", "audit.jsonl"):
        os.chmod(mediavault_home / name, 0o644)
    assert runner.invoke(app, ["triage", str(inbox)]).exit_code == 0
    assert mode(mediavault_home) == 0o700
    for name in ("cases.sqlite", "checkpoints.sqlite", "audit.jsonl"):
        assert mode(mediavault_home / name) == 0o600, name


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_an_inbox_that_is_not_a_regular_file_is_refused_with_a_message(
    db: Path, mediavault_home: Path, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "inbox.eml"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    done = run_cli("triage", str(path), env_home=mediavault_home, db=db)
    assert done.returncode == 2, done.stderr
    assert "not a regular file or folder" in done.stderr and str(path) in done.stderr
    assert ("FIFO" if kind == "fifo" else "character device") in done.stderr
    assert "Traceback" not in done.stderr


def test_special_files_inside_inbox_folders_are_skipped_and_the_rest_is_read(
    db: Path, mediavault_home: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "mail"
    folder.mkdir()
    os.mkfifo(folder / "a.eml")
    (folder / "b.eml").symlink_to("/dev/zero")
    (folder / "c.eml").write_bytes(b"From: sofia.marchetti@example.com\r\nSubject: Due\r\n"
                                   b"Message-ID: <c@x>\r\n\r\nWhen is my film due?\r\n")
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    os.mkfifo(maildir / "new" / "1700000000.fifo.host")
    done = run_cli("triage", str(folder), str(maildir), env_home=mediavault_home, db=db)
    assert done.returncode == 1, done.stderr
    skipped = [line for line in done.stderr.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 3, done.stderr
    assert all("unreadable_file" in line and "not a regular file" in line for line in skipped)
    assert "c@x" in done.stdout


@pytest.mark.parametrize("name", ["cases.sqlite", "checkpoints.sqlite"])
def test_a_state_file_that_is_a_fifo_is_refused_not_waited_on(
    db: Path, mediavault_home: Path, tmp_path: Path, name: str
) -> None:
    inbox = tmp_path / "one.csv"
    inbox.write_text(ONE_EMAIL)
    os.mkfifo(mediavault_home / name)
    done = run_cli("triage", str(inbox), env_home=mediavault_home, db=db)
    assert done.returncode == 2, done.stderr
    assert f"{mediavault_home / name} is a FIFO (named pipe), not a regular file" in done.stderr


@pytest.mark.parametrize("name", ["cases.sqlite", "checkpoints.sqlite", "audit.jsonl"])
def test_a_state_file_linked_to_a_device_is_refused_by_every_command(
    db: Path, mediavault_home: Path, tmp_path: Path, name: str
) -> None:
    inbox = tmp_path / "one.csv"
    inbox.write_text(ONE_EMAIL)
    (mediavault_home / name).symlink_to("/dev/zero")
    for command in (["triage", str(inbox)], ["cases", "list"], ["review", "list"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        assert f"{mediavault_home / name} is a character device, not a regular file" \
            in result.stderr.replace("\n", "")
