"""A real SMTP server for tests: aiosmtpd in a thread, with scripted misbehaviour.

``script[address]`` is a list of what to do, one entry per attempt to that
recipient: an SMTP reply such as ``"451 4.3.0 try later"`` or ``"550 5.1.1 no
such user"`` (given to RCPT), ``"DATA 554 5.6.0 rejected"`` (given to DATA),
``"drop"`` (close the connection) or ``"stall"`` (answer nothing for a while).
An address with no entries left is accepted.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    at: float = field(default_factory=time.monotonic)
    wall: float = field(default_factory=time.time)  # to compare with times another process logs

    @property
    def message(self):
        return email.message_from_bytes(self.data, policy=email.policy.default)


@dataclass
class ScriptedHandler:
    script: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    received: list[Received] = field(default_factory=list)
    data_delay: float = 0.0
    stall_seconds: float = 3.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    attempts: list[tuple[str, float]] = field(default_factory=list)  # (RCPT address, time.time())

    def _next(self, address: str) -> str | None:
        with self.lock:
            self.attempts.append((address.lower(), time.time()))
            steps = self.script.get(address.lower())
            return steps.pop(0) if steps else None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        step = self._next(address)
        if step == "drop":
            server.transport.close()
            return "421 4.4.2 closing"
        if step == "stall":
            await asyncio.sleep(self.stall_seconds)
        elif step and not step.startswith("DATA"):
            return step
        if step and step.startswith("DATA"):
            envelope.smtp_utf8 = False
            session.data_reply = step.removeprefix("DATA ")
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        reply = getattr(session, "data_reply", None)
        if reply:
            session.data_reply = None
            return reply
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
        return "250 2.0.0 queued"

    def addresses(self) -> list[str]:
        with self.lock:
            return [recipient for item in self.received for recipient in item.recipients]


class SmtpServer:
    """``credentials=(user, password)`` makes the server check that login (over plain TCP);
    ``login_required`` refuses mail without it (530); ``smtputf8`` offers SMTPUTF8.

    ``tls`` ("starttls" or "tls", implicit TLS from the first byte) serves the
    certificate of ``certificate`` (a server-side ``ssl.SSLContext``, see
    ``tls_certificate``)."""

    def __init__(
        self,
        credentials: tuple[str, str] | None = None,
        *,
        login_required: bool = False,
        smtputf8: bool = False,
        tls: str | None = None,
        certificate: ssl.SSLContext | None = None,
    ) -> None:
        self.handler = ScriptedHandler()
        self.port = free_port()
        self.logins: list[str] = []
        options: dict = {"enable_SMTPUTF8": smtputf8}
        if credentials is not None:
            options |= {"authenticator": self._check(credentials), "auth_require_tls": False,
                        "auth_required": login_required}  # fmt: skip
        if tls == "starttls":
            options["tls_context"] = certificate
        elif tls == "tls":
            options["ssl_context"] = certificate
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **options)

    def _check(self, credentials: tuple[str, str]):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        def authenticate(server, session, envelope, mechanism, auth_data):
            given = (
                (auth_data.login.decode(), auth_data.password.decode())
                if isinstance(auth_data, LoginPassword)
                else None
            )
            self.logins.append(given[0] if given else "?")
            # handled=False: aiosmtpd answers a refusal with 535 itself (its default,
            # handled=True, means "already answered" and leaves the client waiting)
            return AuthResult(success=given == credentials, handled=False)

        return authenticate

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


def tls_certificate(ca) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 and localhost signed by ``ca`` (trustme)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context
