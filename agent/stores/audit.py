"""The tamper-evident audit log: append-only JSON Lines with a SHA-256 hash chain.

One line per event: every approval-gate verdict, tool execution, model call, human review
decision and final outcome. Lines follow the Elastic Common Schema shape that SIEMs ingest::

    {"@timestamp": "2026-03-02T10:15:30.123Z",
     "event": {"id": "...", "action": "tool.execution", "outcome": "success", "sequence": 7},
     "reason": null, "thread_id": "...", "email_id": "...", "tool_call_id": "...",
     "actor": "agent", "details": {"args_digest": "sha256:...", "row_count": 3},
     "prev_hash": "sha256:...", "hash": "sha256:..."}

Integrity:

- ``hash`` covers the canonical JSON of the line without ``hash`` (so it includes
  ``prev_hash``); the first line's ``prev_hash`` is :data:`GENESIS_HASH`. Editing, deleting or
  reordering lines breaks the chain at the first affected line.
- Without a key the hash is plain SHA-256: anyone who edits a line can recompute every later
  hash, and cutting lines off the end leaves a valid chain. Verification says so.
- With a key (``MEDIAVAULT_AUDIT_KEY``) every hash is an HMAC-SHA256, so a recomputed chain is
  detected, and a keyed sidecar ``<log>.head`` (line count, last hash, HMAC; replaced atomically
  on every append) makes a truncated tail detectable. Replacing the head by an *older* genuine
  head together with the matching truncation is not detectable locally: ship events or heads
  to another system when that matters.

Privacy: the log never stores email bodies, query results or other bulky payloads. ``details``
keeps only scalars, strings of at most 200 characters and lists of at most 20 such scalars;
anything else (a longer string, a dict, a row list) is replaced by its :func:`digest`, which
lets an auditor match a value they already hold without the log keeping it. A digest is not
encryption: short values from a small set (an e-mail address) can be guessed, so do not put
them in ``details`` at all. All strings are JSON-escaped with ASCII output, so a CR/LF (or a
Unicode line separator) in a subject can never split or forge a line.

Appends from several threads and processes are serialised with ``fcntl.flock`` on
``<log>.lock`` (a local file system is required; ``flock`` is unreliable on some NFS mounts).
A last line torn by an interrupted append (a full disk, a crash mid-write) is not evidence of
anything: the next writer moves its bytes aside to ``<log>.torn-<offset>``, cuts the log back
to its last complete line and chains an ``audit.recovered`` event recording the move (see
:meth:`AuditLog.recover_torn_tail`); the verifier reports such recoveries apart from tampering.
When the log cannot be extended safely (a damaged line, a keyed head that records more lines
than the file holds, including a last line cut after the head counted it, a key mismatch)
:meth:`AuditLog.append` raises :class:`AuditLogError` rather than writing past the evidence:
an operator runs the verifier and moves the log *and* its ``.head`` file aside to start a new
one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import math
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal, TypedDict, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mediavault.graph.context import ConfigurationError
from mediavault.tools.fingerprint import digest

AUDIT_KEY_ENV = "MEDIAVAULT_AUDIT_KEY"
#: Keys shorter than this give a false sense of protection; refuse them.
MIN_KEY_BYTES = 16
GENESIS_HASH = "sha256:" + "0" * 64
HEAD_FORMAT = "mediavault-audit-head/1"

#: ``details`` limits; see the module docstring for why they exist.
MAX_DETAIL_STRING = 200
MAX_DETAIL_LIST = 20
MAX_DETAIL_KEYS = 32
MAX_DETAIL_KEY_LENGTH = 64
#: Identifiers and the actor follow the same rule as detail strings; a reason may be longer.
MAX_ID_LENGTH = 200
MAX_REASON_LENGTH = 500
MAX_ACTION_LENGTH = 100

_PLAIN_PREFIX = "sha256:"
_KEYED_PREFIX = "hmac-sha256:"

Outcome = Literal["success", "failure", "unknown"]
_OUTCOMES: frozenset[str] = frozenset(get_args(Outcome))

DetailScalar = str | int | float | bool | None
DetailValue = DetailScalar | list[DetailScalar]


class AuditAction(StrEnum):
    """Event names used by the agent, with the ``details`` keys each one usually carries."""

    #: verdict ("allow" | "deny" | "review"), tool, args_digest
    GATE_VERDICT = "gate.verdict"
    #: tool, args_digest, row_count, duration_ms
    TOOL_EXECUTION = "tool.execution"
    #: model, input_tokens, output_tokens, total_tokens (when reported), duration_ms
    MODEL_CALL = "model.call"
    #: decision ("approve" | "edit" | "reject" | "respond"), tool, args_digest
    HUMAN_DECISION = "review.decision"
    #: route, reason_code
    CASE_OUTCOME = "case.outcome"


#: The event chained on when a torn last line was moved aside (see ``recover_torn_tail``).
RECOVERY_ACTION = "audit.recovered"


class AuditLogError(RuntimeError):
    """The audit log cannot be read or extended safely; the message says why and what to do."""


def audit_key_from_env(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The HMAC key from ``MEDIAVAULT_AUDIT_KEY`` (UTF-8 bytes), or ``None`` when unset.

    Raises :class:`~graph.context.ConfigurationError` for a key shorter than 16 bytes.
    """
    value = (os.environ if environ is None else environ).get(AUDIT_KEY_ENV, "")
    if not value:
        return None
    key = value.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigurationError(
            f"{AUDIT_KEY_ENV} is {len(key)} bytes long; use at least {MIN_KEY_BYTES} random "
            'bytes, e.g. the output of `python -c "import secrets; print(secrets.token_hex(32))"`'
        )
    return key


def _canonical(record: Mapping[str, object]) -> bytes:
    # ASCII output escapes CR, LF, U+2028 and friends: one event is always one physical line.
    text = json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return text.encode("ascii")


def _chain_hash(record: Mapping[str, object], key: bytes | None) -> str:
    payload = _canonical({k: v for k, v in record.items() if k != "hash"})
    if key is None:
        return _PLAIN_PREFIX + hashlib.sha256(payload).hexdigest()
    return _KEYED_PREFIX + hmac.new(key, payload, hashlib.sha256).hexdigest()


def _plain_str(value: str) -> str:
    # StrEnum members and other str subclasses become plain strings, as JSON would write them.
    return str.__str__(value)


def _safe_scalar(value: object) -> DetailValue:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(value)
    if isinstance(value, str):
        text = _plain_str(value)
        return text if len(text) <= MAX_DETAIL_STRING else digest(text)
    return digest(value)


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _safe_detail(value: object) -> DetailValue:
    if not isinstance(value, list | tuple):
        return _safe_scalar(value)
    if len(value) <= MAX_DETAIL_LIST and all(_is_scalar(item) for item in value):
        items: list[DetailScalar] = []
        for item in value:
            safe = _safe_scalar(item)
            assert not isinstance(safe, list)  # scalars were checked just above
            items.append(safe)
        return items
    # A long or nested list is a result set or a payload: keep only its fingerprint.
    return digest(list(value))


def _safe_details(details: Mapping[str, object] | None) -> dict[str, DetailValue]:
    if not details:
        return {}
    if len(details) > MAX_DETAIL_KEYS:
        raise ValueError(f"audit details have {len(details)} keys; at most {MAX_DETAIL_KEYS}")
    safe: dict[str, DetailValue] = {}
    for name, value in details.items():
        if not isinstance(name, str) or not name or len(name) > MAX_DETAIL_KEY_LENGTH:
            raise ValueError(f"audit detail key {name!r} must be a string of 1-64 characters")
        safe[_plain_str(name)] = _safe_detail(value)
    return safe


def _safe_text(value: str | None, what: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"audit {what} must be a string, not {type(value).__name__}")
    text = _plain_str(value)
    return text if len(text) <= limit else digest(text)


def _format_timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("the audit clock returned a naive datetime; return an aware one")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AuditEvent(BaseModel):
    """One audit line, with flat attribute access (``event.action``, ``event.outcome``...)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    timestamp: datetime
    action: str = Field(min_length=1)
    outcome: Outcome
    event_id: str = Field(min_length=1)
    sequence: int = Field(ge=1)
    reason: str | None
    thread_id: str | None
    email_id: str | None
    tool_call_id: str | None
    actor: str = Field(min_length=1)
    details: dict[str, DetailValue]
    prev_hash: str
    hash: str

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> AuditEvent:
        """Parse one decoded log line; raises ``ValueError`` when it is not an audit event."""
        expected = {
            "@timestamp",
            "event",
            "reason",
            "thread_id",
            "email_id",
            "tool_call_id",
            "actor",
            "details",
            "prev_hash",
            "hash",
        }
        if set(record) != expected:
            raise ValueError(f"fields {sorted(set(record) ^ expected)} are missing or unexpected")
        event = record["event"]
        if not isinstance(event, dict) or set(event) != {"id", "action", "outcome", "sequence"}:
            raise ValueError("`event` must hold exactly id, action, outcome and sequence")
        stamp = record["@timestamp"]
        if not isinstance(stamp, str):
            raise ValueError("`@timestamp` must be a string")
        moment = datetime.fromisoformat(stamp)
        if moment.tzinfo is None:
            raise ValueError("`@timestamp` has no time zone")
        flat = {name: record[name] for name in expected - {"@timestamp", "event"}}
        try:
            return cls.model_validate(
                {
                    **flat,
                    "timestamp": moment,
                    "action": event["action"],
                    "outcome": event["outcome"],
                    "event_id": event["id"],
                    "sequence": event["sequence"],
                }
            )
        except ValidationError as exc:
            raise ValueError(str(exc)) from None

    def to_record(self) -> dict[str, object]:
        """The ECS-shaped dict written to the log (and hashed)."""
        return {
            "@timestamp": _format_timestamp(self.timestamp),
            "event": {
                "id": self.event_id,
                "action": self.action,
                "outcome": self.outcome,
                "sequence": self.sequence,
            },
            "reason": self.reason,
            "thread_id": self.thread_id,
            "email_id": self.email_id,
            "tool_call_id": self.tool_call_id,
            "actor": self.actor,
            "details": {k: list(v) if isinstance(v, list) else v for k, v in self.details.items()},
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class AuditVerification:
    """The verdict of :func:`verify_audit_log`.

    ``lines_checked`` counts the lines examined (up to and including a broken one);
    ``first_broken_line`` is 1-based, or ``None`` when the problem is not tied to one line
    (a missing or altered head file, a keyed log checked without its key).
    """

    ok: bool
    lines_checked: int
    first_broken_line: int | None
    problem: str | None
    keyed: bool
    warnings: tuple[str, ...] = field(default_factory=tuple)
    #: Interrupted writes that were recovered (the torn bytes moved aside, see
    #: ``AuditLog.recover_torn_tail``): the chain holds, and this is not tampering.
    recovered: tuple[str, ...] = field(default_factory=tuple)
    #: The last line is torn and not yet recovered (an interrupted write, or a truncation).
    torn_tail: bool = False

    @property
    def summary(self) -> str:
        """One line for people: what was checked and whether it holds."""
        mode = "HMAC-SHA256" if self.keyed else "SHA-256, no key"
        if self.ok:
            tears = (f"; {len(self.recovered)} interrupted write(s) recovered, not tampering: "
                     + "; ".join(self.recovered)) if self.recovered else ""
            return f"audit log OK: {self.lines_checked} lines, chain intact ({mode}){tears}"
        where = f" at line {self.first_broken_line}" if self.first_broken_line else ""
        return f"audit log BROKEN{where}: {self.problem}"


@dataclass(frozen=True)
class _Head:
    lines: int
    last_hash: str
    mac: str


def _head_mac(key: bytes, lines: int, last_hash: str) -> str:
    payload = _canonical({"format": HEAD_FORMAT, "lines": lines, "last_hash": last_hash})
    return _KEYED_PREFIX + hmac.new(key, payload, hashlib.sha256).hexdigest()


def _head_path(path: Path) -> Path:
    return path.with_name(path.name + ".head")


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _read_head(path: Path, key: bytes | None) -> _Head | None:
    """The head sidecar, or ``None`` when absent; raises ``ValueError`` when altered."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        raise ValueError(f"head file {path} is not valid JSON") from None
    if (
        not isinstance(data, dict)
        or data.get("format") != HEAD_FORMAT
        or type(data.get("lines")) is not int
        or not isinstance(data.get("last_hash"), str)
        or not isinstance(data.get("mac"), str)
    ):
        raise ValueError(f"head file {path} does not have the expected fields")
    head = _Head(lines=data["lines"], last_hash=data["last_hash"], mac=data["mac"])
    if key is not None and not hmac.compare_digest(
        head.mac, _head_mac(key, head.lines, head.last_hash)
    ):
        raise ValueError(f"head file {path} was altered (its HMAC does not match)")
    return head


def _decode_line(raw: bytes) -> dict[str, object]:
    def refuse_constant(name: str) -> object:
        raise ValueError(f"{name} is not valid JSON")

    record = json.loads(raw, parse_constant=refuse_constant)
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    return record


def _split_lines(data: bytes) -> list[bytes]:
    """Lines of ``data``; a last line without its line end is kept (and flagged by callers)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


@contextmanager
def _flock(path: Path, mode: int, *, create: bool) -> Iterator[None]:
    flags = os.O_RDWR | os.O_CREAT if create else os.O_RDONLY
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        # Nobody has ever appended, so nobody can be appending now.
        yield
        return
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class PendingAuditEvent(TypedDict):
    """An event checked and stamped by :meth:`AuditLog.prepare`, not yet chained or written."""

    timestamp: str
    event_id: str
    action: str
    outcome: str
    reason: str | None
    thread_id: str | None
    email_id: str | None
    tool_call_id: str | None
    actor: str
    details: dict[str, DetailValue]


_PENDING_KEYS = frozenset(PendingAuditEvent.__annotations__)


def _as_str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string in a prepared audit event, got {type(value).__name__}")
    return value


def _as_optional_str(value: object) -> str | None:
    return None if value is None else _as_str(value)


class AuditLog:
    """An append-only, hash-chained audit log at ``path`` (nothing is created until an append).

    ``key`` turns the chain into HMAC-SHA256 and maintains the ``<log>.head`` sidecar; a log
    is either keyed from its first line or never. ``clock`` is a seam for tests.
    """

    def __init__(
        self,
        path: Path,
        *,
        key: bytes | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if key is not None and (not isinstance(key, bytes) or not key):
            raise ValueError("the audit key must be non-empty bytes")
        self.path = Path(path)
        self.head_path = _head_path(self.path)
        self._key = key
        self._clock = clock
        self._thread_lock = threading.Lock()
        # What this instance has read of the file so far; refreshed from the tail on append.
        self._file_id: tuple[int, int] | None = None
        self._offset = 0
        self._count = 0
        self._last_hash = GENESIS_HASH
        self._event_ids: set[str] = set()

    @property
    def keyed(self) -> bool:
        return self._key is not None

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r}, keyed={self.keyed})"

    def prepare(
        self,
        action: str,
        *,
        outcome: str,
        reason: str | None = None,
        thread_id: str | None = None,
        email_id: str | None = None,
        tool_call_id: str | None = None,
        actor: str = "agent",
        details: Mapping[str, object] | None = None,
        event_id: str | None = None,
    ) -> PendingAuditEvent:
        """Validate and minimise one event now, to be written later by :meth:`append_prepared`.

        The result is a plain JSON-safe dict stamped with the current time, so it can travel
        in a checkpoint (see ``graph.audit_trail``) until the run reaches a point where it is
        written. The arguments are those of :meth:`append`.
        """
        if not isinstance(action, str) or not action.strip() or len(action) > MAX_ACTION_LENGTH:
            raise ValueError(f"audit action must be 1-{MAX_ACTION_LENGTH} characters: {action!r}")
        if outcome not in _OUTCOMES:
            raise ValueError(f"audit outcome must be one of {sorted(_OUTCOMES)}: {outcome!r}")
        if not isinstance(actor, str) or not actor.strip():
            raise ValueError("audit actor must be a non-empty string")
        return {
            "timestamp": _format_timestamp(self._clock()),
            # A long key is digested, which keeps it deterministic and therefore idempotent.
            "event_id": _safe_text(event_id, "event_id", MAX_ID_LENGTH) or uuid.uuid4().hex,
            "action": _plain_str(action),
            "outcome": outcome,
            "reason": _safe_text(reason, "reason", MAX_REASON_LENGTH),
            "thread_id": _safe_text(thread_id, "thread_id", MAX_ID_LENGTH),
            "email_id": _safe_text(email_id, "email_id", MAX_ID_LENGTH),
            "tool_call_id": _safe_text(tool_call_id, "tool_call_id", MAX_ID_LENGTH),
            "actor": _safe_text(actor, "actor", MAX_ID_LENGTH) or "",
            "details": _safe_details(details),
        }

    def append(
        self,
        action: str,
        *,
        outcome: str,
        reason: str | None = None,
        thread_id: str | None = None,
        email_id: str | None = None,
        tool_call_id: str | None = None,
        actor: str = "agent",
        details: Mapping[str, object] | None = None,
        event_id: str | None = None,
    ) -> AuditEvent | None:
        """Append one event and return it; ``None`` when ``event_id`` is already logged.

        ``event_id`` is an idempotency key: nodes that re-run on resume pass a stable id
        (e.g. built from thread id, tool call id and action) so the event is written once.
        ``details`` are minimised as described in the module docstring. Raises
        :class:`AuditLogError` when the existing log cannot be extended safely.
        """
        pending = self.prepare(
            action, outcome=outcome, reason=reason, thread_id=thread_id, email_id=email_id,
            tool_call_id=tool_call_id, actor=actor, details=details, event_id=event_id,
        )
        written = self.append_prepared([pending])
        return written[0] if written else None

    def append_prepared(self, events: Iterable[Mapping[str, object]]) -> list[AuditEvent]:
        """Append events from :meth:`prepare` in order, under one lock and with one fsync.

        Events whose id is already logged (or repeated in ``events``) are skipped, so writing
        the same batch twice, as a resumed run does, changes nothing. Events that came back
        from storage are checked again, so a doctored checkpoint cannot smuggle in an
        oversized or malformed line. Returns the events written.
        """
        checked = [self._recheck(event) for event in events]
        if not checked:
            return []
        with self._thread_lock, _flock(_lock_path(self._ensure_dir()), fcntl.LOCK_EX, create=True):
            recovered = self._sync_from_file()
            self._check_head()
            return self._append_locked([*recovered, *checked])

    def recover_torn_tail(self) -> AuditEvent | None:
        """Repair a log whose last line an interrupted write (a full disk, a crash) left torn.

        The torn bytes are moved aside to ``<log>.torn-<offset>`` (owner-only), the log is cut
        back to its last complete line and an ``audit.recovered`` event recording the move is
        chained on, so nothing is lost and the chain holds again. Appends do this by themselves;
        call it on start to have it done before any run. A tear the keyed head says was
        already recorded is tampering, not an interrupted append: that raises
        :class:`AuditLogError` and changes nothing. Returns the recovery event, if any.
        """
        if not self.path.exists():
            return None
        with self._thread_lock, _flock(_lock_path(self._ensure_dir()), fcntl.LOCK_EX, create=True):
            recovered = self._sync_from_file() or self._unrecorded_tears()
            self._check_head()
            written = self._append_locked(recovered) if recovered else []
        return written[0] if written else None

    def _append_locked(self, checked: list[PendingAuditEvent]) -> list[AuditEvent]:
        """Chain and write ``checked`` (both locks are held by the caller)."""
        written: list[AuditEvent] = []
        lines: list[bytes] = []
        count, last_hash, new_ids = self._count, self._last_hash, set[str]()
        for event in checked:
            if event["event_id"] in self._event_ids or event["event_id"] in new_ids:
                continue
            record: dict[str, object] = {
                "@timestamp": event["timestamp"],
                "event": {"id": event["event_id"], "action": event["action"],
                          "outcome": event["outcome"], "sequence": count + 1},
                "reason": event["reason"], "thread_id": event["thread_id"],
                "email_id": event["email_id"], "tool_call_id": event["tool_call_id"],
                "actor": event["actor"], "details": event["details"],
                "prev_hash": last_hash,
            }
            record["hash"] = _chain_hash(record, self._key)
            written.append(AuditEvent.from_record(record))
            lines.append(_canonical(record) + b"\n")
            count += 1
            last_hash = str(record["hash"])
            new_ids.add(event["event_id"])
        if not lines:
            return []
        data = b"".join(lines)
        self._write_lines(data)
        # Only now, with the lines on disk, does this instance move its view forward.
        self._offset += len(data)
        self._count, self._last_hash = count, last_hash
        self._event_ids |= new_ids
        if self._key is not None:
            self._write_head(self._key)
        return written

    def _recheck(self, event: Mapping[str, object]) -> PendingAuditEvent:
        if set(event) != _PENDING_KEYS:
            raise ValueError(f"not a prepared audit event: fields {sorted(event)}")
        stamp = event["timestamp"]
        if not isinstance(stamp, str) or len(stamp) > 40:
            raise ValueError("a prepared audit event needs its timestamp string")
        if datetime.fromisoformat(stamp).tzinfo is None:
            raise ValueError("a prepared audit event's timestamp has no time zone")
        details = event["details"]
        if not isinstance(details, Mapping):
            raise ValueError("a prepared audit event's details must be a mapping")
        pending = self.prepare(
            _as_str(event["action"]), outcome=_as_str(event["outcome"]),
            reason=_as_optional_str(event["reason"]),
            thread_id=_as_optional_str(event["thread_id"]),
            email_id=_as_optional_str(event["email_id"]),
            tool_call_id=_as_optional_str(event["tool_call_id"]),
            actor=_as_str(event["actor"]), details=details,
            event_id=_as_str(event["event_id"]),
        )
        pending["timestamp"] = stamp
        return pending

    def verify(self) -> AuditVerification:
        """Verify this log with this instance's key."""
        return verify_audit_log(self.path, key=self._key)

    # -- internals (all called with both locks held) --------------------------------------

    def _ensure_dir(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self.path

    def _reset(self) -> None:
        self._file_id = None
        self._offset = 0
        self._count = 0
        self._last_hash = GENESIS_HASH
        self._event_ids = set()

    def _sync_from_file(self) -> list[PendingAuditEvent]:
        """Read what other writers appended since this instance last looked.

        Returns the recovery event to chain on when a torn last line was moved aside.
        """
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            self._reset()
            return []
        with handle:
            st = os.fstat(handle.fileno())
            file_id = (st.st_dev, st.st_ino)
            if file_id != self._file_id or st.st_size < self._offset:
                # First look, or the file was replaced or shortened: index it from the start.
                self._reset()
                self._file_id = file_id
            handle.seek(self._offset)
            data = handle.read()
        if not data:
            return []
        torn = b""
        if not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            data, torn = data[:cut], data[cut:]
        for raw in _split_lines(data):
            line_no = self._count + 1
            try:
                record = _decode_line(raw)
                event = record.get("event")
                eid = event.get("id") if isinstance(event, dict) else None
                last_hash = record.get("hash")
            except ValueError:
                eid = last_hash = None
            if not isinstance(eid, str) or not isinstance(last_hash, str):
                self._reset()  # never keep a half-read index: the next call starts over
                raise AuditLogError(
                    f"{self.path} line {line_no} is not a valid audit event; run the audit "
                    "verifier and move the log aside"
                )
            self._event_ids.add(eid)
            self._last_hash = last_hash
            self._count = line_no
        self._offset += len(data)
        expected_prefix = _PLAIN_PREFIX if self._key is None else _KEYED_PREFIX
        if self._count and not self._last_hash.startswith(expected_prefix):
            raise AuditLogError(
                f"{self.path} was written {'with' if self._key is None else 'without'} an audit "
                f"key; set {AUDIT_KEY_ENV} the same way or start a new log"
            )
        return [self._set_torn_tail_aside(torn)] if torn else []

    def _set_torn_tail_aside(self, torn: bytes) -> PendingAuditEvent:
        """Move a torn last line out of the log (see :meth:`recover_torn_tail`)."""
        if self._key is not None:
            head = None
            with contextlib.suppress(ValueError):  # an altered head is reported by _check_head
                head = _read_head(self.head_path, self._key)
            if head is not None and head.lines > self._count:
                raise AuditLogError(
                    f"{self.path} line {self._count + 1} was cut short after it was recorded "
                    "(the head counts it): not an interrupted write; run the audit verifier"
                )
        aside = self.path.with_name(f"{self.path.name}.torn-{self._offset}")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(torn)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.ftruncate(fd, self._offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        return self._recovery_event(torn, self._offset, aside, line=self._count + 1)

    def _recovery_event(
        self, torn: bytes, offset: int, aside: Path, *, line: int | None
    ) -> PendingAuditEvent:
        digest_hex = hashlib.sha256(torn).hexdigest()
        return self.prepare(
            RECOVERY_ACTION, outcome="success", actor="system",
            reason="the last line was torn by an interrupted write (a full disk, a crash); "
                   "its bytes were moved aside and the log continues",
            details={"torn_line": line, "torn_bytes": len(torn), "torn_sha256": digest_hex,
                     "kept_in": aside.name},
            event_id=f"audit-recovered:{offset}:{digest_hex[:16]}",
        )

    def _unrecorded_tears(self) -> list[PendingAuditEvent]:
        """Recovery events for torn lines moved aside whose event never made it to the log
        (the disk was still full when it was written)."""
        events = []
        for aside in sorted(self.path.parent.glob(f"{self.path.name}.torn-*")):
            offset = aside.name.rpartition("-")[2]
            if not offset.isdigit() or not aside.is_file():
                continue
            torn = aside.read_bytes()
            event = self._recovery_event(torn, int(offset), aside, line=None)
            if event["event_id"] not in self._event_ids:
                events.append(event)
        return events

    def _check_head(self) -> None:
        # Appending after a truncation would rewrite the head and erase the evidence.
        if self._key is None:
            return
        try:
            head = _read_head(self.head_path, self._key)
        except ValueError as exc:
            raise AuditLogError(f"{exc}; run the audit verifier") from None
        if head is None:
            if self._count:
                raise AuditLogError(
                    f"{self.head_path} is missing although {self.path} has {self._count} "
                    "lines; run the audit verifier"
                )
            return
        if head.lines > self._count or (
            head.lines == self._count and head.last_hash != self._last_hash
        ):
            raise AuditLogError(
                f"{self.path} has {self._count} lines but its head records {head.lines}: "
                "lines were removed or replaced; run the audit verifier"
            )

    def _write_lines(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            if self._file_id is None:
                st = os.fstat(fd)
                self._file_id = (st.st_dev, st.st_ino)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write_head(self, key: bytes) -> None:
        head = {
            "format": HEAD_FORMAT,
            "lines": self._count,
            "last_hash": self._last_hash,
            "mac": _head_mac(key, self._count, self._last_hash),
        }
        tmp = self.head_path.with_name(self.head_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, _canonical(head) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.head_path)


def _check_line(
    raw: bytes, line_no: int, prev_hash: str, key: bytes | None
) -> tuple[str | None, str]:
    """``(problem, hash)`` for one line; ``problem`` is ``None`` when the line holds."""
    if not raw.strip():
        return f"line {line_no} is empty", ""
    try:
        record = _decode_line(raw)
    except ValueError as exc:
        return f"line {line_no} is not valid JSON ({exc})", ""
    if _canonical(record) != raw:
        return f"line {line_no} is not in the form the log writes (edited by hand?)", ""
    try:
        event = AuditEvent.from_record(record)
    except ValueError as exc:
        return f"line {line_no} is not an audit event: {exc}", ""
    stored = event.hash
    if key is not None:
        if not stored.startswith(_KEYED_PREFIX):
            return (
                f"line {line_no} carries no HMAC but the log is verified with a key: "
                "it was written without the key, or rewritten by someone who lacks it",
                stored,
            )
        if not hmac.compare_digest(stored, _chain_hash(record, key)):
            return (
                f"line {line_no} was altered: its HMAC does not match its content "
                "(or the key is wrong)",
                stored,
            )
    elif stored.startswith(_PLAIN_PREFIX) and stored != _chain_hash(record, None):
        return f"line {line_no} was altered: its hash does not match its content", stored
    elif not stored.startswith((_PLAIN_PREFIX, _KEYED_PREFIX)):
        return f"line {line_no} has an unknown hash format", stored
    if event.prev_hash != prev_hash:
        return (
            f"line {line_no} does not follow line {line_no - 1}: lines were deleted, inserted "
            "or reordered",
            stored,
        )
    if event.sequence != line_no:
        return f"line {line_no} carries sequence number {event.sequence}", stored
    return None, stored


def verify_audit_log(path: Path, *, key: bytes | None = None) -> AuditVerification:
    """Check the hash chain of the audit log at ``path`` (and its head sidecar).

    Detects edited, deleted, inserted, reordered and malformed lines. With ``key`` it also
    detects a chain recomputed after an edit and a truncated tail; without one it says so in
    ``warnings``. A missing log is OK with 0 lines unless a head file records events.
    """
    path = Path(path)
    keyed = key is not None
    warnings: list[str] = []
    if not keyed:
        warnings.append(
            "no key given: a chain recomputed after an edit and a truncated tail cannot be "
            f"detected (set {AUDIT_KEY_ENV} when writing and verifying)"
        )

    def broken(problem: str, line: int | None, checked: int) -> AuditVerification:
        return AuditVerification(False, checked, line, problem, keyed, tuple(warnings))

    # Shared lock: no append is half done while we read. The head is read first so that an
    # append between the two reads looks like a lagging head, never like a truncation.
    with _flock(_lock_path(path), fcntl.LOCK_SH, create=False):
        try:
            head = _read_head(_head_path(path), key)
        except ValueError as exc:
            return broken(str(exc), None, 0)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = None

    if data is None:
        if head is not None and head.lines > 0:
            return broken(f"the log is missing but its head records {head.lines} lines", 1, 0)
        warnings.append(f"no audit log at {path}: nothing has been recorded yet")
        return AuditVerification(True, 0, None, None, keyed, tuple(warnings))

    lines = _split_lines(data)
    hashes: list[str] = []
    prev_hash = GENESIS_HASH
    keyed_log_without_key = False
    recovered: list[str] = []
    for line_no, raw in enumerate(lines, start=1):
        if line_no == len(lines) and not data.endswith(b"\n"):
            if head is not None and head.lines >= line_no:
                return broken(f"line {line_no} was cut short after it was recorded (the head "
                              "counts it): lines were truncated", line_no, line_no)
            return AuditVerification(
                False, line_no, line_no,
                f"line {line_no} is torn: an interrupted write (a full disk, a crash) left it "
                "incomplete. The lines before it hold; the next run moves its bytes aside and "
                "records the recovery (without a key a truncation looks the same)",
                keyed, tuple(warnings), torn_tail=True)
        problem, line_hash = _check_line(raw, line_no, prev_hash, key)
        if problem is not None:
            return broken(problem, line_no, line_no)
        note = _recovery_note(raw, path, line_no)
        if note is not None:
            recovered.append(note)
        keyed_log_without_key |= not keyed and line_hash.startswith(_KEYED_PREFIX)
        hashes.append(line_hash)
        prev_hash = line_hash
    count = len(hashes)

    if head is not None:
        if not keyed:
            warnings.append("the head file was compared but its HMAC was not checked (no key)")
        if head.lines > count:
            return broken(
                f"the head records {head.lines} lines but the log has {count}: the tail was "
                "truncated",
                count + 1,
                count,
            )
        if head.lines > 0 and hashes[head.lines - 1] != head.last_hash:
            return broken(
                f"line {head.lines} is not the line the head records: lines were replaced",
                head.lines,
                count,
            )
        if head.lines < count:
            warnings.append(
                f"the head lags {count - head.lines} line(s) behind the log (an append was "
                "interrupted); the next append brings it up to date"
            )
    elif keyed and count:
        return broken(
            f"the head file {_head_path(path)} is missing: tail truncation cannot be ruled out",
            None,
            count,
        )
    if keyed_log_without_key:
        return broken(
            f"the log is keyed (HMAC-SHA256): only its links were checked; verify it with the "
            f"key ({AUDIT_KEY_ENV})",
            None,
            count,
        )
    return AuditVerification(True, count, None, None, keyed, tuple(warnings), tuple(recovered))


def _recovery_note(raw: bytes, path: Path, line_no: int) -> str | None:
    """What a recovery line says, checked against the bytes it kept aside; None otherwise."""
    if b'"audit.recovered"' not in raw:
        return None
    event = AuditEvent.from_record(_decode_line(raw))
    if event.action != RECOVERY_ACTION or event.actor != "system":
        return None
    kept = str(event.details.get("kept_in") or "")
    size = event.details.get("torn_bytes")
    note = f"line {line_no}: {size} torn bytes moved to {kept}"
    try:
        torn = (path.parent / kept).read_bytes() if kept and "/" not in kept else None
    except OSError:
        torn = None
    if torn is None:
        return note + " (that file is missing)"
    if hashlib.sha256(torn).hexdigest() != event.details.get("torn_sha256"):
        return note + " (that file no longer matches the recorded digest)"
    return note


def read_events(
    path: Path, *, email_id: str | None = None, thread_id: str | None = None
) -> list[AuditEvent]:
    """The events in the log at ``path``, oldest first, optionally for one email or thread.

    A missing log reads as no events. This does not verify the chain (see
    :func:`verify_audit_log`); a line that is not an audit event raises :class:`AuditLogError`.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    events: list[AuditEvent] = []
    for line_no, raw in enumerate(_split_lines(data), start=1):
        try:
            event = AuditEvent.from_record(_decode_line(raw))
        except ValueError as exc:
            raise AuditLogError(f"{path} line {line_no} is not an audit event: {exc}") from None
        if email_id is not None and event.email_id != email_id:
            continue
        if thread_id is not None and event.thread_id != thread_id:
            continue
        events.append(event)
    return events
