"""Send approved replies over SMTP exactly once, with a ledger that survives crashes.

Only replies a reviewer (or the configured review mode) approved are sent: they are the ones
the graph wrote to the outbox and recorded on their case. Each reply is keyed in the mail ledger
by its Message-ID (derived from the case, the same on every run) and moves

    queued -> sending -> data -> sent

with each state committed before the step it announces:
- ``sending``: MAIL FROM and RCPT TO are under way. A crash here is harmless: the server drops a
  transaction whose DATA never completed, so the reply goes back to ``queued``.
- ``data``: the message is being transferred. A crash here is the one window that cannot be
  decided from our side: the server may have accepted the message just before the process died.
  The next run looks for the Message-ID in the account's Sent folder over IMAP (servers such as
  Gmail and Microsoft 365 file submitted mail there themselves); found means ``sent``. Otherwise
  the reply becomes ``unknown`` and is **not** resent automatically: a person checks (the
  customer's thread, the server's logs) and runs ``mediavault mail resolve MESSAGE_ID --sent``
  or ``--resend``. A customer may wait for that decision; they never get the reply twice.
- ``sent``: the server's acceptance (its reply line) is recorded, then a copy is appended to the
  Sent folder (IMAP APPEND).
A permanent refusal (5xx) makes the reply ``rejected``, recorded with the server's words and
never retried blindly; a temporary one (4xx, a lost connection) makes it ``deferred`` and the
next run retries it. Bounces that come back later are recorded by the IMAP watch.

Uses the standard library's smtplib (STARTTLS or implicit TLS, verified certificates).
"""

from __future__ import annotations

import smtplib
import ssl
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email import message_from_bytes
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from mediavault.agent.mail.mail_accounts import ImapAccount, SmtpAccount
from mediavault.agent.mail.mail_ledger import MailLedger, SendRecord, SendState


class SubmissionError(RuntimeError):
    """The SMTP server cannot be used (wrong credentials, no TLS): retrying will not help."""


@dataclass(frozen=True)
class ApprovedReply:
    """An approved reply waiting in the outbox, as recorded on its case."""

    email_id: str
    message_id: str
    path: Path


@dataclass
class DispatchSummary:
    """What one dispatch did, by final state of each reply it touched."""

    states: Counter[str] = field(default_factory=Counter)
    reconciled: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"states": dict(self.states), "reconciled": self.reconciled,
                "held_for_a_person": self.held}


Progress = Callable[[str], None]


def dispatch_replies(
    replies: Iterable[ApprovedReply],
    smtp: SmtpAccount,
    *,
    ledger: MailLedger,
    imap: ImapAccount | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
) -> DispatchSummary:
    """Queue every approved reply once, settle interrupted sends, then send what is queued."""
    summary = DispatchSummary()
    paths: dict[str, Path] = {}
    for reply in replies:
        raw = reply.path.read_bytes()
        recipient = parseaddr(str(message_from_bytes(raw).get("To", "")))[1]
        ledger.queue(reply.message_id, reply.email_id, recipient)
        paths[reply.message_id] = reply.path
    _reconcile(ledger, imap, summary, progress)
    waiting = [r for r in ledger.sends("queued", "deferred") if r.message_id in paths]
    if limit is not None:
        waiting = waiting[:limit]
    if not waiting:
        return summary
    with _submission(smtp) as server:
        for record in waiting:
            state = _send_one(server, smtp, record, paths[record.message_id].read_bytes(),
                              ledger)
            summary.states[state] += 1
            if progress:
                progress(f"{record.message_id} -> {record.recipient}: {state}")
            if state == "sent" and imap is not None:
                _file_in_sent(imap, paths[record.message_id].read_bytes(), ledger, record)
    return summary


def resolve_unknown(ledger: MailLedger, message_id: str, *, sent: bool) -> SendRecord:
    """A person's decision on a reply left ``unknown``: it was delivered, or send it again."""
    record = ledger.send(message_id)
    if record is None:
        raise KeyError(f"no reply with Message-ID {message_id} in the mail ledger")
    if record.state != "unknown":
        raise ValueError(f"{message_id} is {record.state}, not unknown: nothing to resolve")
    ledger.move(message_id, "sent" if sent else "queued",
                response="resolved by a person: " + ("delivered" if sent else "resend"))
    updated = ledger.send(message_id)
    assert updated is not None
    return updated


def _reconcile(ledger: MailLedger, imap: ImapAccount | None, summary: DispatchSummary,
               progress: Progress | None) -> None:
    for record in ledger.sends("sending"):
        # DATA never completed: the server discarded the transaction.
        ledger.move(record.message_id, "queued", response="interrupted before DATA; requeued")
        summary.reconciled.append(record.message_id)
    interrupted = ledger.sends("data")
    if not interrupted:
        return
    found = _in_sent_folder(imap, [r.message_id for r in interrupted]) if imap else set()
    for record in interrupted:
        if record.message_id in found:
            ledger.move(record.message_id, "sent", response="reconciled: found in the Sent folder")
            summary.reconciled.append(record.message_id)
        else:
            ledger.move(record.message_id, "unknown",
                        response="interrupted while the server received it; not resent: "
                                 "resolve with `mediavault mail resolve`")
            summary.held.append(record.message_id)
            if progress:
                progress(f"{record.message_id}: held for a person (interrupted during DATA)")


@contextmanager
def _submission(smtp: SmtpAccount) -> Iterator[smtplib.SMTP]:
    context = smtp.tls_context()
    try:
        server: smtplib.SMTP
        if smtp.security == "tls":
            server = smtplib.SMTP_SSL(smtp.host, smtp.port, context=context, timeout=60)
        else:
            server = smtplib.SMTP(smtp.host, smtp.port, timeout=60)
            server.ehlo()
            server.starttls(context=context)
            server.ehlo()
        server.login(smtp.username, smtp.password)
    except smtplib.SMTPAuthenticationError as error:
        raise SubmissionError(f"the SMTP server refused the login for {smtp.username}@"
                              f"{smtp.host}:{smtp.port}: {error.smtp_code}") from None
    except smtplib.SMTPNotSupportedError:
        raise SubmissionError(f"{smtp.host}:{smtp.port} offers no STARTTLS; refusing to send "
                              "credentials in clear text") from None
    except (ssl.SSLError, ssl.CertificateError) as error:
        raise SubmissionError(f"TLS with {smtp.host}:{smtp.port} failed: {error}") from None
    except OSError as error:
        raise SubmissionError(f"cannot reach {smtp.host}:{smtp.port}: {error}") from None
    try:
        yield server
    finally:
        try:
            server.quit()
        except (smtplib.SMTPException, OSError):
            server.close()


def _send_one(server: smtplib.SMTP, smtp: SmtpAccount, record: SendRecord, raw: bytes,
              ledger: MailLedger) -> str:
    ledger.move(record.message_id, "sending", attempt=True)
    try:
        code, answer = server.mail(smtp.from_address)
        if code != 250:
            return _refused(ledger, record, code, answer, server)
        code, answer = server.rcpt(record.recipient)
        if code not in (250, 251):
            return _refused(ledger, record, code, answer, server)
        ledger.move(record.message_id, "data")
        code, answer = server.data(raw)
    except smtplib.SMTPServerDisconnected as error:
        state = ledger.send(record.message_id)
        if state is not None and state.state == "data":
            # Disconnected while the server had the message: it may have accepted it.
            ledger.move(record.message_id, "unknown", response=f"disconnected during DATA: "
                        f"{error}; not resent: resolve with `mediavault mail resolve`")
            return "unknown"
        ledger.move(record.message_id, "deferred", response=f"disconnected: {error}")
        return "deferred"
    except smtplib.SMTPResponseException as error:
        return _refused(ledger, record, error.smtp_code, error.smtp_error, server)
    if code == 250:
        ledger.move(record.message_id, "sent", response=f"{code} {_text(answer)}")
        return "sent"
    return _refused(ledger, record, code, answer, server)


def _refused(ledger: MailLedger, record: SendRecord, code: int, answer: bytes | str,
             server: smtplib.SMTP) -> str:
    with suppress(smtplib.SMTPException, OSError):
        server.rset()
    state: SendState = "rejected" if 500 <= code < 600 else "deferred"
    ledger.move(record.message_id, state, response=f"{code} {_text(answer)}")
    return state


def _text(answer: bytes | str) -> str:
    return (answer.decode("utf-8", "replace") if isinstance(answer, bytes) else answer)[:300]


def _in_sent_folder(imap: ImapAccount | None, message_ids: list[str]) -> set[str]:
    if imap is None:
        return set()
    from imapclient import IMAPClient

    found: set[str] = set()
    with IMAPClient(imap.host, port=imap.port, ssl=imap.security == "tls",
                    ssl_context=imap.tls_context(), timeout=30) as client:
        if imap.security == "starttls":
            client.starttls(imap.tls_context())
        client.login(imap.username, imap.password)
        client.select_folder(imap.sent_folder, readonly=True)
        for message_id in message_ids:
            if client.search(["HEADER", "Message-ID", message_id]):
                found.add(message_id)
    return found


def _file_in_sent(imap: ImapAccount, raw: bytes, ledger: MailLedger, record: SendRecord) -> None:
    from imapclient import IMAPClient

    try:
        with IMAPClient(imap.host, port=imap.port, ssl=imap.security == "tls",
                        ssl_context=imap.tls_context(), timeout=30) as client:
            if imap.security == "starttls":
                client.starttls(imap.tls_context())
            client.login(imap.username, imap.password)
            client.append(imap.sent_folder, raw, flags=[b"\\Seen"])
    except Exception as error:
        current = ledger.send(record.message_id)
        accepted = current.response if current is not None and current.response else "sent"
        ledger.move(record.message_id, "sent",
                    response=f"{accepted}; copy to {imap.sent_folder} failed: {error}")



def approved_replies(context: Any) -> list[ApprovedReply]:
    """Every approved reply of the context's case store that is in the outbox."""
    from mediavault.agent.stores.case_store_postgres import open_case_store

    store = open_case_store(context)
    replies = []
    for case in store.list_cases(status="approved"):
        if case.outbox is not None and Path(case.outbox.path).is_file():
            replies.append(ApprovedReply(case.email_id, case.outbox.message_id,
                                         Path(case.outbox.path)))
    return replies
