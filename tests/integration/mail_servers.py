"""Real mail servers for the tests: Dovecot (IMAP, LMTP) and an SMTP submission relay into it.

Dovecot comes from Debian's packages (`make mail-servers` installs it when missing) and runs
from a throwaway folder on loopback with its own configuration, certificates from a test CA
(trustme) and a password file; nothing of the machine's own mail setup is used. Outbound mail
is submitted to an aiosmtpd server (STARTTLS and AUTH required, like a real submission port)
that hands each message to Dovecot over LMTP, so a reply the agent sends lands in the
customer's real IMAP mailbox.

Tests import this module as ``mail_servers`` (the integration folder is on the path).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
PASSWORD = "correct horse battery staple"
#: The mail users: the support mailbox the agent watches, and customers it replies to.
SUPPORT = "support@mediavault.example"


def require_dovecot() -> str:
    """Dovecot's binary; a failure in CI (the install step is missing), a skip elsewhere."""
    if Path(DOVECOT).exists():
        return DOVECOT
    if os.environ.get("CI") == "true":
        pytest.fail("dovecot is missing: `make mail-servers` installs Debian's dovecot-imapd")
    pytest.skip("dovecot is not installed (run `make mail-servers` as root)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Dovecot:
    """A Dovecot instance in ``root``: IMAPS, IMAP with STARTTLS and LMTP on free ports."""

    root: Path
    users: tuple[str, ...]
    ca: Any  # trustme.CA
    imaps_port: int = field(default_factory=_free_port)
    imap_port: int = field(default_factory=_free_port)
    lmtp_port: int = field(default_factory=_free_port)

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.pem"

    @classmethod
    def create(cls, users: tuple[str, ...], ca: Any) -> Dovecot:
        """A new instance in a fresh folder that Dovecot's unprivileged processes can reach
        (pytest's own temporary folders are private to root)."""
        root = Path(tempfile.mkdtemp(prefix="mediavault-dovecot-"))
        root.chmod(0o755)
        return cls(root, users, ca)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def start(self) -> Dovecot:
        require_dovecot()
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        server_cert = self.ca.issue_cert("localhost", "127.0.0.1")
        server_cert.cert_chain_pems[0].write_to_path(str(self.root / "server.crt"))
        server_cert.private_key_pem.write_to_path(str(self.root / "server.key"))
        (self.root / "users").write_text(
            "".join(f"{user}:{{PLAIN}}{PASSWORD}::::::\n" for user in self.users))
        # Mail is stored as an unprivileged user: Dovecot refuses to deliver as root.
        nobody = 65534
        os.chown(self.root / "mail", nobody, nobody)
        (self.root / "dovecot.conf").write_text(_DOVECOT_CONF.format(
            root=self.root, uid=nobody, gid=nobody, imaps=self.imaps_port, imap=self.imap_port,
            lmtp=self.lmtp_port))
        self._run([DOVECOT, "-c", str(self.root / "dovecot.conf")])
        self._wait_for(self.imaps_port)
        self._wait_for(self.lmtp_port)
        return self

    def stop(self) -> None:
        pid_file = self.root / "run" / "master.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().strip() or 0)
        # Client connections are served by child processes that can outlive the master: a
        # real restart drops them, so they are stopped too.
        children = _descendants(pid)
        subprocess.run([DOVECOT, "-c", str(self.root / "dovecot.conf"), "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                       timeout=30)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self._run([DOVECOT, "-c", str(self.root / "dovecot.conf")])
        self._wait_for(self.imaps_port)

    def deliver(self, recipient: str, raw: bytes) -> None:
        """Put a message into ``recipient``'s INBOX over LMTP, as the mail system would."""
        self.deliver_many([recipient], raw)

    def deliver_many(self, recipients: list[str], raw: bytes) -> None:
        with smtplib.LMTP("127.0.0.1", self.lmtp_port) as lmtp:
            lmtp.sendmail("mailer@example.org", recipients, raw)

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def messages(self, user: str, folder: str = "INBOX") -> list[Any]:
        """Every message in ``user``'s folder, parsed (read with IMAPClient over TLS)."""
        from imapclient import IMAPClient

        with IMAPClient("127.0.0.1", port=self.imaps_port, ssl=True,
                        ssl_context=self.client_context()) as imap:
            imap.login(user, PASSWORD)
            imap.select_folder(folder, readonly=True)
            uids = imap.search("ALL")
            fetched = imap.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            return [message_from_bytes(fetched[uid][b"BODY[]"]) for uid in sorted(fetched)]

    def _run(self, command: list[str]) -> None:
        # The master daemonises: its output goes to a file, never to a pipe it would hold open.
        output = self.root / "dovecot.out"
        with output.open("ab") as sink:
            done = subprocess.run(command, stdout=sink, stderr=sink, stdin=subprocess.DEVNULL,
                                  check=False, timeout=60)
        if done.returncode != 0:
            log = self.root / "dovecot.log"
            raise RuntimeError(f"dovecot failed to start: {output.read_text()}\n"
                               f"{log.read_text() if log.exists() else ''}")

    @staticmethod
    def _wait_for(port: int) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"nothing listens on port {port}")


_DOVECOT_CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap lmtp
# A restart drops every client connection, like a real server restart.
shutdown_clients = yes
listen = 127.0.0.1
ssl = required
ssl_cert = <{root}/server.crt
ssl_key = <{root}/server.key
disable_plaintext_auth = yes
auth_mechanisms = plain login
first_valid_uid = {uid}
mail_location = maildir:{root}/mail/%u
lmtp_save_to_detail_mailbox = no
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
namespace inbox {{
  inbox = yes
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Processed {{
    auto = subscribe
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
  unix_listener lmtp {{
    mode = 0600
  }}
}}
service auth {{
  unix_listener auth-userdb {{
    mode = 0600
  }}
}}
"""


class SubmissionRelay:
    """An SMTP submission server (STARTTLS + AUTH) that delivers into Dovecot over LMTP.

    ``rcpt_hook`` and ``before_accept`` let a test hold the server at a point in the SMTP
    transaction (to kill the client there); ``rejections`` maps a recipient to the refusal the
    server answers; ``received`` lists every accepted Message-ID.
    """

    def __init__(self, dovecot: Dovecot, ca: Any) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.dovecot = dovecot
        self.port = _free_port()
        self.received: list[str] = []
        self.before_accept: Callable[[], None] = lambda: None
        self.rcpt_hook: Callable[[], None] | None = None
        self.rejections: dict[str, str] = {}
        cert = ca.issue_cert("localhost", "127.0.0.1")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(tls)
        relay = self

        class Handler:
            async def handle_RCPT(self, server: Any, session: Any, envelope: Any,
                                  address: str, options: list[str]) -> str:
                if relay.rcpt_hook is not None:
                    relay.rcpt_hook()
                if address in relay.rejections:
                    return relay.rejections[address]
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                relay.before_accept()
                raw = envelope.original_content or envelope.content
                dovecot.deliver_many(envelope.rcpt_tos, raw)
                relay.received.append(message_from_bytes(raw).get("Message-ID", ""))
                return "250 Message accepted for delivery"

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                          auth_data: Any) -> Any:
            ok = (getattr(auth_data, "login", b"") == SUPPORT.encode()
                  and getattr(auth_data, "password", b"") == PASSWORD.encode())
            return AuthResult(success=ok)

        self._controller = Controller(
            Handler(), hostname="127.0.0.1", port=self.port, tls_context=tls,
            require_starttls=True, authenticator=authenticator, auth_require_tls=True,
            decode_data=False)

    def start(self) -> SubmissionRelay:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (read from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in parents.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def wait_until(condition: Callable[[], bool], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()

