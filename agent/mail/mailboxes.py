"""Inbox adapters for real mail: ``.eml`` files, mbox files, Maildir folders and CSV exports.

Every adapter turns what it reads into :class:`InboundEmail` models, or into one
:class:`InboxProblem` per email (or per file) it cannot use, so one bad message never sinks a
batch. Nothing here writes anywhere: a message that fails to read leaves no trace in any store.

Sender verification. A CSV export comes from the help desk, which already knows who wrote in, so
its senders are trusted unless the operator says otherwise. Raw mail proves nothing by its
``From`` header: a sender counts as verified only when the operator's own receiving server
(named in ``authserv_ids``) reports ``dmarc=pass`` for the From domain in an
``Authentication-Results`` header. Per RFC 8601 section 5, a header is believed only when its
authserv-id is one the operator configured: anyone can write such a header into a message, and
a receiving server that adds none leaves the sender's forgery on top. Without configured
servers, raw-mail senders are unverified. An unverified sender gets catalog answers only.

Text: ``text/plain`` is preferred, HTML is turned into text, attachments are listed by name in
the email's ``input_flags`` (``attachment:<name>``) and never read.
"""

from __future__ import annotations

import email.policy
import hashlib
import mailbox
import re
import stat
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from mediavault.agent.mail.csv_inbox import InboxFormatError, read_inbox_csv
from mediavault.agent.stores.state_files import describe_kind
from mediavault.graph.inbound_email import MAX_BODY_CHARS, InboundEmail
from mediavault.tools.email_fields import split_sender

InboxFormat = Literal["csv", "eml", "mbox", "maildir", "eml_folder"]

#: Why an email (or a whole file) was not triaged; the summary counts failures by these kinds.
FAILURE_KINDS: dict[str, str] = {
    "unreadable_file": "the file could not be read (permissions, an I/O error)",
    "bad_file": "the file is not an inbox (empty, unknown format, a broken CSV header)",
    "missing_column": "a CSV file lacks a required column, so none of its rows can be read",
    "malformed_row": "a CSV row that cannot be read (quoting, field count, date, address)",
    "malformed_message": "a mail message the parser cannot make sense of",
    "missing_sender": "no single usable From address",
    "empty_body": "no text to triage",
    "duplicate": "an email id already read earlier in this run",
    "triage_failed": "the triage run broke; the case is recorded as failed",
}
FailureKind = Literal[
    "unreadable_file", "bad_file", "missing_column", "malformed_row", "malformed_message",
    "missing_sender", "empty_body", "duplicate", "triage_failed",
]

#: HTML bodies longer than this are cut before conversion to text, which is slow on huge input.
MAX_HTML_CHARS = 10 * MAX_BODY_CHARS
HTML_TRUNCATION_NOTE = (
    "\n[... message truncated by MediaVault: an HTML body of {size} characters, "
    "only its start was read ...]"
)
#: Attachment names kept in input_flags; the rest are counted.
MAX_LISTED_ATTACHMENTS = 10
MAX_ATTACHMENT_NAME = 80
MAX_EMAIL_ID = 200

_MAIL_SUFFIXES: dict[str, InboxFormat] = {
    ".csv": "csv", ".eml": "eml", ".mbox": "mbox", ".mbx": "mbox",
}
_HEADER_LINE = re.compile(rb"^[A-Za-z0-9-]{1,76}:")
_MAIL_HEADERS = re.compile(
    rb"^(from|to|subject|date|message-id|received|return-path|mime-version|delivered-to):",
    re.I | re.M,
)
_PARSER = BytesParser(policy=email.policy.default)


class InboxPathError(ValueError):
    """A path given to the reader does not exist: the whole run is refused before it starts."""


@dataclass(frozen=True)
class InboxProblem:
    """One email (or file) that could not be read, with a one-line reason."""

    source: str
    kind: FailureKind
    message: str

    def line(self) -> str:
        return f"{self.source}: {self.kind}: {self.message}"


@dataclass(frozen=True)
class InboxItem:
    """One email read from an inbox, with where it came from (``file``, ``file:line``...)."""

    source: str
    email: InboundEmail


@dataclass(frozen=True)
class ReadOptions:
    """How far to trust the sender of what is read.

    ``trust_csv_senders``: CSV exports come from the help desk, which verified the sender.
    ``require_dmarc``: raw mail needs ``dmarc=pass``; off means every sender counts as verified
    (only for mail that a trusted gateway already filtered). ``authserv_ids``: the receiving
    servers whose Authentication-Results headers count; empty means none does, so every
    raw-mail sender is unverified.
    """

    trust_csv_senders: bool = True
    require_dmarc: bool = True
    authserv_ids: tuple[str, ...] = ()


class MailReadError(ValueError):
    """A message that cannot become an InboundEmail; ``kind`` is one of FAILURE_KINDS."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind: FailureKind = kind


# ------------------------------------------------------------------------------ formats


def detect_format(path: Path) -> InboxFormat | None:
    """The inbox format of ``path`` by its kind, suffix and first bytes; None when unknown."""
    if path.is_dir():
        return "maildir" if (path / "cur").is_dir() and (path / "new").is_dir() else "eml_folder"
    known = _MAIL_SUFFIXES.get(path.suffix.lower())
    if known is not None:
        return known
    with path.open("rb") as handle:
        head = handle.read(4096)
    if head.startswith(b"From "):
        return "mbox"
    if _HEADER_LINE.match(head) and _MAIL_HEADERS.search(head):
        return "eml"
    first_line = head.split(b"\n", 1)[0].lower()
    if b"email_id" in first_line and b"," in first_line:
        return "csv"
    return None


def read_inboxes(
    paths: Sequence[Path], options: ReadOptions | None = None
) -> Iterator[InboxItem | InboxProblem]:
    """Emails and problems from every path, in order, each email id once.

    Raises :class:`InboxPathError` before reading anything when a path does not exist.
    """
    options = options or ReadOptions()
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise InboxPathError(f"no such file or folder: {', '.join(missing)}")
    # A FIFO would block the read forever and /dev/zero would fill the memory.
    special = [f"{path} is {describe_kind(mode)}" for path in paths
               if not _is_file_or_folder(mode := path.stat().st_mode)]
    if special:
        raise InboxPathError(f"not a regular file or folder: {'; '.join(special)}")
    seen: dict[str, str] = {}
    for path in paths:
        for item in read_inbox(path, options):
            if isinstance(item, InboxItem):
                first = seen.get(item.email.email_id)
                if first is not None:
                    yield InboxProblem(item.source, "duplicate",
                                       f"email id {_shown(item.email.email_id)} was already "
                                       f"read from {first}")
                    continue
                seen[item.email.email_id] = item.source
            yield item


def read_inbox(
    path: Path, options: ReadOptions | None = None
) -> Iterator[InboxItem | InboxProblem]:
    """Emails and problems from one path of any supported format."""
    options = options or ReadOptions()
    try:
        kind = detect_format(path)
    except OSError as error:
        yield InboxProblem(str(path), "unreadable_file", _os_reason(error))
        return
    if kind is None:
        yield InboxProblem(str(path), "bad_file",
                           "not a CSV inbox, .eml message, mbox file or Maildir folder")
        return
    readers = {"csv": _read_csv, "eml": _read_eml, "mbox": _read_mbox,
               "maildir": _read_maildir, "eml_folder": _read_eml_folder}
    try:
        yield from readers[kind](path, options)
    except OSError as error:
        yield InboxProblem(str(path), "unreadable_file", _os_reason(error))


def _os_reason(error: OSError) -> str:
    return f"cannot read: {error.strerror or type(error).__name__}"


def _read_csv(path: Path, options: ReadOptions) -> Iterator[InboxItem | InboxProblem]:
    try:
        result = read_inbox_csv(path)
    except InboxFormatError as error:
        text = _one_line(str(error)).removeprefix(f"{path}: ")
        yield InboxProblem(str(path),
                           "missing_column" if "missing required column" in text else "bad_file",
                           text)
        return
    for row_error in result.errors:
        yield InboxProblem(f"{path}:{row_error.row_number}", "malformed_row",
                           _one_line(row_error.reason))
    for inbound in result.emails:
        source = f"{path}[{inbound.email_id}]"
        if not inbound.body.strip():
            yield InboxProblem(source, "empty_body", "the body is empty: nothing to triage")
            continue
        if not options.trust_csv_senders:
            inbound = inbound.model_copy(update={"sender_verified": False})
        yield InboxItem(source, inbound)


def _read_eml(path: Path, options: ReadOptions) -> Iterator[InboxItem | InboxProblem]:
    yield _from_bytes(str(path), path.read_bytes(), options, fallback_time=_mtime(path))


def _is_file_or_folder(mode: int) -> bool:
    return stat.S_ISREG(mode) or stat.S_ISDIR(mode)


def _not_regular(path: Path) -> str | None:
    """Why ``path`` must not be opened (a FIFO, a device, a socket), or None for a file."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None  # gone or unreadable: the read itself reports it
    return None if stat.S_ISREG(mode) else f"{describe_kind(mode)}, not a regular file"


def _read_eml_folder(path: Path, options: ReadOptions) -> Iterator[InboxItem | InboxProblem]:
    files = sorted(p for p in path.iterdir()
                   if p.suffix.lower() == ".eml" and not p.is_dir())
    if not files:
        yield InboxProblem(str(path), "bad_file",
                           "a folder with neither cur/ and new/ (Maildir) nor .eml files")
    for file in files:
        if (refused := _not_regular(file)) is not None:
            yield InboxProblem(str(file), "unreadable_file", refused)
            continue
        try:
            yield _from_bytes(str(file), file.read_bytes(), options, fallback_time=_mtime(file))
        except OSError as error:
            yield InboxProblem(str(file), "unreadable_file", _os_reason(error))


def _read_mbox(path: Path, options: ReadOptions) -> Iterator[InboxItem | InboxProblem]:
    box = mailbox.mbox(path, create=False)
    try:
        fallback = _mtime(path)
        for number, key in enumerate(box.iterkeys(), start=1):
            yield _from_bytes(f"{path}#{number}", box.get_bytes(key), options,
                              fallback_time=fallback)
    finally:
        box.close()


def _read_maildir(path: Path, options: ReadOptions) -> Iterator[InboxItem | InboxProblem]:
    box = mailbox.Maildir(path, factory=None, create=False)
    refused = {entry.name.split(box.colon)[0]: reason
               for sub in ("new", "cur") for entry in (path / sub).iterdir()
               if (reason := _not_regular(entry)) is not None}
    for key in sorted(box.iterkeys()):
        source = f"{path}:{key}"
        if key in refused:
            yield InboxProblem(source, "unreadable_file", refused[key])
            continue
        try:
            raw = box.get_bytes(key)
        except KeyError:  # delivered or moved by the mail server while we read
            continue
        except OSError as error:
            yield InboxProblem(source, "unreadable_file", _os_reason(error))
            continue
        yield _from_bytes(source, raw, options, fallback_time=_delivery_time(key))


def _delivery_time(key: str) -> datetime:
    # Maildir file names start with the delivery time in seconds since the epoch.
    stamp = key.split(".", 1)[0]
    return datetime.fromtimestamp(int(stamp), UTC) if stamp.isdigit() else datetime.now(UTC)


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


# ------------------------------------------------------------------------------ messages


def _from_bytes(
    source: str, raw: bytes, options: ReadOptions, *, fallback_time: datetime
) -> InboxItem | InboxProblem:
    try:
        return InboxItem(source, email_from_bytes(raw, options, fallback_time=fallback_time))
    except MailReadError as error:
        return InboxProblem(source, error.kind, _one_line(str(error)))


def email_from_bytes(
    raw: bytes, options: ReadOptions | None = None, *, fallback_time: datetime | None = None
) -> InboundEmail:
    """One RFC 5322 message as an InboundEmail; raises :class:`MailReadError` with a kind."""
    options = options or ReadOptions()
    if not raw.strip():
        raise MailReadError("malformed_message", "the message is empty")
    try:
        message = _PARSER.parsebytes(raw)
    except Exception as error:  # the parser is lenient; this is a last resort
        raise MailReadError("malformed_message", f"cannot parse: {error}") from None
    if not isinstance(message, EmailMessage):  # pragma: no cover - the policy guarantees it
        raise MailReadError("malformed_message", "cannot parse the message")
    try:
        return _to_inbound(message, raw, options, fallback_time or datetime.now(UTC))
    except MailReadError:
        raise
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "message"
        raise MailReadError("malformed_message", f"{where}: {first['msg']}") from None
    except (ValueError, TypeError, LookupError, AttributeError) as error:
        # Broken headers surface from the email package as assorted errors.
        raise MailReadError("malformed_message", f"cannot read the message: {error}") from None


def _to_inbound(
    message: EmailMessage, raw: bytes, options: ReadOptions, fallback_time: datetime
) -> InboundEmail:
    flags: list[str] = []
    name, address = _sender(message)
    name = _header_bytes_as_text(name, flags)
    subject = _header_text(message, "subject", flags)
    body = _body_text(message, flags)
    if not body.strip():
        raise MailReadError("empty_body", "the message has no text body: nothing to triage")
    received_at = _received_at(message, flags) or fallback_time
    message_id = _message_id(message)
    if message_id is None:
        flags.append("no_message_id")
        email_id = _derived_id(address, message, subject, body)
    elif len(message_id) > MAX_EMAIL_ID:
        email_id = "mid-" + hashlib.sha256(message_id.encode()).hexdigest()[:32]
    else:
        email_id = message_id
    in_reply_to = _message_id(message, "in-reply-to")
    flags.extend(_attachment_flags(message))
    verified = dmarc_passed(message, address, options.authserv_ids) or not options.require_dmarc
    if len(body) > MAX_BODY_CHARS:
        flags.append("truncated")
    return InboundEmail.model_validate({
        "email_id": email_id,
        "received_at": received_at,
        "from": address,
        "sender_name": name,
        "subject": subject,
        "body": body,
        "in_reply_to": in_reply_to,
        "message_id": message_id,
        "sender_verified": verified,
        "input_flags": tuple(dict.fromkeys(flags)),
    })


def _sender(message: EmailMessage) -> tuple[str, str]:
    values = message.get_all("from") or []
    if not values:
        raise MailReadError("missing_sender", "no From header")
    if len(values) > 1:
        raise MailReadError("missing_sender", f"{len(values)} From headers; exactly one is allowed")
    header = values[0]
    addresses: tuple[Any, ...] = tuple(getattr(header, "addresses", ()))
    if len(addresses) != 1:
        raise MailReadError("missing_sender",
                            f"From {_shown(str(header))} does not name exactly one address")
    addr_spec = str(addresses[0].addr_spec)
    if _has_raw_bytes(addr_spec):  # bytes that are not UTF-8 make no address anyone can answer
        raise MailReadError("missing_sender",
                            f"From {_shown(str(header))} has bytes that are not UTF-8 text")
    try:
        _, address = split_sender(addr_spec)
    except ValueError:
        raise MailReadError("missing_sender",
                            f"From {_shown(str(header))} is not an e-mail address") from None
    return _clean(str(addresses[0].display_name or "")), address


def _has_raw_bytes(text: str) -> bool:
    """Whether the parser left undecodable bytes in ``text`` (as lone surrogates)."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _header_text(message: EmailMessage, name: str, flags: list[str]) -> str:
    value = message.get(name)
    return _clean(_header_bytes_as_text("" if value is None else str(value), flags))


def _header_bytes_as_text(text: str, flags: list[str]) -> str:
    """Raw 8-bit header bytes (UTF-8 per RFC 6532, or not) as text; anything else is flagged.

    The parser hands such bytes over as lone surrogates or, in some headers, as U+FFFD.
    """
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        raw = text.encode("utf-8", "surrogateescape")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace")
    if "\ufffd" in text:
        flags.append("non_utf8")
    return text


def _body_text(message: EmailMessage, flags: list[str]) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    text = _decoded(part, flags).replace("\r\n", "\n").replace("\r", "\n")
    if part.get_content_subtype() != "html":
        return text  # the email model caps it, saying how much it dropped
    from mediavault.graph.safety.reader_text import html_to_text

    flags.append("html_body")
    if len(text) <= MAX_HTML_CHARS:
        return html_to_text(text)
    # Converting megabytes of HTML is slow and the model would drop most of it anyway.
    flags.append("truncated")
    note = HTML_TRUNCATION_NOTE.format(size=len(text))
    return html_to_text(text[:MAX_HTML_CHARS])[: MAX_BODY_CHARS - len(note)] + note


def _decoded(part: MIMEPart, flags: list[str]) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    declared = (part.get_content_charset() or "").strip().lower()
    # Mail that declares nothing (or plain ASCII) but carries 8-bit bytes is UTF-8 in practice.
    candidates = [declared] if declared not in ("", "us-ascii", "ascii") else []
    candidates.append("utf-8")
    for charset in candidates:
        try:
            return payload.decode(charset)
        except (UnicodeDecodeError, LookupError):
            continue
    flags.append("non_utf8")
    return payload.decode("utf-8", errors="replace")


def _received_at(message: EmailMessage, flags: list[str]) -> datetime | None:
    value = message.get("date")
    if value is None:
        flags.append("no_date")
        return None
    try:
        parsed = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        flags.append("no_date")
        return None
    # RFC 5322 "-0000" means "UTC, origin unknown"; the parser leaves such a date naive.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _message_id(message: EmailMessage, header: str = "message-id") -> str | None:
    value = message.get(header)
    if value is None:
        return None
    text = "".join(str(value).split())  # folded headers carry whitespace inside the id
    if header == "in-reply-to":
        # A reply names the message it answers first; later ids are older references.
        match = re.search(r"<([^<>]+)>", text)
        if match:
            text = match.group(1)
    text = text.strip().strip("<>").strip()
    text = "".join(ch for ch in text if ch.isprintable())
    return text or None


def _derived_id(address: str, message: EmailMessage, subject: str, body: str) -> str:
    # Stable across runs and copies of the message (an mbox and an .eml of the same mail),
    # which may differ in line endings and trailing blank lines.
    parts = [address, " ".join(str(message.get("date") or "").split()), subject,
             " ".join(body.split())]
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).hexdigest()
    return "noid-" + digest[:32]


def _attachment_flags(message: EmailMessage) -> list[str]:
    names: list[str] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        if disposition == "attachment" or (filename and disposition != "inline"):
            names.append(_clean(filename or "")[:MAX_ATTACHMENT_NAME] or "(unnamed)")
    flags = [f"attachment:{name}" for name in names[:MAX_LISTED_ATTACHMENTS]]
    if len(names) > MAX_LISTED_ATTACHMENTS:
        flags.append(f"attachments_not_listed:{len(names) - MAX_LISTED_ATTACHMENTS}")
    return flags


# ------------------------------------------------------------------------------ DMARC


def _strip_comments(text: str) -> str:
    """Authentication-Results without its (comments), which may nest and say anything."""
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
            continue
        if ch == "\\":
            escaped = True
            if depth == 0:
                out.append(ch)
            continue
        if ch == '"' and depth == 0:
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
            continue
        elif not quoted and ch == ")" and depth:
            depth -= 1
            continue
        if depth == 0:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class AuthenticationResults:
    """One parsed Authentication-Results header: who added it and the method results."""

    authserv_id: str
    results: tuple[tuple[str, str, dict[str, str]], ...]

    def dmarc(self) -> tuple[str, dict[str, str]] | None:
        for method, result, properties in self.results:
            if method == "dmarc":
                return result, properties
        return None


def parse_authentication_results(value: str) -> AuthenticationResults | None:
    """Parse an RFC 8601 Authentication-Results header value; None when it has no authserv-id."""
    clauses = [c.strip() for c in _strip_comments(value).split(";")]
    if not clauses or not clauses[0]:
        return None
    authserv_id = clauses[0].split()[0].lower()
    results: list[tuple[str, str, dict[str, str]]] = []
    for clause in clauses[1:]:
        tokens = clause.split()
        if not tokens or "=" not in tokens[0]:
            continue
        method, _, result = tokens[0].partition("=")
        properties: dict[str, str] = {}
        for token in tokens[1:]:
            key, sep, prop = token.partition("=")
            if sep:
                properties.setdefault(key.lower(), prop.strip('"').lower())
        results.append((method.split("/")[0].lower(), result.lower(), properties))
    return AuthenticationResults(authserv_id, tuple(results))


def dmarc_passed(
    message: EmailMessage, sender: str, authserv_ids: Iterable[str] = ()
) -> bool:
    """Whether a trusted receiving server reported ``dmarc=pass`` for the sender's domain.

    Only one header counts: the topmost one added by a server in ``authserv_ids`` (RFC 8601
    section 5: headers from any other authserv-id may have been written by the sender). With no
    trusted server nothing counts. A ``header.from`` that names another domain does not count.
    """
    trusted = {server.strip().lower() for server in authserv_ids if server.strip()}
    if not trusted:
        return False
    for value in message.get_all("authentication-results") or []:
        parsed = parse_authentication_results(str(value))
        if parsed is None or parsed.authserv_id not in trusted:
            continue
        dmarc = parsed.dmarc()
        if dmarc is None:
            return False
        result, properties = dmarc
        header_from = properties.get("header.from")
        domain = sender.rpartition("@")[2].lower()
        return result == "pass" and (header_from is None or header_from == domain)
    return False


# ------------------------------------------------------------------------------ text helpers


def _clean(text: str) -> str:
    """One line of text: control characters and line breaks become single spaces.

    Format characters (zero-width, bidi) stay: the safety rules read them on purpose.
    """
    cleaned = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text
    )
    return " ".join(cleaned.split())


def _one_line(text: str) -> str:
    return _clean(text)[:300]


def _shown(value: str) -> str:
    return repr(_clean(value)[:80])
