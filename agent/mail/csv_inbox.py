"""The CSV inbox adapter: a help-desk export, one email per row, read into InboundEmail models.

The file has a header row ``email_id,received_at,from,subject,body`` and optionally
``in_reply_to`` (other columns are ignored), RFC 4180 quoting (bodies may span lines), UTF-8.
One bad row never sinks the file: it is reported with the line it starts on and the rest are
read. A missing required column does sink it (:class:`InboxFormatError`): every row would be
wrong in the same way.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from mediavault.graph.inbound_email import MAX_BODY_CHARS, InboundEmail
from mediavault.tools.email_fields import split_sender

REQUIRED_COLUMNS: tuple[str, ...] = ("email_id", "received_at", "from", "subject", "body")
OPTIONAL_COLUMNS: tuple[str, ...] = ("in_reply_to",)


class InboxFormatError(ValueError):
    """The file as a whole cannot be read as an inbox (no header, a required column missing)."""


@dataclass(frozen=True)
class InboxError:
    #: The line of the file the row starts on (1 is the header).
    row_number: int
    reason: str


@dataclass(frozen=True)
class InboxReadResult:
    emails: list[InboundEmail] = field(default_factory=list)
    errors: list[InboxError] = field(default_factory=list)


class _DecodedLines:
    """The file's lines as text, remembering which ones held bytes that are not UTF-8."""

    def __init__(self, raw: bytes) -> None:
        if raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        self.lines: list[str] = []
        self.bad_lines: set[int] = set()  # 1-based line numbers
        for number, line in enumerate(raw.splitlines(keepends=True), start=1):
            try:
                self.lines.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                self.lines.append(line.decode("utf-8", errors="replace"))
                self.bad_lines.add(number)

    def __iter__(self) -> Iterator[str]:
        return iter(self.lines)

    def any_bad(self, first: int, last: int) -> bool:
        return any(first <= number <= last for number in self.bad_lines)


def _parse_received_at(value: str) -> datetime:
    text = value.strip()
    if not text:
        raise ValueError("missing received_at")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"bad received_at {text!r}: use ISO 8601, e.g. 2026-03-01T09:14:00Z"
        ) from None
    # A time without an offset is taken as UTC, so that every email compares with every other.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _validation_reason(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'row'}: {item['msg']}"
        for item in error.errors()
    )


def read_inbox_csv(path: Path | str) -> InboxReadResult:
    """Read a CSV inbox. Bad rows become :class:`InboxError` entries; good rows, emails."""
    lines = _DecodedLines(Path(path).read_bytes())
    reader = csv.reader(lines, strict=True)
    result = InboxReadResult()
    header: list[str] | None = None
    seen_ids: dict[str, int] = {}
    previous_end = 0
    while True:
        first_line = previous_end + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:  # broken quoting; the reader resumes on the next line
            if header is None:
                raise InboxFormatError(f"{path}: line {first_line}: {error}") from None
            result.errors.append(InboxError(first_line, f"malformed CSV: {error}"))
            previous_end = reader.line_num
            continue
        previous_end = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue  # blank line
        if header is None:
            header = [name.strip().lower() for name in row]
            missing = [name for name in REQUIRED_COLUMNS if name not in header]
            if missing:
                raise InboxFormatError(
                    f"{path}: missing required column(s) {', '.join(missing)}; the header must "
                    f"have {', '.join(REQUIRED_COLUMNS)} (and optionally "
                    f"{', '.join(OPTIONAL_COLUMNS)})"
                )
            duplicated = sorted({name for name in header if header.count(name) > 1})
            if duplicated:
                raise InboxFormatError(f"{path}: duplicated column(s) {', '.join(duplicated)}")
            continue
        if len(row) != len(header):
            result.errors.append(
                InboxError(first_line, f"{len(row)} fields where the header has {len(header)}")
            )
            continue
        fields = dict(zip(header, row, strict=True))
        try:
            email = _read_row(fields, lines.any_bad(first_line, reader.line_num))
        except ValueError as error:  # pydantic's ValidationError is a ValueError too
            reason = _validation_reason(error) if isinstance(error, ValidationError) else str(error)
            result.errors.append(InboxError(first_line, reason))
            continue
        if email.email_id in seen_ids:
            result.errors.append(
                InboxError(
                    first_line,
                    f"duplicate email_id {email.email_id!r} (first on line "
                    f"{seen_ids[email.email_id]})",
                )
            )
            continue
        seen_ids[email.email_id] = first_line
        result.emails.append(email)
    if header is None:
        raise InboxFormatError(f"{path}: empty file, no header row")
    return result


def _read_row(fields: dict[str, str], non_utf8: bool) -> InboundEmail:
    if not fields["email_id"].strip():
        raise ValueError("missing email_id")
    received_at = _parse_received_at(fields["received_at"])
    try:
        split_sender(fields["from"])
    except ValueError:
        raise ValueError(f"bad from {fields['from'].strip()!r}: not an e-mail address") from None
    email = InboundEmail.from_fields(
        email_id=fields["email_id"],
        received_at=received_at,
        **{"from": fields["from"]},
        subject=fields["subject"],
        body=fields["body"],
        in_reply_to=fields.get("in_reply_to"),
    )
    flags = [*email.input_flags]
    if non_utf8:
        flags.append("non_utf8")
    if len(email.body) > MAX_BODY_CHARS:  # only a truncated body carries the marker past the cap
        flags.append("truncated")
    return email.model_copy(update={"input_flags": tuple(flags)}) if flags else email
