"""The outbox: replies written as RFC 5322 files a mail transport can send as they are."""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from mediavault.agent.mail.outbox import OutboxMessage, write_outbox_message

SENT_AT = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
BODY = "Hello Alice,\n\nThe late fee is $1.00 per started day.\n\nMediaVault Support Team\n"


def write(outbox: Path, **overrides: object) -> OutboxMessage:
    fields: dict[str, object] = {
        "email_id": "e-1",
        "to": "Alice Doe <alice@example.com>",
        "subject": "Late fee on Alien",
        "body": BODY,
        "in_reply_to": "<e-1@mail.example.com>",
        "date": SENT_AT,
    }
    fields.update(overrides)
    return write_outbox_message(outbox, **fields)  # type: ignore[arg-type]


def parse(path: Path) -> EmailMessage:
    with path.open("rb") as handle:
        message = BytesParser(policy=policy.default).parse(handle)
    assert isinstance(message, EmailMessage)
    return message


def test_the_reply_parses_back_with_threading_headers(tmp_path: Path) -> None:
    sent = write(tmp_path / "outbox")
    message = parse(sent.path)

    assert sent.path.parent == tmp_path / "outbox"
    assert message["From"] == "support@mediavault.example"
    assert message["To"] == "Alice Doe <alice@example.com>"
    assert message["Subject"] == "Re: Late fee on Alien"
    assert message["Message-ID"] == sent.message_id
    assert message["In-Reply-To"] == "<e-1@mail.example.com>"
    assert message["References"] == "<e-1@mail.example.com>"
    assert parsedate_to_datetime(message["Date"]) == SENT_AT
    body = message.get_body()
    assert body is not None
    assert body.get_content() == BODY
    # SMTP policy: CRLF line endings on the wire.
    assert b"\r\n\r\nHello Alice," in sent.path.read_bytes()


def test_without_a_known_original_message_there_are_no_threading_headers(
    tmp_path: Path,
) -> None:
    message = parse(write(tmp_path, in_reply_to=None).path)
    assert message["In-Reply-To"] is None
    assert message["References"] is None


def test_a_bare_original_message_id_gets_angle_brackets(tmp_path: Path) -> None:
    message = parse(write(tmp_path, in_reply_to="abc@mail.example.com").path)
    assert message["In-Reply-To"] == "<abc@mail.example.com>"


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Late fee", "Re: Late fee"),
        ("Re: Late fee", "Re: Late fee"),
        ("RE:Late fee", "RE:Late fee"),
        ("Fwd: Late fee", "Re: Fwd: Late fee"),
        ("", "Re: your message to MediaVault Support"),
    ],
)
def test_subject_gets_one_re_prefix(tmp_path: Path, subject: str, expected: str) -> None:
    assert parse(write(tmp_path, subject=subject).path)["Subject"] == expected


def test_message_id_is_the_same_on_every_run_and_differs_between_emails(tmp_path: Path) -> None:
    first = write(tmp_path / "run1")
    again = write(tmp_path / "run2", date=datetime(2027, 1, 1, tzinfo=UTC))
    other = write(tmp_path / "run1", email_id="e-2")

    assert first.message_id == again.message_id
    assert first.message_id != other.message_id
    assert first.message_id.endswith("@mediavault.example>")


def test_writing_again_leaves_the_first_file_untouched(tmp_path: Path) -> None:
    first = write(tmp_path)
    original = first.path.read_bytes()
    second = write(tmp_path, body="A different text\n", date=datetime(2027, 1, 1, tzinfo=UTC))

    assert second == first
    assert first.path.read_bytes() == original
    # No temporary file is left behind.
    assert [p.name for p in tmp_path.iterdir()] == [first.path.name]


def test_a_hostile_email_id_cannot_leave_the_outbox(tmp_path: Path) -> None:
    outbox = tmp_path / "home" / "outbox"
    sent = write(outbox, email_id="../../etc/passwd")

    assert sent.path.resolve().parent == outbox.resolve()
    assert ".." not in sent.path.name and "/" not in sent.path.name
    assert sent.path.name.endswith(".eml")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [sent.path.name]


def test_ids_that_sanitise_alike_get_different_files(tmp_path: Path) -> None:
    names = {write(tmp_path, email_id=email_id).path.name for email_id in ("a/b", "a_b", "a b")}
    assert len(names) == 3
    assert len(list(tmp_path.iterdir())) == 3


def test_a_line_break_in_the_subject_cannot_add_a_header(tmp_path: Path) -> None:
    message = parse(write(tmp_path, subject="Hello\r\nBcc: everyone@example.com").path)
    assert message["Bcc"] is None
    assert message["Subject"] == "Re: Hello Bcc: everyone@example.com"


def test_a_recipient_that_is_not_an_address_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an e-mail address"):
        write(tmp_path, to="alice at example dot com")
    assert not any(tmp_path.iterdir())
