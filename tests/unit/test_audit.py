"""The audit log: what it records, what it refuses to keep, and which tampering it catches."""

from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing
import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mediavault.agent.stores import audit as audit_module
from mediavault.agent.stores.audit import (
    GENESIS_HASH,
    AuditAction,
    AuditLog,
    AuditLogError,
    audit_key_from_env,
    digest,
    read_events,
    verify_audit_log,
)
from mediavault.graph.context import ConfigurationError

KEY = b"test-audit-key-0123456789abcdef"


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "audit.jsonl"


def head_of(path: Path) -> Path:
    return path.with_name(path.name + ".head")


def write_events(path: Path, count: int, *, key: bytes | None = None) -> AuditLog:
    log = AuditLog(path, key=key)
    for n in range(1, count + 1):
        log.append(
            AuditAction.TOOL_EXECUTION,
            outcome="success",
            thread_id="thread-1",
            email_id=f"email-{n}",
            tool_call_id=f"call-{n}",
            details={"tool": "query_rentals", "row_count": n},
        )
    return log


def read_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def edit_line(path: Path, line_no: int, change: dict[str, object]) -> None:
    """Change fields of one line the way an editor would, keeping the log's JSON layout."""
    lines = read_lines(path)
    record = json.loads(lines[line_no - 1])
    record.update(change)
    lines[line_no - 1] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    write_lines(path, lines)


def rechain_without_key(path: Path, from_line: int, label: str) -> None:
    """What someone holding the file but not the key can do: recompute every later hash."""
    lines = read_lines(path)
    prev = json.loads(lines[from_line - 2])["hash"] if from_line > 1 else GENESIS_HASH
    for index in range(from_line - 1, len(lines)):
        record = json.loads(lines[index])
        record["prev_hash"] = prev
        del record["hash"]
        body = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        record["hash"] = prev = label + hashlib.sha256(body).hexdigest()
        lines[index] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    write_lines(path, lines)


# -- recording -------------------------------------------------------------------------------


def test_constructing_a_log_creates_no_files(log_path: Path) -> None:
    AuditLog(log_path, key=KEY)
    assert not log_path.parent.exists()


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "keyed"])
def test_appended_events_read_back_and_verify(log_path: Path, key: bytes | None) -> None:
    log = AuditLog(log_path, key=key)
    first = log.append(
        AuditAction.GATE_VERDICT,
        outcome="failure",
        reason="DELETE statements are not allowed",
        thread_id="t-1",
        email_id="e-1",
        tool_call_id="call-1",
        actor="gate",
        details={"verdict": "deny", "tool": "run_sql"},
    )
    log.append(AuditAction.HUMAN_DECISION, outcome="success", email_id="e-1", actor="j.doe")
    log.append(AuditAction.CASE_OUTCOME, outcome="success", email_id="e-2", actor="system")

    assert first is not None
    assert (first.action, first.outcome, first.actor, first.sequence) == (
        "gate.verdict",
        "failure",
        "gate",
        1,
    )
    assert first.prev_hash == GENESIS_HASH
    record = json.loads(read_lines(log_path)[0])
    assert record["event"]["action"] == "gate.verdict"
    assert record["@timestamp"].endswith("Z")
    assert record["details"] == {"verdict": "deny", "tool": "run_sql"}

    events = read_events(log_path, email_id="e-1")
    assert [e.action for e in events] == ["gate.verdict", "review.decision"]
    assert events[1].actor == "j.doe"

    result = verify_audit_log(log_path, key=key)
    assert result.ok, result.problem
    assert result.lines_checked == 3
    assert result.keyed is (key is not None)
    assert head_of(log_path).exists() is (key is not None)
    if key is None:
        assert any("truncated tail cannot be detected" in w for w in result.warnings)


def test_timestamps_are_utc_from_the_injected_clock(log_path: Path) -> None:
    paris = timezone(timedelta(hours=1))
    log = AuditLog(log_path, clock=lambda: datetime(2026, 3, 2, 11, 15, 30, 250000, paris))
    log.append(AuditAction.MODEL_CALL, outcome="success", details={"total_tokens": 812})
    assert json.loads(read_lines(log_path)[0])["@timestamp"] == "2026-03-02T10:15:30.250Z"


def test_read_events_filters_by_thread(log_path: Path) -> None:
    log = AuditLog(log_path)
    log.append("case.outcome", outcome="success", thread_id="a", email_id="1")
    log.append("case.outcome", outcome="unknown", thread_id="b", email_id="2")
    assert [e.email_id for e in read_events(log_path, thread_id="b")] == ["2"]
    assert read_events(log_path.with_name("absent.jsonl")) == []


@pytest.mark.parametrize(
    "bad",
    [{"outcome": "ok"}, {"action": ""}, {"actor": " "}, {"details": {"": 1}}],
    ids=["outcome", "action", "actor", "detail-key"],
)
def test_invalid_events_are_refused_and_nothing_is_written(
    log_path: Path, bad: dict[str, object]
) -> None:
    arguments: dict[str, object] = {"action": "tool.execution", "outcome": "success", **bad}
    with pytest.raises(ValueError):
        AuditLog(log_path).append(**arguments)  # type: ignore[arg-type]
    assert not log_path.exists()


# -- idempotency -----------------------------------------------------------------------------


def test_an_event_id_is_recorded_once_across_instances(log_path: Path) -> None:
    first_run = AuditLog(log_path)
    assert first_run.append("tool.execution", outcome="success", event_id="t1:call-7") is not None
    assert first_run.append("tool.execution", outcome="success", event_id="t1:call-7") is None

    # A resumed graph in another worker opens the log afresh.
    resumed = AuditLog(log_path)
    assert resumed.append("tool.execution", outcome="success", event_id="t1:call-7") is None

    # ...and an instance that indexed the log earlier sees what others appended since.
    resumed.append("review.decision", outcome="success", event_id="t1:review")
    assert first_run.append("review.decision", outcome="success", event_id="t1:review") is None

    assert [e.event_id for e in read_events(log_path)] == ["t1:call-7", "t1:review"]
    assert verify_audit_log(log_path).ok


def test_a_rotated_log_starts_a_new_chain_for_every_writer(log_path: Path) -> None:
    long_running = write_events(log_path, 3)
    log_path.rename(log_path.with_name("audit-2026-03.jsonl"))  # an operator rotates the log
    AuditLog(log_path).append("case.outcome", outcome="success", event_id="new-1")

    long_running.append("case.outcome", outcome="success", event_id="new-2")

    assert [e.sequence for e in read_events(log_path)] == [1, 2]
    assert verify_audit_log(log_path).ok


# -- privacy and line integrity --------------------------------------------------------------


def test_raw_bodies_and_query_results_are_never_stored(log_path: Path) -> None:
    body = "Dear MediaVault, my card 4111 1111 1111 1111 was charged twice. " * 10
    rows = [{"customer_id": 7, "email": "mary.smith@example.org"}]
    event = AuditLog(log_path).append(
        AuditAction.TOOL_EXECUTION,
        outcome="success",
        details={"body": body, "rows": rows, "ids": list(range(50)), "tool": "query_rentals"},
    )

    text = log_path.read_text()
    assert "4111" not in text
    assert "mary.smith" not in text
    assert event is not None
    assert event.details["body"] == digest(body)
    assert event.details["rows"] == digest(rows)
    assert event.details["ids"] == digest(list(range(50)))
    assert event.details["tool"] == "query_rentals"


def test_digest_is_short_and_ignores_key_order() -> None:
    assert digest({"a": 1, "b": [2]}) == digest({"b": [2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})
    value = digest("SELECT 1")
    assert value.startswith("sha256:")
    assert len(value) == len("sha256:") + 16


def test_line_breaks_in_a_subject_cannot_forge_a_line(log_path: Path) -> None:
    forged = '{"event":{"action":"case.outcome","outcome":"success"}}'
    subject = f"Refund\r\n{forged}\nBcc: x\u2028y\x85z"
    log = AuditLog(log_path)
    log.append("tool.execution", outcome="success", reason=subject, details={"subject": subject})

    assert log_path.read_bytes().count(b"\n") == 1
    assert len(log_path.read_text().splitlines()) == 1
    event = read_events(log_path)[0]
    assert event.details["subject"] == subject
    assert event.reason == subject
    assert verify_audit_log(log_path).ok


# -- tamper detection ------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "keyed"])
def test_an_edited_field_is_caught_at_its_line(log_path: Path, key: bytes | None) -> None:
    write_events(log_path, 4, key=key)
    edit_line(
        log_path,
        3,
        {"event": {**json.loads(read_lines(log_path)[2])["event"], "outcome": "failure"}},
    )
    result = verify_audit_log(log_path, key=key)
    assert not result.ok
    assert result.first_broken_line == 3
    assert "altered" in (result.problem or "")


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "keyed"])
def test_a_deleted_line_is_caught(log_path: Path, key: bytes | None) -> None:
    write_events(log_path, 4, key=key)
    lines = read_lines(log_path)
    write_lines(log_path, lines[:1] + lines[2:])
    result = verify_audit_log(log_path, key=key)
    assert (result.ok, result.first_broken_line) == (False, 2)
    assert "deleted" in (result.problem or "")


def test_deleting_the_first_line_is_caught(log_path: Path) -> None:
    write_events(log_path, 3)
    write_lines(log_path, read_lines(log_path)[1:])
    assert verify_audit_log(log_path).first_broken_line == 1


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "keyed"])
def test_swapped_lines_are_caught(log_path: Path, key: bytes | None) -> None:
    write_events(log_path, 4, key=key)
    lines = read_lines(log_path)
    lines[1], lines[2] = lines[2], lines[1]
    write_lines(log_path, lines)
    result = verify_audit_log(log_path, key=key)
    assert (result.ok, result.first_broken_line) == (False, 2)


def test_an_invalid_json_line_is_caught(log_path: Path) -> None:
    write_events(log_path, 3)
    lines = read_lines(log_path)
    lines[1] = lines[1][:-5]
    write_lines(log_path, lines)
    result = verify_audit_log(log_path)
    assert (result.ok, result.first_broken_line) == (False, 2)
    assert "not valid JSON" in (result.problem or "")
    with pytest.raises(AuditLogError, match="line 2"):
        read_events(log_path)


def test_a_reformatted_line_is_caught(log_path: Path) -> None:
    # Same content, different bytes: a duplicate key could show one value to a reader and
    # another to the verifier, so only the exact written form is accepted.
    write_events(log_path, 2)
    lines = read_lines(log_path)
    lines[0] = lines[0][:-1] + b',"actor":"agent"}'
    write_lines(log_path, lines)
    assert verify_audit_log(log_path).first_broken_line == 1


def test_a_truncated_tail_is_caught_with_a_key(log_path: Path) -> None:
    write_events(log_path, 4, key=KEY)
    write_lines(log_path, read_lines(log_path)[:3])

    result = verify_audit_log(log_path, key=KEY)
    assert (result.ok, result.first_broken_line) == (False, 4)
    assert "truncated" in (result.problem or "")


def test_without_a_key_a_truncated_tail_passes_with_a_warning(log_path: Path) -> None:
    write_events(log_path, 4)
    write_lines(log_path, read_lines(log_path)[:3])
    result = verify_audit_log(log_path)
    assert result.ok
    assert any("cannot be detected" in w for w in result.warnings)


def test_a_half_written_last_line_is_caught(log_path: Path) -> None:
    write_events(log_path, 3, key=KEY)
    log_path.write_bytes(log_path.read_bytes()[:-20])
    result = verify_audit_log(log_path, key=KEY)
    assert (result.ok, result.first_broken_line) == (False, 3)


@pytest.mark.parametrize("label", ["sha256:", "hmac-sha256:"])
def test_a_chain_recomputed_without_the_key_is_caught(log_path: Path, label: str) -> None:
    write_events(log_path, 4, key=KEY)
    edit_line(log_path, 2, {"actor": "j.doe"})
    rechain_without_key(log_path, 2, label)
    assert verify_audit_log(log_path).first_broken_line != 2  # links alone look fine

    result = verify_audit_log(log_path, key=KEY)
    assert (result.ok, result.first_broken_line) == (False, 2)


def test_a_log_rewritten_entirely_without_the_key_is_caught(log_path: Path) -> None:
    write_events(log_path, 3, key=KEY)
    rechain_without_key(log_path, 1, "sha256:")
    result = verify_audit_log(log_path, key=KEY)
    assert (result.ok, result.first_broken_line) == (False, 1)
    assert "no HMAC" in (result.problem or "")


def test_a_line_deleted_and_rechained_without_renumbering_is_caught(log_path: Path) -> None:
    write_events(log_path, 4)
    lines = read_lines(log_path)
    write_lines(log_path, lines[:1] + lines[2:])
    rechain_without_key(log_path, 2, "sha256:")
    result = verify_audit_log(log_path)
    assert (result.ok, result.first_broken_line) == (False, 2)
    assert "sequence" in (result.problem or "")


def test_another_log_signed_with_the_same_key_is_caught(log_path: Path) -> None:
    write_events(log_path, 3, key=KEY)
    other = log_path.with_name("audit-archive.jsonl")
    AuditLog(other, key=KEY).append("case.outcome", outcome="failure", email_id="e-9")
    write_events(other, 3, key=KEY)
    log_path.write_bytes(other.read_bytes())  # four genuine lines, but not this log's

    result = verify_audit_log(log_path, key=KEY)
    assert (result.ok, result.first_broken_line) == (False, 3)


def test_the_wrong_key_fails_verification(log_path: Path) -> None:
    write_events(log_path, 2, key=KEY)
    result = verify_audit_log(log_path, key=b"another-key-0123456789abcdef")
    assert not result.ok


def test_a_keyed_log_checked_without_its_key_is_not_reported_ok(log_path: Path) -> None:
    write_events(log_path, 2, key=KEY)
    result = verify_audit_log(log_path)
    assert not result.ok
    assert "MEDIAVAULT_AUDIT_KEY" in (result.problem or "")


def test_an_altered_head_file_is_caught(log_path: Path) -> None:
    write_events(log_path, 4, key=KEY)
    write_lines(log_path, read_lines(log_path)[:2])
    head = json.loads(head_of(log_path).read_text())
    head.update(lines=2, last_hash=json.loads(read_lines(log_path)[1])["hash"])
    head_of(log_path).write_text(json.dumps(head))

    result = verify_audit_log(log_path, key=KEY)
    assert not result.ok
    assert "head" in (result.problem or "")


def test_a_deleted_head_file_is_caught_with_a_key(log_path: Path) -> None:
    write_events(log_path, 2, key=KEY)
    head_of(log_path).unlink()
    result = verify_audit_log(log_path, key=KEY)
    assert not result.ok
    assert "missing" in (result.problem or "")


def test_a_deleted_log_is_caught_when_its_head_remains(log_path: Path) -> None:
    write_events(log_path, 2, key=KEY)
    log_path.unlink()
    result = verify_audit_log(log_path, key=KEY)
    assert (result.ok, result.first_broken_line) == (False, 1)


def test_a_missing_log_without_a_head_is_ok_and_says_so(log_path: Path) -> None:
    result = verify_audit_log(log_path, key=KEY)
    assert (result.ok, result.lines_checked) == (True, 0)
    assert any("nothing has been recorded" in w for w in result.warnings)


def test_a_head_left_behind_by_an_interrupted_append_is_only_a_warning(log_path: Path) -> None:
    log = write_events(log_path, 2, key=KEY)
    stale_head = head_of(log_path).read_bytes()
    log.append("case.outcome", outcome="success")
    head_of(log_path).write_bytes(stale_head)  # as if the process died before the head update

    result = verify_audit_log(log_path, key=KEY)
    assert result.ok, result.problem
    assert any("lags 1 line" in w for w in result.warnings)
    log.append("case.outcome", outcome="success")
    assert verify_audit_log(log_path, key=KEY).warnings == ()


# -- refusing to write past the evidence -----------------------------------------------------


def test_appending_after_a_truncation_is_refused(log_path: Path) -> None:
    write_events(log_path, 4, key=KEY)
    write_lines(log_path, read_lines(log_path)[:3])
    truncated = log_path.read_bytes()

    with pytest.raises(AuditLogError, match="head records 4"):
        AuditLog(log_path, key=KEY).append("case.outcome", outcome="success")
    assert log_path.read_bytes() == truncated
    assert verify_audit_log(log_path, key=KEY).first_broken_line == 4


def test_appending_after_the_log_was_deleted_is_refused(log_path: Path) -> None:
    write_events(log_path, 2, key=KEY)
    log_path.unlink()
    with pytest.raises(AuditLogError):
        AuditLog(log_path, key=KEY).append("case.outcome", outcome="success")
    assert not log_path.exists()


@pytest.mark.parametrize(("writer", "appender"), [(KEY, None), (None, KEY)])
def test_a_log_is_keyed_from_its_first_line_or_never(
    log_path: Path, writer: bytes | None, appender: bytes | None
) -> None:
    write_events(log_path, 1, key=writer)
    with pytest.raises(AuditLogError, match="MEDIAVAULT_AUDIT_KEY"):
        AuditLog(log_path, key=appender).append("case.outcome", outcome="success")
    assert len(read_lines(log_path)) == 1


class FullDisk:
    """``os.write`` for the audit module that writes ``allowed`` bytes, then fails ENOSPC."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed
        self.real = os.write

    def __call__(self, fd: int, data: bytes | memoryview) -> int:
        if self.allowed <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = self.real(fd, bytes(data)[: self.allowed])
        self.allowed -= written
        return written


def tear_an_append(log: AuditLog, monkeypatch: pytest.MonkeyPatch, allowed: int = 40) -> None:
    """One append that a full disk interrupts after ``allowed`` bytes."""
    with monkeypatch.context() as full, pytest.raises(OSError, match="No space left"):
        full.setattr(audit_module.os, "write", FullDisk(allowed))
        log.append("case.outcome", outcome="success", event_id="torn-event")


@pytest.mark.parametrize("key", [None, KEY])
def test_a_write_a_full_disk_tore_is_moved_aside_and_the_log_continues(
    log_path: Path, monkeypatch: pytest.MonkeyPatch, key: bytes | None
) -> None:
    log = write_events(log_path, 3, key=key)
    tear_an_append(log, monkeypatch)
    torn = log_path.read_bytes()[-40:]
    intact = len(log_path.read_bytes()) - 40
    before = verify_audit_log(log_path, key=key)
    assert (before.ok, before.torn_tail, before.first_broken_line) == (False, True, 4)
    assert "torn: an interrupted write" in (before.problem or "")

    # The next writer (any process, any instance) recovers and goes on.
    event = AuditLog(log_path, key=key).append("case.outcome", outcome="success",
                                               event_id="torn-event")
    assert event is not None
    actions = [e.action for e in read_events(log_path)]
    assert actions == ["tool.execution"] * 3 + ["audit.recovered", "case.outcome"]
    kept = log_path.with_name(f"{log_path.name}.torn-{intact}")
    assert kept.read_bytes() == torn
    assert kept.stat().st_mode & 0o077 == 0
    after = verify_audit_log(log_path, key=key)
    assert after.ok and not after.torn_tail
    assert len(after.recovered) == 1 and kept.name in after.recovered[0]
    assert "recovered, not tampering" in after.summary


def test_recovery_on_start_needs_no_append(log_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = write_events(log_path, 2, key=KEY)
    tear_an_append(log, monkeypatch, allowed=7)
    recovered = AuditLog(log_path, key=KEY).recover_torn_tail()
    assert recovered is not None and recovered.action == "audit.recovered"
    assert recovered.details["torn_bytes"] == 7
    assert AuditLog(log_path, key=KEY).recover_torn_tail() is None  # nothing left to do
    assert verify_audit_log(log_path, key=KEY).ok


def test_a_recovery_event_the_full_disk_also_lost_is_written_on_the_next_start(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = write_events(log_path, 2)
    tear_an_append(log, monkeypatch)
    with monkeypatch.context() as full, pytest.raises(OSError):
        full.setattr(audit_module.os, "write", FullDisk(0))  # still full: no event fits
        AuditLog(log_path).recover_torn_tail()
    assert AuditLog(log_path).recover_torn_tail() is not None
    assert [e.action for e in read_events(log_path)][-1] == "audit.recovered"
    assert verify_audit_log(log_path).ok


def test_a_line_cut_after_it_was_recorded_is_tampering_not_a_tear(log_path: Path) -> None:
    write_events(log_path, 3, key=KEY)
    cut = log_path.read_bytes()[:-20]
    log_path.write_bytes(cut)
    with pytest.raises(AuditLogError, match="cut short after it was recorded"):
        AuditLog(log_path, key=KEY).append("case.outcome", outcome="success")
    assert log_path.read_bytes() == cut  # nothing moved, nothing written
    result = verify_audit_log(log_path, key=KEY)
    assert not result.ok and not result.torn_tail
    assert "cut short after it was recorded" in (result.problem or "")


def test_tampering_elsewhere_still_fails_after_a_recovery(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = write_events(log_path, 3, key=KEY)
    tear_an_append(log, monkeypatch)
    AuditLog(log_path, key=KEY).recover_torn_tail()
    edit_line(log_path, 2, {"actor": "j.doe"})
    result = verify_audit_log(log_path, key=KEY)
    assert (result.ok, result.first_broken_line) == (False, 2)


# -- concurrency -----------------------------------------------------------------------------


def test_concurrent_threads_keep_one_valid_chain(log_path: Path) -> None:
    shared = AuditLog(log_path, key=KEY)

    def work(worker: int) -> None:
        # Two workers share an instance, two open their own, as nodes in one process might.
        log = shared if worker < 2 else AuditLog(log_path, key=KEY)
        for n in range(10):
            log.append("tool.execution", outcome="success", event_id=f"w{worker}-{n}")

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    result = verify_audit_log(log_path, key=KEY)
    assert result.ok, result.problem
    assert result.lines_checked == 40
    assert {e.event_id for e in read_events(log_path)} == {
        f"w{w}-{n}" for w in range(4) for n in range(10)
    }


def append_from_process(path: str, worker: int) -> None:
    log = AuditLog(Path(path), key=KEY)
    for n in range(15):
        log.append("tool.execution", outcome="success", event_id=f"p{worker}-{n}")


def test_concurrent_processes_keep_one_valid_chain(log_path: Path) -> None:
    context = multiprocessing.get_context("fork")  # fcntl already ties the log to POSIX
    processes = [
        context.Process(target=append_from_process, args=(str(log_path), worker))
        for worker in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [p.exitcode for p in processes] == [0, 0]

    result = verify_audit_log(log_path, key=KEY)
    assert result.ok, result.problem
    assert result.lines_checked == 30
    assert len({e.event_id for e in read_events(log_path)}) == 30


# -- configuration ---------------------------------------------------------------------------


def test_audit_key_comes_from_the_environment() -> None:
    assert audit_key_from_env({}) is None
    assert audit_key_from_env({"MEDIAVAULT_AUDIT_KEY": ""}) is None
    assert audit_key_from_env({"MEDIAVAULT_AUDIT_KEY": "k" * 32}) == b"k" * 32
    with pytest.raises(ConfigurationError, match="at least 16"):
        audit_key_from_env({"MEDIAVAULT_AUDIT_KEY": "secret"})
