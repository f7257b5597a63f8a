"""A real IMAP server for tests: a private Dovecot on free ports, its certificate from trustme.

``running_dovecot(folder)`` starts ``dovecot -F -c CONFIG`` as a subprocess
with its config, log, certificate and passwd-file in ``folder``, plain IMAP
(and STARTTLS) on ``port`` and IMAP over TLS on ``tls_port``, both on
127.0.0.1; the certificate names ``localhost`` only, so connecting to
127.0.0.1 with TLS is a name mismatch. Each ``add_user()`` is a fresh
account with an empty mailbox (one of ``ACCOUNTS`` made at start), so one server serves a module's tests
without one test seeing another's mail. Options make servers of other kinds: ``capability`` replaces
what Dovecot announces after login (a server without MOVE or UIDPLUS), and
``separator``/``prefix`` give a Courier-style namespace ("INBOX." and ".").

Dovecot refuses to run its login processes or to access mail as root, so
when the tests run as root those run as ``nobody``, and the mailboxes live
in a short-named folder under the system's temporary folder that ``nobody``
can enter (pytest's own is private to root; socket paths must also stay
under 108 characters). Not installed: skipped, or failed under CI=true.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trustme
from imapclient import IMAPClient

from .conftest import debian_tool
from .smtpd import free_port

ACCOUNTS = 100  # made at start: Dovecot looks at a changed passwd-file at most once a second

CONFIG = """\
# A private Dovecot for rebook's tests: nothing here touches the system's.
base_dir = {run}
state_dir = {state}
log_path = {log}
info_log_path = {log}
instance_name = rebook-test-{port}
protocols = imap
listen = 127.0.0.1
default_internal_user = {internal_user}
default_login_user = {login_user}
first_valid_uid = 1
last_valid_uid = 0
mail_location = maildir:{mail}/%u
namespace inbox {{
  inbox = yes
  separator = {separator}
  prefix = {prefix}
}}
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {passwd}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail}/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {tls_port}
    ssl = yes
  }}
}}
{extra}
"""


@dataclass
class Account:
    """One mailbox on the server, and the test's own IMAP connection to fill and inspect it."""

    server: Dovecot
    user: str
    password: str

    def client(self) -> IMAPClient:
        client = IMAPClient(self.server.host, self.server.port, ssl=False, timeout=30)
        client.login(self.user, self.password)
        return client

    def box_options(self, **options) -> dict:
        """Keyword arguments for ``ImapBox``: plain IMAP to this account unless overridden."""
        where = {"host": self.server.host, "port": self.server.port, "security": "none"}
        return {**where, "user": self.user, "password": self.password, **options}

    def append(self, *messages: bytes, folder: str = "INBOX", flags=()) -> list[int]:
        """APPEND each message; their UIDs, in order."""
        uids = []
        with self.client() as client:
            for start in range(0, len(messages), 500):
                chunk = messages[start : start + 500]
                if client.has_capability("MULTIAPPEND"):
                    items = [{"msg": raw, "flags": flags} for raw in chunk]
                    uids.extend(_appended(client.multiappend(folder, items)))
                else:
                    for raw in chunk:
                        uids.extend(_appended(client.append(folder, raw, flags=flags)))
        return uids

    def flags(self, folder: str = "INBOX") -> dict[int, set[bytes]]:
        """UID -> flags of every message in ``folder`` (read without changing anything)."""
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            found = client.fetch(client.search("ALL"), ["FLAGS"])
            return {uid: set(data[b"FLAGS"]) - {b"\\Recent"} for uid, data in found.items()}

    def messages(self, folder: str = "INBOX") -> dict[int, bytes]:
        """UID -> the message as stored, read with PEEK; none when there is no such folder."""
        with self.client() as client:
            if not client.folder_exists(folder):
                return {}
            client.select_folder(folder, readonly=True)
            found = client.fetch(client.search("ALL"), ["BODY.PEEK[]"])
            return {uid: data[b"BODY[]"] for uid, data in found.items()}

    def folders(self) -> list[str]:
        with self.client() as client:
            return sorted(name for _, _, name in client.list_folders())


@dataclass
class Dovecot:
    folder: Path
    mail: Path
    port: int
    tls_port: int
    ca_file: Path
    process: subprocess.Popen
    accounts: list[tuple[str, str]]  # (user, password) in the passwd-file
    host: str = "127.0.0.1"
    users: list[str] = field(default_factory=list)  # handed out

    def add_user(self) -> Account:
        """The next of the accounts made at start: a mailbox no other test has used."""
        user, password = self.accounts[len(self.users)]
        self.users.append(user)
        return Account(self, user, password)

    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def running_dovecot(
    folder: Path, *, capability: str | None = None, separator: str = "/", prefix: str = ""
) -> Iterator[Dovecot]:
    """A Dovecot serving from ``folder`` until the block ends; see the module's docstring."""
    program = shutil.which("dovecot", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    program = program or debian_tool("dovecot")
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    certificate = ca.issue_cert("localhost")
    certificate.private_key_pem.write_to_path(str(folder / "key.pem"))
    (folder / "cert.pem").write_bytes(b"".join(pem.bytes() for pem in certificate.cert_chain_pems))
    accounts = [(f"clinic{n}", secrets.token_urlsafe(12)) for n in range(1, ACCOUNTS + 1)]
    (folder / "passwd").write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in accounts))
    (folder / "passwd").chmod(0o644)
    short = Path(tempfile.mkdtemp(prefix="rebook-dovecot-"))
    short.chmod(0o755)
    mail, run = short / "mail", short / "run"
    mail.mkdir()
    internal_user, login_user, uid, gid = _accounts()
    os.chown(mail, uid, gid)
    port, tls_port = free_port(), free_port()
    extra = f"imap_capability = {capability}" if capability is not None else ""
    config = folder / "dovecot.conf"
    config.write_text(
        CONFIG.format(
            run=run, state=short / "state", log=folder / "dovecot.log", port=port,
            tls_port=tls_port, internal_user=internal_user, login_user=login_user, mail=mail,
            separator=separator, prefix=prefix, cert=folder / "cert.pem", key=folder / "key.pem",
            passwd=folder / "passwd", uid=uid, gid=gid, extra=extra,
        )
    )  # fmt: skip
    with open(folder / "dovecot.stderr", "wb") as stderr:
        process = subprocess.Popen(
            [program, "-F", "-c", str(config)],
            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
        )  # fmt: skip
    server = Dovecot(folder, mail, port, tls_port, folder / "ca.pem", process, accounts)
    try:
        _wait_until_listening(server)
        yield server
    finally:
        _stop(process)
        shutil.rmtree(short, ignore_errors=True)


def _accounts() -> tuple[str, str, int, int]:
    """Dovecot's internal and login users, and the uid/gid mail is accessed as."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        return me.pw_name, me.pw_name, me.pw_uid, me.pw_gid
    nobody = pwd.getpwnam("nobody")
    return "root", "nobody", nobody.pw_uid, nobody.pw_gid


def _wait_until_listening(server: Dovecot) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            stderr = (server.folder / "dovecot.stderr").read_text(errors="replace")
            raise RuntimeError(f"dovecot exited at start:\n{stderr}\n{server.log()}")
        try:
            for port in (server.port, server.tls_port):
                socket.create_connection((server.host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"dovecot did not listen within 15 s:\n{server.log()}")


def _stop(process: subprocess.Popen) -> None:
    """Stop the Dovecot this module started: its master, which stops its own children."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _appended(answer) -> list[int]:
    """The UIDs of an APPEND's "[APPENDUID validity 4:6]" (or "4,5,6") answer."""
    text = answer.decode() if isinstance(answer, bytes) else str(answer)
    ranges = text.split("APPENDUID", 1)[1].split("]", 1)[0].split()[1]
    uids = []
    for part in ranges.split(","):
        first, _, last = part.partition(":")
        uids.extend(range(int(first), int(last or first) + 1))
    return uids
