"""A real mailbox: Dovecot over IMAPS in, an SMTP submission relay into Dovecot out.

The servers run from throwaway folders on loopback (see ``mail_servers``). Customer mail is
delivered to the support mailbox over LMTP with the receiving server's Authentication-Results,
the agent watches that mailbox, a reviewer approves, the dispatcher sends, and the reply is read
back from the customer's own IMAP mailbox: exactly one, whatever was killed on the way.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any

import pytest
from mail_servers import PASSWORD, SUPPORT, Dovecot, SubmissionRelay, wait_until
from typer.testing import CliRunner

from mediavault.agent.api import ReviewDecision, resume
from mediavault.agent.mail.imap_watch import MailboxError, watch_mailbox
from mediavault.agent.mail.mail_accounts import ImapAccount, SmtpAccount
from mediavault.agent.mail.mail_ledger import MailLedger
from mediavault.agent.mail.mailboxes import ReadOptions
from mediavault.agent.mail.smtp_dispatch import approved_replies, dispatch_replies
from mediavault.agent.ops.pilot_metrics import reopened_cases
from mediavault.agent.stores.case_store import CaseStore
from mediavault.cli import app
from mediavault.graph.context import Context

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    # aiosmtpd reads its own deprecated attribute while authenticating.
    pytest.mark.filterwarnings("ignore:Session.login_data:DeprecationWarning"),
]

REPO = Path(__file__).resolve().parents[2]
AUTHSERV = "mx.mediavault.example"
#: Sample-inbox emails from customers on file: (email id, expected route).
ROUTINE = ("msg-003", "msg-006")  # praise, rental status: drafted
LEGAL = "msg-001"  # a legal threat: escalated


def _sample(email_id: str) -> dict[str, str]:
    with (REPO / "examples" / "inbox.csv").open(newline="", encoding="utf-8") as handle:
        return next(row for row in csv.DictReader(handle) if row["email_id"] == email_id)


def _address(row: dict[str, str]) -> str:
    return parseaddr(row["from"])[1].lower()


def _raw(row: dict[str, str], *, in_reply_to: str | None = None,
         message_id: str | None = None) -> bytes:
    message = EmailMessage()
    # The receiving server vouches for the sender (DMARC), as a real MX would.
    domain = _address(row).rpartition("@")[2]
    message["Authentication-Results"] = f"{AUTHSERV}; dmarc=pass header.from={domain}"
    message["From"] = row["from"]
    message["To"] = SUPPORT
    message["Subject"] = row["subject"]
    message["Date"] = format_datetime(datetime.fromisoformat(
        row["received_at"].replace("Z", "+00:00")))
    message["Message-ID"] = message_id or f"<{row['email_id']}@customers.example>"
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    message.set_content(row["body"])
    return message.as_bytes()


CUSTOMERS = tuple(_address(_sample(i)) for i in (*ROUTINE, LEGAL))


@pytest.fixture(scope="module")
def ca() -> Any:
    import trustme

    return trustme.CA()


@pytest.fixture
def dovecot(ca: Any) -> Iterator[Dovecot]:
    server = Dovecot.create((SUPPORT, *CUSTOMERS), ca).start()
    yield server
    server.remove()


@pytest.fixture
def relay(dovecot: Dovecot, ca: Any) -> Iterator[SubmissionRelay]:
    server = SubmissionRelay(dovecot, ca).start()
    yield server
    server.stop()


@pytest.fixture
def imap(dovecot: Dovecot) -> ImapAccount:
    return ImapAccount(host="127.0.0.1", port=dovecot.imaps_port, username=SUPPORT,
                       password=PASSWORD, ca_file=dovecot.ca_file)


@pytest.fixture
def smtp(relay: SubmissionRelay, dovecot: Dovecot) -> SmtpAccount:
    return SmtpAccount(host="127.0.0.1", port=relay.port, username=SUPPORT, password=PASSWORD,
                       ca_file=dovecot.ca_file)


@pytest.fixture
def context(mediavault_home: Path, demo_db_path: Path) -> Context:
    return Context(home=mediavault_home, db=str(demo_db_path), review="all")


@pytest.fixture
def ledger(context: Context) -> Iterator[MailLedger]:
    book = MailLedger(context.home / "mail_ledger.sqlite")
    yield book
    book.close()


def _env(dovecot: Dovecot, relay: SubmissionRelay | None, context: Context) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAVAULT_")}
    env.update({
        "MEDIAVAULT_HOME": str(context.home), "MEDIAVAULT_DB": str(context.db),
        "MEDIAVAULT_IMAP_HOST": "127.0.0.1", "MEDIAVAULT_IMAP_PORT": str(dovecot.imaps_port),
        "MEDIAVAULT_IMAP_USER": SUPPORT, "MEDIAVAULT_IMAP_PASSWORD": PASSWORD,
        "MEDIAVAULT_MAIL_CA_FILE": str(dovecot.ca_file),
    })
    if relay is not None:
        env.update({"MEDIAVAULT_SMTP_HOST": "127.0.0.1", "MEDIAVAULT_SMTP_PORT": str(relay.port),
                    "MEDIAVAULT_SMTP_USER": SUPPORT, "MEDIAVAULT_SMTP_PASSWORD": PASSWORD})
    return env


def _watch(imap: ImapAccount, context: Context, ledger: MailLedger, **kw: Any) -> Any:
    return watch_mailbox(imap, context, ledger=ledger,
                         read_options=ReadOptions(authserv_ids=(AUTHSERV,)), once=True, **kw)


def _replies_to(dovecot: Dovecot, customer: str) -> list[Any]:
    return [m for m in dovecot.messages(customer) if m["From"] and SUPPORT in m["From"]]


def test_a_mailbox_is_triaged_once_across_runs_and_marked_after_each_outcome(
    dovecot: Dovecot, imap: ImapAccount, context: Context, ledger: MailLedger
) -> None:
    for email_id in (*ROUTINE, LEGAL):
        dovecot.deliver(SUPPORT, _raw(_sample(email_id)))
    dovecot.deliver(SUPPORT, b"From: nobody\r\nSubject: broken\r\n\r\n")  # no body, no sender
    first = _watch(imap, context, ledger)
    assert (first.triaged, first.problems) == (3, 1)
    assert first.problem_details and "imap:" in first.problem_details[0][0]
    second = _watch(imap, context, ledger)
    assert (second.triaged, second.already_recorded, second.problems) == (0, 0, 0)

    store = CaseStore(context.cases_path)
    cases = {c.email_id: c for c in store.list_cases()}
    assert set(cases) == {f"{i}@customers.example" for i in (*ROUTINE, LEGAL)}
    assert cases[f"{LEGAL}@customers.example"].queue == "tier2_legal"
    # Sender verification came from the configured receiving server's header.
    assert all(c.customer_id is not None for c in cases.values())
    # Every message carries the processed keyword; none was marked \Seen by reading it.
    from imapclient import IMAPClient

    with IMAPClient("127.0.0.1", port=dovecot.imaps_port, ssl=True,
                    ssl_context=dovecot.client_context()) as client:
        client.login(SUPPORT, PASSWORD)
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags(client.search("ALL"))
    assert all(b"$MediaVaultTriaged" in f for f in flags.values())
    assert not any(b"\\Seen" in f for f in flags.values())


def test_mail_in_triage_approve_mail_out_and_the_customers_answer_joins_the_case(
    dovecot: Dovecot, relay: SubmissionRelay, imap: ImapAccount, smtp: SmtpAccount,
    context: Context, ledger: MailLedger,
) -> None:
    row = _sample("msg-006")
    customer = _address(row)
    dovecot.deliver(SUPPORT, _raw(row))
    assert _watch(imap, context, ledger).outcomes == {"awaiting_review": 1}
    email_id = "msg-006@customers.example"
    resume(email_id, ReviewDecision(type="approve", reviewer="sam"), context=context)

    sent = dispatch_replies(approved_replies(context), smtp, ledger=ledger, imap=imap)
    assert sent.states == {"sent": 1}
    replies = _replies_to(dovecot, customer)
    assert len(replies) == 1 and replies[0]["In-Reply-To"] == f"<{email_id}>"
    assert [m["Message-ID"] for m in dovecot.messages(SUPPORT, "Sent")] == [
        replies[0]["Message-ID"]]
    record = ledger.sends_for(email_id)[0]
    assert record.state == "sent" and record.response and record.response.startswith("250")
    # Running the dispatcher again sends nothing.
    assert dispatch_replies(approved_replies(context), smtp, ledger=ledger, imap=imap).states == {}
    assert len(_replies_to(dovecot, customer)) == 1

    answer = dict(row, subject="Re: " + row["subject"],
                  body="Thanks! And can I keep it one more day?",
                  received_at="2026-03-01T12:00:00Z")
    dovecot.deliver(SUPPORT, _raw(answer, in_reply_to=replies[0]["Message-ID"],
                                  message_id="<answer-1@customers.example>"))
    _watch(imap, context, ledger)
    store = CaseStore(context.cases_path)
    follow_up = store.get_case("answer-1@customers.example")
    assert follow_up is not None and follow_up.email is not None
    assert follow_up.email.in_reply_to == email_id  # joined to the case it answers
    assert "MediaVault Support wrote:" in follow_up.email.body  # the earlier exchange, quoted
    original = store.get_case(email_id)
    assert original is not None
    assert reopened_cases([original], [follow_up], window=timedelta(days=7))


def test_a_rejected_reply_is_recorded_and_never_retried_blindly(
    dovecot: Dovecot, relay: SubmissionRelay, imap: ImapAccount, smtp: SmtpAccount,
    context: Context, ledger: MailLedger,
) -> None:
    row = _sample("msg-003")
    relay.rejections[_address(row)] = "550 5.1.1 mailbox unavailable"
    dovecot.deliver(SUPPORT, _raw(row))
    _watch(imap, context, ledger)
    resume("msg-003@customers.example", ReviewDecision(type="approve"), context=context)
    first = dispatch_replies(approved_replies(context), smtp, ledger=ledger, imap=imap)
    assert first.states == {"rejected": 1}
    record = ledger.sends()[0]
    assert record.state == "rejected" and "550" in (record.response or "")
    again = dispatch_replies(approved_replies(context), smtp, ledger=ledger, imap=imap)
    assert again.states == {} and ledger.sends()[0].attempts == 1
    status = CliRunner().invoke(app, ["mail", "status", "--home", str(context.home), "--json"])
    assert status.exit_code == 0 and '"rejected"' in status.stdout
    # The refusal is on the case, where a reviewer looks.
    shown = CliRunner().invoke(app, ["cases", "show", "msg-003@customers.example",
                                     "--home", str(context.home)])
    assert "reply rejected by mail: 550 5.1.1 mailbox unavailable" in shown.stdout


def _run_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mediavault", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("hold_at", ["rcpt", "data"])
def test_a_dispatcher_killed_while_sending_never_sends_a_reply_twice(
    hold_at: str, dovecot: Dovecot, relay: SubmissionRelay, imap: ImapAccount,
    context: Context, ledger: MailLedger,
) -> None:
    row = _sample("msg-006")
    customer = _address(row)
    dovecot.deliver(SUPPORT, _raw(row))
    _watch(imap, context, ledger)
    resume("msg-006@customers.example", ReviewDecision(type="approve"), context=context)

    entered = threading.Event()
    release = threading.Event()

    def hold() -> None:
        entered.set()
        release.wait(30)

    if hold_at == "rcpt":
        relay.rejections.clear()
        original = relay.before_accept
        # Hold the transaction before DATA: the client dies with nothing delivered.
        relay.rcpt_hook = hold
    else:
        original = relay.before_accept
        relay.before_accept = hold  # the server has the whole message when the client dies
    env = _env(dovecot, relay, context)
    sender = _run_cli(["mail", "send"], env)
    assert entered.wait(60), sender.communicate(timeout=10)
    sender.send_signal(signal.SIGKILL)
    sender.wait(timeout=30)
    relay.before_accept = original
    relay.rcpt_hook = None
    release.set()
    time.sleep(0.5)  # a held DATA finishes delivering after the client died

    again = _run_cli(["mail", "send"], env)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    wait_until(lambda: len(_replies_to(dovecot, customer)) >= 1, 10)
    # Exactly one reply in the customer's real mailbox.
    assert len(_replies_to(dovecot, customer)) == 1
    record = ledger.sends()[0]
    if hold_at == "rcpt":
        assert record.state == "sent"  # requeued and sent once
    else:
        # The server may have taken it: held for a person, never resent automatically.
        assert record.state == "unknown" and "held for a person" in out
        resolved = CliRunner().invoke(app, ["mail", "resolve", record.message_id, "--sent",
                                            "--home", str(context.home)])
        assert resolved.exit_code == 0 and ledger.sends()[0].state == "sent"
        assert len(_replies_to(dovecot, customer)) == 1


def test_a_watch_killed_during_triage_resumes_and_each_email_gets_one_outcome(
    dovecot: Dovecot, relay: SubmissionRelay, context: Context, ledger: MailLedger,
) -> None:
    for email_id in (*ROUTINE, LEGAL):
        dovecot.deliver(SUPPORT, _raw(_sample(email_id)))
    env = _env(dovecot, relay, context) | {"MEDIAVAULT_REVIEW": "none"}
    watcher = _run_cli(["mail", "watch", "--once", "--authserv-id", AUTHSERV], env)
    # Kill it as soon as the first outcome is on record.
    wait_until(lambda: CaseStore(context.cases_path).count_by_status() != {}
               if context.cases_path.exists() else False, 120)
    watcher.send_signal(signal.SIGKILL)
    watcher.wait(timeout=30)
    rerun = _run_cli(["mail", "watch", "--once", "--authserv-id", AUTHSERV], env)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    sender = _run_cli(["mail", "send"], env)
    _, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    statuses = CaseStore(context.cases_path).count_by_status()
    assert sum(statuses.values()) == 3
    for email_id in ROUTINE:
        assert len(_replies_to(dovecot, _address(_sample(email_id)))) == 1
    assert _replies_to(dovecot, _address(_sample(LEGAL))) == []  # escalated, never answered


def test_a_server_restart_mid_watch_is_survived_and_the_watch_resumes(
    dovecot: Dovecot, imap: ImapAccount, context: Context, ledger: MailLedger,
) -> None:
    stop = threading.Event()
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(watch_mailbox(
        imap, context, ledger=ledger, read_options=ReadOptions(authserv_ids=(AUTHSERV,)),
        poll_seconds=1, max_backoff_seconds=2, stop=stop)), daemon=True)
    thread.start()
    dovecot.deliver(SUPPORT, _raw(_sample(ROUTINE[0])))
    store = CaseStore(context.cases_path)
    assert wait_until(lambda: context.cases_path.exists() and len(store.list_cases()) == 1, 120)
    dovecot.restart()
    dovecot.deliver(SUPPORT, _raw(_sample(ROUTINE[1])))
    assert wait_until(lambda: len(store.list_cases()) == 2, 120)
    stop.set()
    thread.join(timeout=60)
    assert results and results[0].reconnects >= 1 and results[0].triaged == 2


def test_tls_is_verified_and_wrong_credentials_say_so_without_the_password(
    dovecot: Dovecot, context: Context, ledger: MailLedger,
) -> None:
    untrusted = ImapAccount(host="127.0.0.1", port=dovecot.imaps_port, username=SUPPORT,
                            password=PASSWORD)  # no test CA: the certificate is not trusted
    with pytest.raises(MailboxError, match="not trusted"):
        watch_mailbox(untrusted, context, ledger=ledger, once=True)
    env = _env(dovecot, None, context) | {"MEDIAVAULT_IMAP_PASSWORD": "wrong-secret"}
    ran = _run_cli(["mail", "watch", "--once"], env)
    out, err = ran.communicate(timeout=120)
    assert ran.returncode == 2
    assert f"refused the login for {SUPPORT}@127.0.0.1" in err
    assert "wrong-secret" not in out + err and "Traceback" not in err


def test_a_bounce_that_comes_back_marks_the_reply_rejected_instead_of_being_triaged(
    dovecot: Dovecot, relay: SubmissionRelay, imap: ImapAccount, smtp: SmtpAccount,
    context: Context, ledger: MailLedger,
) -> None:
    row = _sample("msg-006")
    dovecot.deliver(SUPPORT, _raw(row))
    _watch(imap, context, ledger)
    resume("msg-006@customers.example", ReviewDecision(type="approve"), context=context)
    dispatch_replies(approved_replies(context), smtp, ledger=ledger, imap=imap)
    reply_id = ledger.sends()[0].message_id
    # The customer's server accepted it first, then bounced it: a delivery status report.
    raw = (
        "From: MAILER-DAEMON@customers.example\r\n"
        f"To: {SUPPORT}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-1@customers.example>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n"
        "\r\n--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered."
        "\r\n--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.customers.example\r\n\r\n"
        "Final-Recipient: rfc822; sofia@customers.example\r\nAction: failed\r\n"
        "Status: 5.2.2\r\nDiagnostic-Code: smtp; 552 mailbox full\r\n"
        "\r\n--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {reply_id}\r\nTo: sofia@customers.example\r\n"
        "\r\n--b1--\r\n"
    ).encode()
    dovecot.deliver(SUPPORT, raw)
    summary = _watch(imap, context, ledger)
    assert (summary.bounces, summary.triaged) == (1, 0)
    record = ledger.sends()[0]
    assert record.state == "rejected" and "5.2.2" in (record.response or "")
