"""`mediavault triage`: real inboxes in every format, bad input, resuming, options, exit codes."""

from __future__ import annotations

import json
import mailbox
import re
import sqlite3
from contextlib import closing
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.agent.stores.audit import verify_audit_log
from mediavault.cli import app
from mediavault.graph.inbound_email import InboundEmail

REPO = Path(__file__).resolve().parents[2]
INBOX = REPO / "examples" / "inbox.csv"
EXPECTED: dict[str, dict[str, Any]] = json.loads((REPO / "examples" / "inbox_expected.json")
                                                  .read_text())
SAMPLE = {email.email_id: email for email in read_inbox_csv(INBOX).emails}
HEADER = "email_id,received_at,from,subject,body\n"
DMARC_PASS = "mx.mediavault.example; dmarc=pass header.from={domain}"

runner = CliRunner()


def triage(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["triage", *args])
    return result.exit_code, result.stdout, result.stderr


def as_mail(email: InboundEmail, message_id: str | None, *, dmarc: bool = False,
            sender: str | None = None, body: str | None = None) -> bytes:
    message = EmailMessage()
    if dmarc:
        domain = email.sender.rpartition("@")[2]
        message["Authentication-Results"] = DMARC_PASS.format(domain=domain)
    if sender != "":
        message["From"] = sender or email.sender
    message["Subject"] = email.subject
    message["Date"] = "Sun, 01 Mar 2026 09:00:00 +0000"
    if message_id:
        message["Message-ID"] = f"<{message_id}>"
    message.set_content(email.body if body is None else body)
    return message.as_bytes()


def cases(home: Path) -> dict[str, sqlite3.Row]:
    with closing(sqlite3.connect(home / "cases.sqlite")) as connection:
        connection.row_factory = sqlite3.Row
        return {row["email_id"]: row for row in connection.execute("SELECT * FROM cases")}


@pytest.fixture
def db(demo_db_path: Path, mediavault_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEDIAVAULT_DB", str(demo_db_path))
    return demo_db_path


@pytest.fixture
def mixed_inbox(tmp_path: Path) -> dict[str, Path]:
    """One inbox of every format, each with good mail and one kind of bad mail."""
    csv_path = tmp_path / "desk.csv"
    good = SAMPLE["msg-013"]
    csv_path.write_bytes(
        (HEADER
         + f'msg-013,2026-03-01T09:00:00Z,{good.sender},{good.subject},"{good.body}"\n'
         + "broken,2026-03-01T09:00:00Z,a@example.com\n"
         + "latin,2026-03-01T09:00:00Z,grace.kim@example.net,Is Hollow Meridian in stock?,"
           '"Hi, is Hollow Meridian in stock? Caf').encode() + b'\xe9 au lait."\n'
    )
    mbox_path = tmp_path / "support.mbox"
    box = mailbox.mbox(mbox_path)
    box.add(as_mail(SAMPLE["msg-006"], "m6@mail.example", dmarc=True))
    box.add(as_mail(SAMPLE["msg-009"], "nofrom@mail.example", sender=""))
    box.close()
    maildir_path = tmp_path / "Maildir"
    maildir = mailbox.Maildir(maildir_path)
    maildir.add(as_mail(SAMPLE["msg-016"], "m16@mail.example"))
    maildir.add(as_mail(SAMPLE["msg-003"], "empty@mail.example", body="\n"))
    maildir.close()
    eml_path = tmp_path / "praise.eml"
    eml_path.write_bytes(as_mail(SAMPLE["msg-003"], None, dmarc=True))
    return {"csv": csv_path, "mbox": mbox_path, "maildir": maildir_path, "eml": eml_path}


def test_every_format_is_triaged_and_each_bad_email_is_one_line(
    db: Path, mediavault_home: Path, mixed_inbox: dict[str, Path]
) -> None:
    paths = [str(p) for p in mixed_inbox.values()]
    code, out, err = triage(*paths, "--json", "--authserv-id", "mx.mediavault.example")
    assert code == 1, err
    report = json.loads(out)
    by_id = {e["email_id"]: e for e in report["emails"]}
    assert set(by_id) == {"msg-013", "latin", "m6@mail.example", "m16@mail.example",
                          next(i for i in by_id if i.startswith("noid-"))}
    assert by_id["msg-013"]["route"] == "draft"
    assert by_id["msg-013"]["reason_code"] == "catalog_question"
    assert by_id["m6@mail.example"]["reason_code"] == "rental_status"
    assert "non_utf8" in by_id["latin"]["input_flags"]
    assert report["summary"]["failures"] == {
        "malformed_row": 1, "missing_sender": 1, "empty_body": 1,
    }
    assert report["summary"]["triaged"] == 5
    # One line per bad email, saying where and why; notes for flagged ones.
    skipped = [line for line in err.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 3
    broken_line = 3 + SAMPLE["msg-013"].body.count("\n")  # after the header and a long row
    assert f"skipped {mixed_inbox['csv']}:{broken_line}: malformed_row: 3 fields where the " \
        "header has 5" in skipped
    assert any(f"{mixed_inbox['mbox']}#2: missing_sender: no From header" in line
               for line in skipped)
    assert any("empty_body" in line and str(mixed_inbox["maildir"]) in line for line in skipped)
    assert any(line.startswith("note ") and "non_utf8" in line for line in err.splitlines())
    # Nothing half-written: the bad emails left no case, the good ones exactly one each.
    assert set(cases(mediavault_home)) == set(by_id)
    assert verify_audit_log(mediavault_home / "audit.jsonl").ok


def test_raw_mail_without_dmarc_pass_gets_no_account_access(
    db: Path, mediavault_home: Path, tmp_path: Path
) -> None:
    email = SAMPLE["msg-011"]  # "Still have Silver Parade": needs the sender's own rentals
    (tmp_path / "verified.eml").write_bytes(as_mail(email, "v@mail.example", dmarc=True))
    (tmp_path / "unverified.eml").write_bytes(as_mail(email, "u@mail.example"))
    code, out, err = triage(str(tmp_path / "verified.eml"), str(tmp_path / "unverified.eml"),
                            "--json", "--authserv-id", "mx.mediavault.example")
    assert code == 0, err
    flags = {e["email_id"]: e["sender_verified"] for e in json.loads(out)["emails"]}
    assert flags == {"v@mail.example": True, "u@mail.example": False}
    recorded = cases(mediavault_home)
    assert recorded["v@mail.example"]["customer_id"] is not None
    assert recorded["u@mail.example"]["customer_id"] is None


def test_a_forged_authentication_results_header_verifies_nobody_without_an_authserv_id(
    db: Path, mediavault_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The spoofer writes the header the receiving server would have written; when no
    # receiving server is configured nothing vouches for the address: catalog data only.
    email = SAMPLE["msg-011"]
    (tmp_path / "forged.eml").write_bytes(as_mail(email, "forged@mail.example", dmarc=True))
    code, out, err = triage(str(tmp_path / "forged.eml"), "--json")
    assert code == 0, err
    assert json.loads(out)["emails"][0]["sender_verified"] is False
    assert cases(mediavault_home)["forged@mail.example"]["customer_id"] is None
    # Naming the server (here through the environment) is what makes its header count.
    monkeypatch.setenv("MEDIAVAULT_AUTHSERV_ID", "relay.example, mx.mediavault.example")
    (tmp_path / "real.eml").write_bytes(as_mail(email, "real@mail.example", dmarc=True))
    code, out, err = triage(str(tmp_path / "real.eml"), "--json")
    assert code == 0, err
    assert json.loads(out)["emails"][0]["sender_verified"] is True


@pytest.mark.parametrize("from_bytes", [
    b"Ana <an\xe9@exampl\xff.com>",           # Latin-1 bytes inside the address
    b"\xff\xfe <ana\x80@example.com>",         # invalid UTF-8 in name and address
])
def test_one_poison_email_does_not_stop_the_batch(
    db: Path, mediavault_home: Path, tmp_path: Path, from_bytes: bytes
) -> None:
    poison = tmp_path / "a-poison.eml"
    poison.write_bytes(b"From: " + from_bytes + b"\r\nSubject: hi\r\nMessage-ID: <p1@x>\r\n"
                       b"\r\nWhen is my film due?\r\n")
    good = tmp_path / "b-good.eml"
    good.write_bytes(as_mail(SAMPLE["msg-011"], "good@mail.example"))
    for _ in range(2):  # the same on every run
        code, out, err = triage(str(poison), str(good), "--json")
        assert code == 1, err
        report = json.loads(out)
        assert [e["email_id"] for e in report["emails"]] == ["good@mail.example"]
        assert report["emails"][0]["status"] != "failed"
        assert report["failures"] == [{
            "source": str(poison), "kind": "missing_sender",
            "message": report["failures"][0]["message"]}]
        assert "not UTF-8" in report["failures"][0]["message"]
        assert "UnicodeEncodeError" not in err
    assert set(cases(mediavault_home)) == {"good@mail.example"}
    assert verify_audit_log(mediavault_home / "audit.jsonl").ok


def test_operators_choose_whom_to_trust(db: Path, mediavault_home: Path, tmp_path: Path) -> None:
    email = SAMPLE["msg-011"]
    (tmp_path / "raw.eml").write_bytes(as_mail(email, "raw@mail.example"))
    csv_path = tmp_path / "desk.csv"
    csv_path.write_text(HEADER + f"desk-1,2026-03-01T09:00:00Z,{email.sender},"
                        f"{email.subject},\"{email.body}\"\n")
    code, out, err = triage(str(tmp_path / "raw.eml"), str(csv_path), "--json",
                            "--no-require-dmarc", "--no-trust-csv-senders")
    assert code == 0, err
    flags = {e["email_id"]: e["sender_verified"] for e in json.loads(out)["emails"]}
    assert flags == {"raw@mail.example": True, "desk-1": False}
    recorded = cases(mediavault_home)
    assert recorded["raw@mail.example"]["customer_id"] is not None
    assert recorded["desk-1"]["customer_id"] is None


def test_a_second_run_skips_what_is_recorded_and_limit_counts_new_runs(
    db: Path, mediavault_home: Path
) -> None:
    code, out, _ = triage(str(INBOX), "--limit", "3", "--json")
    assert code == 0
    first = json.loads(out)["summary"]
    assert (first["triaged"], first["already_recorded"], first["not_reached"]) == (3, 0, 13)
    code, out, _ = triage(str(INBOX), "--limit", "3", "--json")
    second = json.loads(out)["summary"]
    assert (second["triaged"], second["already_recorded"], second["not_reached"]) == (3, 3, 10)
    audit_lines = (mediavault_home / "audit.jsonl").read_bytes()
    code, out, _ = triage(str(INBOX), "--limit", "0")
    assert code == 0
    assert "6 already recorded" in out
    assert (mediavault_home / "audit.jsonl").read_bytes() == audit_lines


def test_concurrent_triage_routes_the_sample_inbox_as_labelled(
    db: Path, mediavault_home: Path
) -> None:
    code, out, err = triage(str(INBOX), "--concurrency", "4", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert [e["email_id"] for e in report["emails"]] == list(SAMPLE)  # input order
    for entry in report["emails"]:
        expected = EXPECTED[entry["email_id"]]
        assert (entry["route"], entry["reason_code"]) == (
            expected["route"], expected["reason_code"]), entry["email_id"]
    assert report["summary"]["statuses"] == {"awaiting_review": 11, "escalated": 5}
    assert len(cases(mediavault_home)) == 16


def test_the_summary_table_counts_statuses_and_failure_kinds(
    db: Path, mediavault_home: Path, mixed_inbox: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, _ = triage(*[str(p) for p in mixed_inbox.values()])
    assert code == 1
    assert "Triage outcomes" in out and "Summary" in out
    for row in ("awaiting review", "failed: malformed_row", "failed: missing_sender",
                "failed: empty_body", "sender not verified (catalog answers only)"):
        assert row in out
    code, out, _ = triage(*[str(p) for p in mixed_inbox.values()])
    assert "5 already recorded" in out


def test_an_emails_own_words_are_never_terminal_markup_or_escapes(
    db: Path, mediavault_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv_path = tmp_path / "desk.csv"
    subject = "[bold red]URGENT[/bold red] \x1b[2Jhi"
    csv_path.write_text(HEADER + f'x1,2026-03-01T09:00:00Z,a@example.com,"{subject}",Hello\n'
                        + "[red]id[/red],bad-date,a@example.com,Hi,Hello\n")
    code, out, err = triage(str(csv_path))
    assert "[bold red]URGENT[/bold red] ?[2Jhi" in out
    assert "\x1b" not in out and "\x1b" not in err
    assert code == 1


def test_a_missing_path_refuses_the_whole_command(
    db: Path, mediavault_home: Path, tmp_path: Path
) -> None:
    code, _, err = triage(str(INBOX), str(tmp_path / "nowhere.mbox"))
    assert code == 2
    assert err.strip().splitlines() == [f"error: no such file or folder: {tmp_path}/nowhere.mbox"]
    assert not (mediavault_home / "cases.sqlite").exists()
    assert not (mediavault_home / "checkpoints.sqlite").exists()


def test_a_model_that_cannot_be_built_is_one_error_before_any_email(
    db: Path, mediavault_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    code, _, err = triage(str(INBOX), "--model", "openai:gpt-4o-mini")
    assert code == 2
    assert "OPENAI_API_KEY" in err and len(err.strip().splitlines()) == 1
    assert not (mediavault_home / "cases.sqlite").exists()


def test_bad_option_values_are_usage_errors(db: Path, mediavault_home: Path) -> None:
    assert triage(str(INBOX), "--concurrency", "0")[0] == 2
    assert triage(str(INBOX), "--concurrency", "65")[0] == 2
    assert triage()[0] == 2


def test_every_option_has_help_text() -> None:
    result = runner.invoke(app, ["triage", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--concurrency", "--model", "--review", "--limit", "--trust-csv-senders",
                   "--require-dmarc", "--authserv-id", "--json"):
        assert option in result.stdout
    assert "Maildir" in result.stdout


def test_an_inbox_with_nothing_readable_writes_nothing(
    db: Path, mediavault_home: Path, tmp_path: Path
) -> None:
    old_export = tmp_path / "old.csv"
    old_export.write_text("id,date,sender,text\n1,2026-03-01,a@example.com,hello\n")
    code, out, err = triage(str(old_export), "--json")
    assert code == 1
    assert json.loads(out)["summary"]["failures"] == {"missing_column": 1}
    assert err.count("\n") == 1 and "missing required column(s) email_id, received_at" in err
    assert not (mediavault_home / "cases.sqlite").exists()
    assert not (mediavault_home / "checkpoints.sqlite").exists()


def test_output_to_a_file_or_pipe_is_never_folded_mid_word(
    db: Path, mediavault_home: Path, tmp_path: Path
) -> None:
    # Rich folds tables at 80 columns when stdout is not a terminal; ours stay whole.
    subject = "A rather long subject line about the late fee on Midnight Orchard and two others"
    csv_path = tmp_path / "desk.csv"
    csv_path.write_text(HEADER + f"long-1,2026-03-01T09:00:00Z,{SAMPLE['msg-005'].sender},"
                        f'"{subject}","{SAMPLE["msg-005"].body}"\n')
    code, out, _ = triage(str(csv_path))
    assert code == 0, out
    row = next(line for line in out.splitlines() if "long-1" in line)
    assert subject[:60] in row and "fee_waiver_request" in row
    assert all(line == line.rstrip() for line in out.splitlines())


def test_the_progress_total_counts_only_the_runs_limit_allows(
    db: Path, mediavault_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from rich.console import Console

    import mediavault.agent.cli.triage as cli_triage

    def progress_totals(*args: str) -> set[str]:
        screen = io.StringIO()
        monkeypatch.setattr(cli_triage, "err_console",
                            Console(file=screen, force_terminal=True, width=120))
        code, _, _ = triage(str(INBOX), *args)
        assert code == 0
        return set(re.findall(r"\b\d+/(\d+)\b", re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "",
                                                        screen.getvalue())))

    assert progress_totals("--limit", "2") == {"2"}
    # Two emails are recorded now: they do not count against the limit, so the total grows
    # from 3 to 5 as they come back, and never shows all 16 emails of the inbox.
    totals = progress_totals("--limit", "3")
    assert "5" in totals and totals <= {"3", "4", "5"}
