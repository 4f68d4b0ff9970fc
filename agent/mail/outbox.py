"""The outbox: approved replies written as RFC 5322 ``.eml`` files for the mail transport.

A reply is written once per email id. Its file name and Message-ID are derived from the email
id, so a re-run finds the file already there and leaves it untouched instead of sending twice.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path

from mediavault.agent.stores.state_files import private_dir
from mediavault.tools.email_fields import split_sender

DEFAULT_FROM_ADDRESS = "support@mediavault.example"
_REPLY_PREFIX = re.compile(r"^\s*re\s*:", re.IGNORECASE)
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_MAX_NAME_CHARS = 60
#: A reply being written is ``.writing-<pid>-<random>.tmp`` until it is renamed into place.
_PARTIAL_PREFIX = ".writing-"
_PARTIAL_SUFFIX = ".tmp"
_PARTIAL_PID = re.compile(r"^\.writing-(\d+)-")
#: A partial file without a pid (older versions) is abandoned once it is this old: a write
#: takes milliseconds.
STALE_PARTIAL_SECONDS = 600.0


@dataclass(frozen=True)
class OutboxMessage:
    """Where a reply was written and the Message-ID it carries."""

    path: Path
    message_id: str


def _email_id_digest(email_id: str) -> str:
    return hashlib.sha256(email_id.encode("utf-8")).hexdigest()


def outbox_file_name(email_id: str) -> str:
    """A file name for the reply to ``email_id`` that is safe whatever the id contains.

    Only letters, digits, ``_`` and ``-`` survive (no dots, so no ``..``, no separators); a
    short hash of the full id keeps two ids that sanitise alike apart.
    """
    readable = _UNSAFE_NAME_CHARS.sub("_", email_id).strip("_-")[:_MAX_NAME_CHARS] or "email"
    return f"{readable}-{_email_id_digest(email_id)[:10]}.eml"


def reply_message_id(email_id: str, from_address: str = DEFAULT_FROM_ADDRESS) -> str:
    """The Message-ID of our reply to ``email_id``: the same on every run."""
    domain = from_address.rpartition("@")[2] or "mediavault.example"
    return f"<reply-{_email_id_digest(email_id)[:32]}@{domain}>"


def reply_subject(subject: str) -> str:
    """``Re: <subject>``, without stacking a second ``Re:``."""
    subject = _one_line(subject)
    if not subject:
        return "Re: your message to MediaVault Support"
    if _REPLY_PREFIX.match(subject):
        return subject
    return f"Re: {subject}"


def _one_line(value: str) -> str:
    # A CR or LF inside a header value would let an inbound email inject headers.
    return re.sub(r"[\r\n]+", " ", value).strip()


def _angle_id(message_id: str) -> str | None:
    text = _one_line(message_id).strip("<>").strip()
    return f"<{text}>" if text else None


def build_reply(
    *,
    email_id: str,
    to: str,
    subject: str,
    body: str,
    in_reply_to: str | None,
    from_address: str = DEFAULT_FROM_ADDRESS,
    date: datetime | None = None,
) -> EmailMessage:
    """The reply as an :class:`EmailMessage` (SMTP policy), not yet written anywhere."""
    to_name, to_address = split_sender(_one_line(to))
    from_name, from_addr = parseaddr(_one_line(from_address))
    split_sender(from_addr)  # raises on a malformed sending address
    when = date or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)

    message = EmailMessage(policy=SMTP)
    message["From"] = formataddr((from_name, from_addr))
    message["To"] = formataddr((to_name, to_address))
    message["Subject"] = reply_subject(subject)
    message["Date"] = format_datetime(when)
    message["Message-ID"] = reply_message_id(email_id, from_addr)
    original = _angle_id(in_reply_to) if in_reply_to else None
    if original:
        # Threading: mail clients group the reply with the customer's message.
        message["In-Reply-To"] = original
        message["References"] = original
    message.set_content(body if body.endswith("\n") else body + "\n")
    return message


def write_outbox_message(
    outbox_dir: Path,
    *,
    email_id: str,
    to: str,
    subject: str,
    body: str,
    in_reply_to: str | None,
    from_address: str = DEFAULT_FROM_ADDRESS,
    date: datetime | None = None,
) -> OutboxMessage:
    """Write the reply to ``email_id`` into ``outbox_dir`` as an ``.eml`` file.

    The file appears whole or not at all (temporary file, then ``os.replace``). If the reply
    for this email id is already in the outbox it is left untouched and returned as it is.
    Raises ValueError when ``to`` or ``from_address`` is not an e-mail address.
    """
    outbox_dir = Path(outbox_dir)
    path = outbox_dir / outbox_file_name(email_id)
    message = build_reply(
        email_id=email_id,
        to=to,
        subject=subject,
        body=body,
        in_reply_to=in_reply_to,
        from_address=from_address,
        date=date,
    )
    message_id = str(message["Message-ID"])
    if path.exists():
        return OutboxMessage(path=path, message_id=message_id)

    private_dir(outbox_dir, "outbox")  # replies quote customers' data: owner-only
    # The writer's pid in the name lets a later start tell a crashed write from a live one.
    descriptor, temporary = tempfile.mkstemp(
        dir=outbox_dir, prefix=f"{_PARTIAL_PREFIX}{os.getpid()}-", suffix=_PARTIAL_SUFFIX)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(message.as_bytes(policy=SMTP))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return OutboxMessage(path=path, message_id=message_id)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_abandoned_partial_replies(outbox_dir: Path) -> list[Path]:
    """Delete the partial reply files a killed writer left behind; returns what was removed.

    A reply is written to ``.writing-<pid>-*.tmp`` and renamed into place, so such a file whose
    writer is gone (a SIGKILL, a power cut) is never going to become a reply. Files of live
    writers, even in other processes on the same home, are left alone.
    """
    removed: list[Path] = []
    try:
        candidates = sorted(Path(outbox_dir).glob(f"{_PARTIAL_PREFIX}*{_PARTIAL_SUFFIX}"))
    except OSError:
        return removed
    now = datetime.now(UTC).timestamp()
    for path in candidates:
        match = _PARTIAL_PID.match(path.name)
        try:
            if match is not None:
                abandoned = not _alive(int(match.group(1)))
            else:
                abandoned = now - path.lstat().st_mtime > STALE_PARTIAL_SECONDS
            if abandoned and not path.is_symlink() and path.is_file():
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # renamed or removed meanwhile
            continue
    return removed


@dataclass(frozen=True)
class OutboxDirectory:
    """The outbox the graph writes approved replies to (its ``Outbox`` port): a directory."""

    path: Path

    def write_reply(
        self, *, email_id: str, to: str, subject: str, body: str, in_reply_to: str | None
    ) -> OutboxMessage:
        """Write the reply to ``email_id`` once (see :func:`write_outbox_message`)."""
        return write_outbox_message(self.path, email_id=email_id, to=to, subject=subject,
                                    body=body, in_reply_to=in_reply_to)
