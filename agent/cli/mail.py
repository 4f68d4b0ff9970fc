"""`mediavault mail ...`: a real mailbox in (IMAP watch) and approved replies out (SMTP)."""

from __future__ import annotations

import fcntl
import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mediavault.agent.cli.errors import context_for, fail, printable
from mediavault.agent.cli.options import DbOption, HomeOption, ModelOption, ReviewOption
from mediavault.agent.mail.imap_watch import MailboxError, watch_mailbox
from mediavault.agent.mail.mail_accounts import (
    PROCESSED_HELP,
    imap_account_from_env,
    smtp_account_from_env,
)
from mediavault.agent.mail.mail_ledger import LEDGER_FILE, MailLedger
from mediavault.agent.mail.mailboxes import ReadOptions
from mediavault.agent.mail.smtp_dispatch import (
    SubmissionError,
    approved_replies,
    dispatch_replies,
    resolve_unknown,
)
from mediavault.graph.context import ConfigurationError

mail_app = typer.Typer(help="Read a real mailbox over IMAP and send approved replies over SMTP.",
                       no_args_is_help=True)


def ledger_for(home: Path) -> MailLedger:
    """The mail ledger of a home."""
    return MailLedger(home / LEDGER_FILE)


ImapHost = Annotated[str | None, typer.Option("--imap-host", help="MEDIAVAULT_IMAP_HOST.")]
ImapPort = Annotated[int | None, typer.Option("--imap-port", help="MEDIAVAULT_IMAP_PORT.")]
ImapUser = Annotated[str | None, typer.Option("--imap-user", help="MEDIAVAULT_IMAP_USER.")]
ImapSecurity = Annotated[str | None, typer.Option(
    "--imap-security", help="tls (default) or starttls (MEDIAVAULT_IMAP_SECURITY).")]
CaFile = Annotated[Path | None, typer.Option(
    "--ca-file", help="A private CA to trust as well (MEDIAVAULT_MAIL_CA_FILE).")]


@mail_app.command("watch")
def watch_command(
    home: HomeOption = None,
    db: DbOption = None,
    model: ModelOption = None,
    review: ReviewOption = None,
    imap_host: ImapHost = None,
    imap_port: ImapPort = None,
    imap_user: ImapUser = None,
    imap_security: ImapSecurity = None,
    folder: Annotated[str | None, typer.Option(
        "--folder", help="Folder to watch (MEDIAVAULT_IMAP_FOLDER, default INBOX).")] = None,
    processed: Annotated[str | None, typer.Option(
        "--processed", help=f"Mark processed mail: {PROCESSED_HELP}.")] = None,
    ca_file: CaFile = None,
    authserv_id: Annotated[list[str] | None, typer.Option(
        "--authserv-id", help="The receiving server whose Authentication-Results count "
        "(repeatable); without one, senders are unverified.")] = None,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1,
                                              help="Stop after this many messages.")] = None,
    poll: Annotated[float, typer.Option("--poll", min=1.0, help="Seconds between checks when "
                                        "the server has no IDLE.")] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Triage new mail in an IMAP folder, each message once; flag or move it afterwards.

    The password comes from MEDIAVAULT_IMAP_PASSWORD (or _PASSWORD_FILE), never a flag.
    """
    context = context_for(home, db=db, model=model, review=review)
    try:
        account = imap_account_from_env(host=imap_host, port=imap_port, user=imap_user,
                                        security=imap_security, folder=folder,
                                        processed=processed, ca_file=ca_file)
    except ConfigurationError as problem:
        fail(str(problem))
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    if not once:
        signal.signal(signal.SIGTERM, _stop)
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    ledger = ledger_for(context.home)
    try:
        summary = watch_mailbox(
            account, context, ledger=ledger,
            read_options=ReadOptions(authserv_ids=tuple(a.lower() for a in authserv_id or ())),
            once=once, limit=limit, poll_seconds=poll, stop=stop,
            progress=None if as_json else (lambda line: console.print(Text(printable(line)))))
    except MailboxError as problem:
        fail(str(problem))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    finally:
        ledger.close()
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), indent=2))
        return
    typer.echo(f"triaged {summary.triaged}, already recorded {summary.already_recorded}, "
               f"problems {summary.problems}, bounces {summary.bounces}, "
               f"reconnects {summary.reconnects}")


@mail_app.command("send")
def send_command(
    home: HomeOption = None,
    smtp_host: Annotated[str | None, typer.Option("--smtp-host",
                                                  help="MEDIAVAULT_SMTP_HOST.")] = None,
    smtp_port: Annotated[int | None, typer.Option("--smtp-port",
                                                  help="MEDIAVAULT_SMTP_PORT.")] = None,
    smtp_user: Annotated[str | None, typer.Option("--smtp-user",
                                                  help="MEDIAVAULT_SMTP_USER.")] = None,
    smtp_security: Annotated[str | None, typer.Option(
        "--smtp-security", help="starttls (default) or tls (MEDIAVAULT_SMTP_SECURITY).")] = None,
    sent_copy: Annotated[bool, typer.Option(
        "--sent-copy/--no-sent-copy", help="File a copy in the IMAP Sent folder and look there "
        "when settling an interrupted send (needs the MEDIAVAULT_IMAP_* settings).")] = True,
    ca_file: CaFile = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1,
                                              help="Send at most this many replies.")] = None,
    every: Annotated[float | None, typer.Option(
        "--every", min=1.0, help="Keep running as the dispatcher: send new approvals every "
        "this many seconds until stopped (SIGTERM or Ctrl+C).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Send every approved reply once over SMTP (STARTTLS or TLS), recorded in the ledger.

    The password comes from MEDIAVAULT_SMTP_PASSWORD (or _PASSWORD_FILE), never a flag. One
    dispatcher runs per home at a time (a lock file enforces it).
    """
    context = context_for(home)
    try:
        smtp = smtp_account_from_env(host=smtp_host, port=smtp_port, user=smtp_user,
                                     security=smtp_security, ca_file=ca_file)
        imap = imap_account_from_env(ca_file=ca_file) if sent_copy else None
    except ConfigurationError as problem:
        fail(str(problem))
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    stop = threading.Event()
    if every is not None:
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    with _dispatcher_lock(context.home):
        ledger = ledger_for(context.home)
        try:
            while True:
                summary = dispatch_replies(
                    approved_replies(context), smtp, ledger=ledger, imap=imap, limit=limit,
                    progress=None if as_json else (
                        lambda line: console.print(Text(printable(line)))))
                if every is None or stop.wait(every):
                    break
        except SubmissionError as problem:
            fail(str(problem))
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        finally:
            ledger.close()
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), indent=2))
        return
    states = ", ".join(f"{state} {count}" for state, count in sorted(summary.states.items()))
    typer.echo(f"sent: {states or 'nothing to send'}")
    for message_id in summary.held:
        typer.echo(f"held for a person: {message_id} (see `mediavault mail resolve --help`)")


@contextmanager
def _dispatcher_lock(home: Path) -> Iterator[None]:
    """One dispatcher per home: two would read the same ledger row as queued and both send."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / "mail_dispatch.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fail(f"another `mediavault mail send` is running on {home}")
        yield


@mail_app.command("status")
def status_command(
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Every reply in the mail ledger with its state and the server's last answer."""
    context = context_for(home)
    ledger = ledger_for(context.home)
    try:
        records = ledger.sends()
    finally:
        ledger.close()
    if as_json:
        typer.echo(json.dumps([{"message_id": r.message_id, "email_id": r.email_id,
                                "recipient": r.recipient, "state": r.state,
                                "attempts": r.attempts, "response": r.response,
                                "updated_at": r.updated_at.isoformat()} for r in records],
                              indent=2))
        return
    table = Table("Email", "Recipient", "State", "Attempts", "Server's answer")
    for r in records:
        table.add_row(printable(r.email_id), printable(r.recipient), r.state, str(r.attempts),
                      printable(r.response or ""))
    Console(highlight=False, soft_wrap=not Console().is_terminal).print(table)


@mail_app.command("resolve")
def resolve_command(
    message_id: Annotated[str, typer.Argument(help="The reply's Message-ID, as in `status`.")],
    delivered: Annotated[bool, typer.Option(
        "--sent/--resend", help="--sent: the customer got it; --resend: send it again.")],
    home: HomeOption = None,
) -> None:
    """Settle a reply left `unknown` by a crash during sending (the one undecidable window)."""
    context = context_for(home)
    ledger = ledger_for(context.home)
    try:
        record = resolve_unknown(ledger, message_id, sent=delivered)
    except (KeyError, ValueError) as problem:
        fail(str(problem.args[0]))
    finally:
        ledger.close()
    typer.echo(f"{record.message_id}: {record.state}")
