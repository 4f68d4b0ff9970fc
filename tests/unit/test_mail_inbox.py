"""Reading real mail: .eml files, mbox files, Maildir folders and CSV exports, good and bad."""

from __future__ import annotations

import mailbox
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from mediavault.agent.mail.mailboxes import (
    FAILURE_KINDS,
    FailureKind,
    InboxItem,
    InboxPathError,
    InboxProblem,
    MailReadError,
    ReadOptions,
    detect_format,
    email_from_bytes,
    read_inboxes,
)
from mediavault.graph.inbound_email import MAX_BODY_CHARS, TRUNCATION_MARKER, InboundEmail

HEADER = "email_id,received_at,from,subject,body\n"
PASS = ("mx.mediavault.example; spf=pass smtp.mailfrom=example.com; "
        "dmarc=pass header.from=example.com")


def mail(
    *,
    sender: str | None = "Ana López <ana@example.com>",
    subject: str = "When is my film due?",
    body: str = "Hi, when do I need to bring my rental back?",
    message_id: str | None = "<m1@example.com>",
    auth: list[str] | None = None,
    date: str | None = "Sun, 01 Mar 2026 09:00:00 +0000",
    extra: dict[str, str] | None = None,
) -> bytes:
    lines = [f"Authentication-Results: {value}" for value in auth or []]
    if sender is not None:
        lines.append(f"From: {sender}")
    lines.append("To: support@mediavault.example")
    lines.append(f"Subject: {subject}")
    if date is not None:
        lines.append(f"Date: {date}")
    if message_id is not None:
        lines.append(f"Message-ID: {message_id}")
    lines += [f"{key}: {value}" for key, value in (extra or {}).items()]
    lines.append("Content-Type: text/plain; charset=utf-8")
    lines.append("")
    return ("\r\n".join(lines) + "\r\n").encode() + body.encode()


def read_all(*paths: Path, **options: Any) -> tuple[list[InboxItem], list[InboxProblem]]:
    items: list[InboxItem] = []
    problems: list[InboxProblem] = []
    for entry in read_inboxes(list(paths), ReadOptions(**options)):
        (items if isinstance(entry, InboxItem) else problems).append(entry)  # type: ignore[arg-type]
    return items, problems


def kinds(problems: list[InboxProblem]) -> list[str]:
    return [problem.kind for problem in problems]


# ------------------------------------------------------------------------------------ .eml


def test_an_eml_file_becomes_an_email_with_its_message_id_sender_and_date(tmp_path: Path) -> None:
    path = tmp_path / "one.eml"
    path.write_bytes(mail(auth=[PASS], extra={"In-Reply-To": "<older@mediavault.example>"}))
    (item,), problems = read_all(path, authserv_ids=("mx.mediavault.example",))
    assert problems == []
    email = item.email
    assert (email.email_id, email.message_id) == ("m1@example.com", "m1@example.com")
    assert (email.sender, email.sender_name) == ("ana@example.com", "Ana López")
    assert email.received_at == datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert email.in_reply_to == "older@mediavault.example"
    assert email.body.strip() == "Hi, when do I need to bring my rental back?"
    assert email.sender_verified is True
    assert item.source == str(path)


def _multipart(*, html_only: bool = False) -> bytes:
    message = EmailMessage()
    message["From"] = "ana@example.com"
    message["Subject"] = "Receipt question"
    message["Message-ID"] = "<multi@example.com>"
    if not html_only:
        message.set_content("The plain text version.\n")
    html = "<html><body><p>The <b>HTML</b> version.</p><img src='x.png'></body></html>"
    if html_only:
        message.set_content(html, subtype="html")
    else:
        message.add_alternative(html, subtype="html")
    message.add_attachment(b"%PDF-1.4 SECRET-PDF-CONTENT", maintype="application",
                           subtype="pdf", filename="receipt.pdf")
    message.add_attachment("SECRET ATTACHED TEXT", filename="notes.txt")
    return message.as_bytes()


def test_plain_text_is_preferred_and_attachments_are_listed_but_not_read(tmp_path: Path) -> None:
    path = tmp_path / "multi.eml"
    path.write_bytes(_multipart())
    (item,), _ = read_all(path)
    assert item.email.body.strip() == "The plain text version."
    assert "SECRET" not in item.email.body
    assert "attachment:receipt.pdf" in item.email.input_flags
    assert "attachment:notes.txt" in item.email.input_flags


def test_an_html_only_message_is_turned_into_text(tmp_path: Path) -> None:
    path = tmp_path / "html.eml"
    path.write_bytes(_multipart(html_only=True))
    (item,), _ = read_all(path)
    assert "The **HTML** version." in item.email.body or "The HTML version." in item.email.body
    assert "<" not in item.email.body and "x.png" not in item.email.body
    assert "html_body" in item.email.input_flags


def test_a_folder_of_eml_files_is_read_in_name_order(tmp_path: Path) -> None:
    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "b.eml").write_bytes(mail(message_id="<b@example.com>"))
    (folder / "a.eml").write_bytes(mail(message_id="<a@example.com>"))
    (folder / "readme.txt").write_text("not mail")
    items, problems = read_all(folder)
    assert [i.email.email_id for i in items] == ["a@example.com", "b@example.com"]
    assert problems == []


# ------------------------------------------------------------------------------ mbox, Maildir


def test_an_mbox_file_yields_every_message_and_isolates_a_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "support.mbox"
    box = mailbox.mbox(path)
    box.add(mail(message_id="<1@example.com>", body="From the start of a line\nfirst"))
    box.add(mail(sender=None, message_id="<2@example.com>"))
    box.add(mail(message_id="<3@example.com>", body="third"))
    box.close()
    items, problems = read_all(path)
    assert [i.email.email_id for i in items] == ["1@example.com", "3@example.com"]
    assert [i.source for i in items] == [f"{path}#1", f"{path}#3"]
    assert "first" in items[0].email.body and not items[0].email.body.startswith("From ")
    assert [(p.source, p.kind) for p in problems] == [(f"{path}#2", "missing_sender")]
    assert problems[0].message == "no From header"


def test_an_mbox_without_a_suffix_is_recognised_by_its_from_line(tmp_path: Path) -> None:
    path = tmp_path / "spool"
    box = mailbox.mbox(path)
    box.add(mail())
    box.close()
    assert detect_format(path) == "mbox"
    assert len(read_all(path)[0]) == 1


def test_a_maildir_reads_new_and_current_mail(tmp_path: Path) -> None:
    path = tmp_path / "Maildir"
    box = mailbox.Maildir(path)
    box.add(mail(message_id="<new@example.com>"))
    seen = mailbox.MaildirMessage(mail(message_id="<seen@example.com>"))
    seen.set_subdir("cur")
    box.add(seen)
    box.add(mail(message_id="<empty@example.com>", body="   \n"))
    box.close()
    assert detect_format(path) == "maildir"
    items, problems = read_all(path)
    assert sorted(i.email.email_id for i in items) == ["new@example.com", "seen@example.com"]
    assert kinds(problems) == ["empty_body"]
    assert problems[0].source.startswith(f"{path}:")


# ------------------------------------------------------------------------ sender verification


@pytest.mark.parametrize(
    ("auth", "verified"),
    [
        ([PASS], True),
        ([], False),
        (["mx.mediavault.example; dmarc=fail header.from=example.com"], False),
        (["mx.mediavault.example; dmarc=none"], False),
        # The receiving server's verdict is on top; a "pass" below it came with the message.
        (["mx.mediavault.example; dmarc=fail header.from=example.com", PASS], False),
        # A pass written inside a comment is not a result.
        (["mx.mediavault.example; dmarc=fail (dmarc=pass) header.from=example.com"], False),
        (["mx.mediavault.example; spf=pass (dmarc=pass; really)"], False),
        # A pass for another domain does not vouch for this From address.
        (["mx.mediavault.example; dmarc=pass header.from=attacker.example"], False),
        (["mx.mediavault.example; xdmarc=pass"], False),
        (["mx.mediavault.example; DMARC=PASS (p=none dis=none) header.from=EXAMPLE.COM"], True),
    ],
)
def test_raw_mail_is_verified_only_by_the_receiving_servers_dmarc_pass(
    auth: list[str], verified: bool
) -> None:
    trusted = ReadOptions(authserv_ids=("mx.mediavault.example",))
    assert email_from_bytes(mail(auth=auth), trusted).sender_verified is verified


@pytest.mark.parametrize("forged", [
    "mx.mediavault.example; dmarc=pass header.from=example.com",  # our server's name, forged
    "mx.attacker.example; dmarc=pass header.from=example.com",
])
def test_without_a_configured_receiving_server_no_header_verifies_a_sender(forged: str) -> None:
    # RFC 8601 section 5: a receiving server that adds no header of its own leaves whatever
    # the sender wrote on top, so nothing is believed until the operator names the server.
    assert email_from_bytes(mail(auth=[forged])).sender_verified is False
    assert email_from_bytes(mail(auth=[forged]), ReadOptions(authserv_ids=())).sender_verified \
        is False


def test_only_named_receiving_servers_are_trusted_when_given() -> None:
    forged_on_top = mail(auth=["mx.attacker.example; dmarc=pass header.from=example.com"])
    trusted = ReadOptions(authserv_ids=("mx.mediavault.example",))
    assert email_from_bytes(forged_on_top).sender_verified is False
    assert email_from_bytes(forged_on_top, trusted).sender_verified is False
    ours_below = mail(auth=["relay.example; dmarc=fail", PASS])
    assert email_from_bytes(ours_below, trusted).sender_verified is True


def test_the_operator_can_switch_the_dmarc_check_off_and_csv_trust_off(tmp_path: Path) -> None:
    eml = tmp_path / "x.eml"
    eml.write_bytes(mail())
    csv_path = tmp_path / "desk.csv"
    csv_path.write_text(HEADER + "c1,2026-03-01T09:00:00Z,bo@example.com,Hi,hello\n")
    items, _ = read_all(eml, csv_path)
    assert [i.email.sender_verified for i in items] == [False, True]
    items, _ = read_all(eml, csv_path, require_dmarc=False, trust_csv_senders=False)
    assert [i.email.sender_verified for i in items] == [True, False]


# ------------------------------------------------------------------------------- bad input


def test_a_missing_message_id_gets_a_stable_id_derived_from_the_content(tmp_path: Path) -> None:
    eml = tmp_path / "noid.eml"
    eml.write_bytes(mail(message_id=None))
    box = mailbox.mbox(tmp_path / "copy.mbox")
    box.add(mail(message_id=None))
    box.add(mail(message_id=None, body="A different question"))
    box.close()
    first = email_from_bytes(eml.read_bytes())
    assert first.email_id.startswith("noid-") and first.message_id is None
    assert "no_message_id" in first.input_flags
    items, problems = read_all(eml, tmp_path / "copy.mbox")
    # The mbox copy of the same message is the same email; the other one is new.
    assert kinds(problems) == ["duplicate"]
    assert [i.email.email_id == first.email_id for i in items] == [True, False]


@pytest.mark.parametrize(
    ("raw", "kind", "says"),
    [
        (mail(sender=None), "missing_sender", "no From header"),
        (mail(sender="not an address"), "missing_sender", "not an e-mail address"),
        (mail(sender="undisclosed-recipients:;"), "missing_sender", "exactly one address"),
        (mail(sender="a@example.com, b@example.com"), "missing_sender", "exactly one address"),
        (mail(extra={"From": "b@example.com"}), "missing_sender", "2 From headers"),
        (mail(body=""), "empty_body", "nothing to triage"),
        (b"", "malformed_message", "empty"),
    ],
)
def test_unusable_messages_are_one_problem_each(raw: bytes, kind: FailureKind, says: str,
                                                tmp_path: Path) -> None:
    path = tmp_path / "bad.eml"
    path.write_bytes(raw)
    good = tmp_path / "good.eml"
    good.write_bytes(mail(message_id="<good@example.com>"))
    items, problems = read_all(path, good)
    assert [i.email.email_id for i in items] == ["good@example.com"]
    (problem,) = problems
    assert (problem.source, problem.kind) == (str(path), kind)
    assert says in problem.message
    assert "\n" not in problem.line()


def test_non_utf8_bytes_are_replaced_and_flagged_and_declared_charsets_respected() -> None:
    raw = mail(body="caf\u00e9").replace("caf\u00e9".encode(), b"caf\xe9 \xff")
    email = email_from_bytes(raw)
    assert email.body.startswith("caf\ufffd") and "non_utf8" in email.input_flags
    latin = raw.replace(b"charset=utf-8", b"charset=iso-8859-1")
    email = email_from_bytes(latin)
    assert email.body.startswith("caf\u00e9") and "non_utf8" not in email.input_flags
    header = mail(subject="Re: caf\u00e9").replace("caf\u00e9".encode(), b"caf\xe9")
    assert "non_utf8" in email_from_bytes(header).input_flags


def test_a_one_megabyte_body_is_capped_with_a_visible_marker_and_flagged() -> None:
    body = "late fee " * 120_000  # a little over 1 MB
    started = time.perf_counter()
    email = email_from_bytes(mail(body=body))
    assert time.perf_counter() - started < 5
    marker = TRUNCATION_MARKER.format(dropped=len(body) - MAX_BODY_CHARS)
    assert email.body == body[:MAX_BODY_CHARS] + marker
    assert "truncated" in email.input_flags


def test_a_huge_html_body_is_cut_before_conversion() -> None:
    html = "<html><body>" + "<p>row</p>" * 100_000 + "</body></html>"
    raw = mail(body=html).replace(b"text/plain", b"text/html")
    started = time.perf_counter()
    email = email_from_bytes(raw)
    assert time.perf_counter() - started < 10
    assert "truncated" in email.input_flags and "message truncated" in email.body


def test_csv_problems_keep_their_line_and_the_rest_of_the_batch_is_read(tmp_path: Path) -> None:
    inbox = tmp_path / "desk.csv"
    inbox.write_bytes(
        (HEADER
         + "ok-1,2026-03-01T09:00:00Z,a@example.com,Hi,hello\n"
         + "short,2026-03-01T09:00:00Z,a@example.com\n"
         + "blank,2026-03-01T09:00:00Z,a@example.com,Hi,\n"
         + "ok-2,2026-03-01T09:00:00Z,b@example.com,Hi,caf").encode() + b"\xe9\n"
    )
    no_column = tmp_path / "old.csv"
    no_column.write_text("email_id,received_at,from,body\nx,2026-03-01T09:00:00Z,a@b.com,hi\n")
    eml = tmp_path / "after.eml"
    eml.write_bytes(mail())
    items, problems = read_all(inbox, no_column, eml)
    assert [i.email.email_id for i in items] == ["ok-1", "ok-2", "m1@example.com"]
    assert "non_utf8" in items[1].email.input_flags
    assert [(p.source, p.kind) for p in problems] == [
        (f"{inbox}:3", "malformed_row"),
        (f"{inbox}[blank]", "empty_body"),
        (str(no_column), "missing_column"),
    ]
    assert "subject" in problems[2].message


def test_an_unreadable_file_is_reported_and_the_others_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked.eml"
    locked.write_bytes(mail(message_id="<locked@example.com>"))
    locked.chmod(0)
    real_read_bytes = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == locked:  # what a file without read permission does, even for root
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    good = tmp_path / "good.eml"
    good.write_bytes(mail(message_id="<good@example.com>"))
    items, problems = read_all(locked, good)
    assert [i.email.email_id for i in items] == ["good@example.com"]
    assert [(p.source, p.kind, p.message) for p in problems] == [
        (str(locked), "unreadable_file", "cannot read: Permission denied")
    ]


def test_a_file_of_unknown_format_is_a_bad_file(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("just some notes\n")
    _, problems = read_all(notes)
    assert kinds(problems) == ["bad_file"]


def test_a_path_that_does_not_exist_refuses_the_whole_run(tmp_path: Path) -> None:
    good = tmp_path / "good.eml"
    good.write_bytes(mail())
    with pytest.raises(InboxPathError, match=r"missing\.mbox"):
        read_all(good, tmp_path / "missing.mbox")


def test_every_failure_kind_is_described() -> None:
    assert tuple(FAILURE_KINDS) == get_args(FailureKind)


# ------------------------------------------------------------------ text no store can write


@pytest.mark.parametrize("raw_from", [b"Ana <an\xe9@exampl\xff.com>", b"<ana\x80@example.com>"])
def test_a_from_address_with_undecodable_bytes_is_a_missing_sender(raw_from: bytes) -> None:
    raw = b"From: " + raw_from + b"\r\nSubject: hi\r\nMessage-ID: <p1@x>\r\n\r\nWhen is it due?\r\n"
    with pytest.raises(MailReadError) as refused:
        email_from_bytes(raw)
    assert refused.value.kind == "missing_sender"
    assert "not UTF-8" in str(refused.value)


def test_the_email_model_refuses_text_no_store_can_write() -> None:
    fields = {"email_id": "e-1", "received_at": "2026-03-01T09:00:00Z", "from": "a@example.com"}
    for field, value in (("from", "an\udce9@example.com"), ("email_id", "e\udcff"),
                         ("body", "caf\udce9"), ("email_id", "e\x00")):
        with pytest.raises(ValidationError):
            InboundEmail.model_validate({**fields, field: value})
    kept = InboundEmail.model_validate({**fields, "body": "a\x00b", "subject": "s\x00"})
    assert (kept.body, kept.subject) == ("a\ufffdb", "s\ufffd")
