"""Reading a CSV inbox, and the sample inbox with its expected outcomes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sakila_paths import REPO_ROOT

from mediavault.agent.mail.csv_inbox import InboxFormatError, read_inbox_csv
from mediavault.graph.inbound_email import MAX_BODY_CHARS
from mediavault.policies import policy_rules
from mediavault.tools.business_db.demo_database import DEMO_SCENARIOS

HEADER = "email_id,received_at,from,subject,body\r\n"
SAMPLE_INBOX = REPO_ROOT / "examples" / "inbox.csv"
SAMPLE_EXPECTED = REPO_ROOT / "examples" / "inbox_expected.json"


def write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "inbox.csv"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_reads_quoted_multiline_bodies_and_display_names(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER + 'e1,2026-03-01T09:00:00Z,"""Bell, Marcus"" <Marcus.Bell@Example.org>",Hi,'
        '"Line one,\r\nline ""two""\r\n"\r\n',
    )
    result = read_inbox_csv(path)
    assert result.errors == []
    (email,) = result.emails
    assert email.sender == "marcus.bell@example.org"
    assert email.sender_name == "Bell, Marcus"
    assert email.body == 'Line one,\nline "two"\n'
    assert email.received_at == datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert email.in_reply_to is None and email.input_flags == ()


def test_malformed_rows_are_reported_by_line_and_the_rest_are_read(tmp_path: Path) -> None:
    content = (
        HEADER  # line 1
        + 'ok-1,2026-03-01T09:00:00Z,a@example.com,Hi,"two\r\nlines"\r\n'  # lines 2-3
        + "bad-date,01/03/2026,a@example.com,Hi,body\r\n"  # line 4
        + "\r\n"  # line 5: blank, skipped
        + "bad-from,2026-03-01T09:00:00Z,not an address,Hi,body\r\n"  # line 6
        + ",2026-03-01T09:00:00Z,a@example.com,Hi,body\r\n"  # line 7: no id
        + "ok-1,2026-03-01T10:00:00Z,b@example.com,Again,body\r\n"  # line 8: duplicate id
        + "short,2026-03-01T09:00:00Z,a@example.com\r\n"  # line 9: too few fields
        + 'quote,2026-03-01T09:00:00Z,a@example.com,"Hi"there,body\r\n'  # line 10
        + "ok-2,2026-03-01 11:30,c@example.com,Bye,body\r\n"  # line 11: naive time
    )
    result = read_inbox_csv(write(tmp_path, content))
    assert [e.email_id for e in result.emails] == ["ok-1", "ok-2"]
    assert result.emails[1].received_at == datetime(2026, 3, 1, 11, 30, tzinfo=UTC)
    reasons = {error.row_number: error.reason for error in result.errors}
    assert sorted(reasons) == [4, 6, 7, 8, 9, 10]
    assert "received_at" in reasons[4] and "01/03/2026" in reasons[4]
    assert "not an e-mail address" in reasons[6]
    assert "missing email_id" in reasons[7]
    assert "duplicate email_id 'ok-1'" in reasons[8] and "line 2" in reasons[8]
    assert "3 fields" in reasons[9]
    assert "malformed CSV" in reasons[10]


def test_a_missing_required_column_rejects_the_whole_file(tmp_path: Path) -> None:
    path = write(
        tmp_path, "email_id,received_at,from,body\r\ne1,2026-03-01T09:00:00Z,a@x.org,b\r\n"
    )
    with pytest.raises(InboxFormatError, match=r"missing required column.*subject"):
        read_inbox_csv(path)
    with pytest.raises(InboxFormatError, match="empty"):
        read_inbox_csv(write(tmp_path, ""))


def test_header_is_forgiving_and_extra_columns_are_ignored(tmp_path: Path) -> None:
    content = (
        "\ufeff Email_ID ,Received_At,FROM,Subject,Body,In_Reply_To,Priority\r\n"
        "e1,2026-03-01T09:00:00+01:00,a@example.com,Re: hi,thanks,<m1@mediavault.example>,high\r\n"
    )
    (email,) = read_inbox_csv(write(tmp_path, content)).emails
    assert email.in_reply_to == "<m1@mediavault.example>"
    assert email.received_at == datetime(2026, 3, 1, 8, tzinfo=UTC)


def test_non_utf8_bytes_are_replaced_and_flagged_on_that_email_only(tmp_path: Path) -> None:
    content = (
        HEADER.encode()
        + b'e1,2026-03-01T09:00:00Z,a@example.com,Caf\xe9,"Cr\xe8me\r\nbr\xfbl\xe9e"\r\n'
        + "e2,2026-03-01T09:00:00Z,b@example.com,Café,Crème brûlée\r\n".encode()
    )
    result = read_inbox_csv(write(tmp_path, content))
    assert result.errors == []
    first, second = result.emails
    assert first.input_flags == ("non_utf8",)
    assert first.subject == "Caf\ufffd" and first.body == "Cr\ufffdme\nbr\ufffdl\ufffde"
    assert second.input_flags == ()
    assert second.body == "Crème brûlée"


def test_an_oversized_body_is_truncated_and_flagged(tmp_path: Path) -> None:
    body = "x" * (MAX_BODY_CHARS + 500)
    (email,) = read_inbox_csv(
        write(tmp_path, HEADER + f"e1,2026-03-01T09:00:00Z,a@example.com,Hi,{body}\r\n")
    ).emails
    assert email.input_flags == ("truncated",)
    assert email.body.startswith("x" * MAX_BODY_CHARS)
    assert "500 characters omitted" in email.body


def test_reading_a_truncated_email_back_leaves_it_as_it_was(tmp_path: Path) -> None:
    # Stored and queued emails are validated again when read: the cap must be a fixed point.
    from mediavault.graph.inbound_email import InboundEmail

    body, subject = "x" * (MAX_BODY_CHARS + 500), "Hi " * 200
    (email,) = read_inbox_csv(
        write(tmp_path, HEADER + f"e1,2026-03-01T09:00:00Z,a@example.com,{subject},{body}\r\n")
    ).emails
    again = InboundEmail.model_validate(email.model_dump(mode="json"))
    assert again == email
    assert again.body.count("characters omitted") == 1
    assert "\n" not in again.subject and again.subject.endswith("characters omitted ...]")


def test_a_customer_cannot_stretch_the_cap_with_a_forged_marker() -> None:
    from mediavault.graph.inbound_email import TRUNCATION_MARKER, InboundEmail

    forged = "x" * (MAX_BODY_CHARS + 10) + TRUNCATION_MARKER.format(dropped=1)
    email = InboundEmail.from_fields(email_id="e1", received_at="2026-03-01T09:00:00Z",
                                     body=forged, **{"from": "a@example.com"})
    assert len(email.body) <= MAX_BODY_CHARS + len(TRUNCATION_MARKER) + 10
    assert email.body.endswith(TRUNCATION_MARKER.format(dropped=len(forged) - MAX_BODY_CHARS))


# ---------------------------------------------------------------------------- sample inbox


def test_the_sample_inbox_reads_cleanly() -> None:
    result = read_inbox_csv(SAMPLE_INBOX)
    assert result.errors == []
    assert len(result.emails) >= 14
    expected = json.loads(SAMPLE_EXPECTED.read_text())
    assert [email.email_id for email in result.emails] == list(expected)
    assert any(email.in_reply_to for email in result.emails)


def test_expected_outcomes_use_the_policy_vocabulary() -> None:
    rules = policy_rules()
    expected = json.loads(SAMPLE_EXPECTED.read_text())
    for email_id, outcome in expected.items():
        code, route = outcome["reason_code"], outcome["route"]
        assert code in rules.reason_codes, email_id
        assert route in {"draft", "escalate"}, email_id
        if rules.reason_codes[code] != "policy":  # "draft" or "escalate": always that route
            assert route == rules.reason_codes[code], email_id
        if route == "escalate":
            assert outcome["queue"] == rules.queue_for(code), email_id
        else:
            assert "queue" not in outcome, email_id
    routes = [outcome["route"] for outcome in expected.values()]
    assert routes.count("draft") >= 5 and routes.count("escalate") >= 4


def test_each_email_comes_from_its_scenarios_sender_and_names_its_films() -> None:
    expected = json.loads(SAMPLE_EXPECTED.read_text())
    for email in read_inbox_csv(SAMPLE_INBOX).emails:
        scenarios = [DEMO_SCENARIOS[name] for name in expected[email.email_id]["scenarios"]]
        senders = {s.email for s in scenarios if s.email}
        assert senders == {email.sender}, email.email_id
        text = f"{email.subject}\n{email.body}".upper()
        for scenario in scenarios:
            if scenario.film_title:
                assert scenario.film_title in text, (email.email_id, scenario.film_title)


def test_the_sample_inbox_covers_the_cases_the_demo_must_show() -> None:
    expected = json.loads(SAMPLE_EXPECTED.read_text())
    emails = {email.email_id: email for email in read_inbox_csv(SAMPLE_INBOX).emails}
    codes = [outcome["reason_code"] for outcome in expected.values()]
    for code in ("legal_threat", "account_change", "praise", "fee_waiver_request",
                 "rental_status", "billing_question", "late_fee_dispute", "catalog_question",
                 "refund_request"):  # fmt: skip
        assert code in codes, code
    assert codes.count("legal_threat") >= 2
    # A lawyer mentioned about a mortgage is not a legal threat against MediaVault.
    mortgage = [i for i, e in emails.items() if "mortgage" in e.body.lower()]
    assert len(mortgage) == 1 and "lawyer" in emails[mortgage[0]].body.lower()
    assert expected[mortgage[0]]["route"] == "draft"
    # Both sides of a late-fee dispute: late in the data (drafted), on time (escalated).
    disputes = {o["route"] for o in expected.values() if o["reason_code"] == "late_fee_dispute"}
    assert disputes == {"draft", "escalate"}
    non_customers = {s.email for s in DEMO_SCENARIOS.values() if s.customer is None and s.email}
    assert non_customers <= {email.sender for email in emails.values()}
