"""Watch a real mailbox over IMAP: each message triaged once, marked only after its outcome.

Messages are taken by UID. The (mailbox, UIDVALIDITY, UID) of each is recorded in the mail
ledger, so a message is triaged once across restarts and crashes; the email itself is keyed by
its Message-ID in the case store, so even a lost ledger cannot triage it twice. A message is
flagged (``$MediaVaultTriaged``) or moved only after its outcome is recorded, never before: a
crash in between leaves it unmarked, and the next pass finds its outcome already recorded and
only marks it.

Everything the file inboxes do holds here: sender verification from the configured receiving
server's Authentication-Results (``authserv_ids``), malformed messages recorded as problems and
marked so they do not come back, and a summary. A lost connection or a server restart is retried
with exponential backoff and the watch resumes where it stopped; a refused login is not retried
(it will not get better) and says which account, never which password.

Uses IMAPClient (maintained, IDLE, UIDs, verified TLS) rather than hand-written IMAP.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from typing import Any

from mediavault.agent.api import triage_email
from mediavault.agent.mail.mail_accounts import TRIAGED_KEYWORD, ImapAccount
from mediavault.agent.mail.mail_ledger import MailLedger
from mediavault.agent.mail.mailboxes import MailReadError, ReadOptions, email_from_bytes
from mediavault.agent.mail.threads import join_thread
from mediavault.graph.context import Context


class MailboxError(RuntimeError):
    """The mailbox cannot be used (wrong credentials, missing folder): retrying will not help."""


@dataclass
class WatchSummary:
    """What one watch did."""

    triaged: int = 0
    already_recorded: int = 0
    problems: int = 0
    bounces: int = 0
    reconnects: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    problem_details: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"triaged": self.triaged, "already_recorded": self.already_recorded,
                "problems": self.problems, "bounces": self.bounces,
                "reconnects": self.reconnects, "outcomes": dict(self.outcomes),
                "problem_details": [{"source": s, "problem": p} for s, p in
                                    self.problem_details]}


Progress = Callable[[str], None]

_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, ssl.SSLError, EOFError)


def watch_mailbox(
    account: ImapAccount,
    context: Context,
    *,
    ledger: MailLedger,
    read_options: ReadOptions | None = None,
    once: bool = False,
    limit: int | None = None,
    poll_seconds: float = 30.0,
    max_backoff_seconds: float = 60.0,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> WatchSummary:
    """Triage new mail in ``account``'s folder; with ``once``, one pass then return.

    Without ``once`` it waits for new mail (IDLE where the server supports it, else polling
    every ``poll_seconds``) until ``stop`` is set or ``limit`` messages were handled.
    """
    from imapclient.exceptions import IMAPClientError, LoginError

    summary = WatchSummary()
    stop = stop or threading.Event()
    options = read_options or ReadOptions()
    backoff = 1.0
    while not stop.is_set():
        try:
            with _connected(account) as imap:
                backoff = 1.0
                while not stop.is_set():
                    handled = _one_pass(imap, account, context, ledger, options, summary,
                                        _left(limit, summary), progress)
                    if once or _left(limit, summary) == 0:
                        return summary
                    if handled == 0:
                        _wait_for_mail(imap, poll_seconds, stop)
        except LoginError as error:
            raise MailboxError(f"the IMAP server refused the login for {account.label}: "
                               f"{_reason(error)}") from None
        except MailboxError:
            raise
        except ssl.SSLCertVerificationError as error:
            # An untrusted certificate will not become trusted by retrying.
            raise MailboxError(f"the TLS certificate of {account.host}:{account.port} is not "
                               f"trusted ({error.verify_message}); set MEDIAVAULT_MAIL_CA_FILE "
                               "for a private CA") from None
        except (*_CONNECTION_ERRORS, IMAPClientError) as error:
            summary.reconnects += 1
            if progress:
                progress(f"connection to {account.host}:{account.port} lost ({_reason(error)}); "
                         f"retrying in {backoff:g} s")
            if stop.wait(backoff):
                break
            backoff = min(backoff * 2, max_backoff_seconds)
    return summary


def _left(limit: int | None, summary: WatchSummary) -> int | None:
    if limit is None:
        return None
    return max(0, limit - summary.triaged - summary.already_recorded - summary.problems
               - summary.bounces)


@contextmanager
def _connected(account: ImapAccount) -> Iterator[Any]:
    from imapclient import IMAPClient

    imap = IMAPClient(account.host, port=account.port, ssl=account.security == "tls",
                      ssl_context=account.tls_context(), timeout=30)
    try:
        if account.security == "starttls":
            imap.starttls(account.tls_context())
        imap.login(account.username, account.password)
        yield imap
    finally:
        try:
            imap.logout()
        except Exception:
            imap.shutdown() if hasattr(imap, "shutdown") else None


def _one_pass(imap: Any, account: ImapAccount, context: Context, ledger: MailLedger,
              options: ReadOptions, summary: WatchSummary, left: int | None,
              progress: Progress | None) -> int:
    try:
        selected = imap.select_folder(account.folder)
    except Exception as error:
        if isinstance(error, _CONNECTION_ERRORS):
            raise
        raise MailboxError(f"cannot open folder {account.folder!r} on {account.label}: "
                           f"{_reason(error)}") from None
    uidvalidity = int(selected[b"UIDVALIDITY"])
    if account.move_to is None:
        uids = imap.search(["NOT", "KEYWORD", TRIAGED_KEYWORD])
    else:
        uids = imap.search("ALL")
    handled = 0
    for uid in sorted(uids):
        if left is not None and handled >= left:
            break
        handled += 1
        source = f"imap:{account.label};UIDVALIDITY={uidvalidity};UID={uid}"
        state = ledger.message_state(account.label, uidvalidity, uid)
        if state in ("triaged", "problem", "marked"):
            # The outcome is recorded; only the marking was lost (a crash, or a flag removed).
            summary.already_recorded += 1
            _mark(imap, account, uid)
            ledger.record_message(account.label, uidvalidity, uid, "marked")
            continue
        fetched = imap.fetch([uid], ["BODY.PEEK[]"])  # PEEK: reading does not set \Seen
        raw = fetched.get(uid, {}).get(b"BODY[]")
        if raw is None:  # expunged meanwhile by someone else
            continue
        bounced = _bounce_of(raw, ledger)
        if bounced is not None:
            summary.bounces += 1
            ledger.record_message(account.label, uidvalidity, uid, "problem",
                                  problem=f"bounce of {bounced}")
        else:
            try:
                email = email_from_bytes(raw, options, fallback_time=datetime.now(UTC))
            except MailReadError as error:
                summary.problems += 1
                summary.problem_details.append((source, f"{error.kind}: {error}"))
                ledger.record_message(account.label, uidvalidity, uid, "problem",
                                      problem=f"{error.kind}: {error}")
                if progress:
                    progress(f"skipped {source}: {error.kind}: {error}")
            else:
                email = join_thread(email, ledger, context)
                result = triage_email(email, context=context)
                if result.already_recorded:
                    summary.already_recorded += 1
                else:
                    summary.triaged += 1
                summary.outcomes[result.status] += 1
                ledger.record_message(account.label, uidvalidity, uid, "triaged",
                                      email_id=email.email_id)
                if progress:
                    progress(f"{email.email_id}: {result.status}"
                             + (f" ({result.queue})" if result.queue else ""))
        _mark(imap, account, uid)
        ledger.record_message(account.label, uidvalidity, uid, "marked")
    return handled


def _mark(imap: Any, account: ImapAccount, uid: int) -> None:
    destination = account.move_to
    if destination is None:
        imap.add_flags([uid], [TRIAGED_KEYWORD])
        return
    if imap.has_capability("MOVE"):
        imap.move([uid], destination)
    else:
        imap.copy([uid], destination)
        imap.delete_messages([uid])
        imap.uid_expunge([uid]) if imap.has_capability("UIDPLUS") else imap.expunge()


def _wait_for_mail(imap: Any, seconds: float, stop: threading.Event) -> None:
    if imap.has_capability("IDLE"):
        imap.idle()
        try:
            # Wake at least every few seconds to notice `stop`.
            deadline = time.monotonic() + seconds
            while not stop.is_set() and time.monotonic() < deadline:
                if imap.idle_check(timeout=min(5.0, seconds)):
                    break
        finally:
            imap.idle_done()
    else:
        stop.wait(seconds)


def _bounce_of(raw: bytes, ledger: MailLedger) -> str | None:
    """The Message-ID of one of our replies that this delivery report says bounced."""
    message = message_from_bytes(raw)
    if message.get_content_type() != "multipart/report":
        return None
    for part in message.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers",
                                       "message/rfc822-headers"):
            payload = part.get_payload()
            inner: Message | None = None
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                inner = payload[0]
            elif isinstance(payload, str):
                inner = message_from_bytes(payload.encode("utf-8", "replace"))
            message_id = inner.get("Message-ID", "").strip() if inner is not None else ""
            if message_id and ledger.send(message_id) is not None:
                ledger.move(message_id, "rejected",
                            response=f"bounced: {_status_line(message)}")
                return message_id
    return None


def _status_line(report: Message) -> str:
    for part in report.walk():
        if part.get_content_type() == "message/delivery-status":
            # The report is parsed as one header block per recipient (and one for the MTA).
            payload = part.get_payload()
            blocks = payload if isinstance(payload, list) else [message_from_bytes(
                str(payload).encode("utf-8", "replace"))]
            found = [f"{name}: {block[name]}" for block in blocks if isinstance(block, Message)
                     for name in ("Status", "Diagnostic-Code") if block[name]]
            if found:
                return "; ".join(found)
    return "delivery failed"


def _reason(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    if isinstance(error, socket.timeout):
        return "timed out"
    return text.replace("\n", " ")[:200]
