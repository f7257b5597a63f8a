"""Sending through an SMTP relay: long-lived connections, a shared rate limit, replies sorted.

aiosmtplib raises one family of exceptions for every reply; what matters to
the ledger is the code and the stage: 2xx sent; 4xx (or a dropped
connection, or a timeout) deferred for a retry (a dropped connection, a
timeout, a 421 or a 4xx to the sender are the relay's trouble, not the
recipient's: retried until ``max_attempts``, then an ``error`` the next run
tries again, never a failure that spends the key); 550/551/553 to RCPT a hard
bounce (the address is suppressed); any other 5xx to RCPT or DATA failed for
that message only. A refusal of the sender or of the login (MAIL FROM, AUTH:
530, 535, 550 "sender not allowed") is rebook's own configuration, not the
client's: an ``error`` that the next run retries once the owner fixes it. So
is a relay certificate that does not verify: a wrong ``ca_file`` or host, or
someone in the middle, never the client.

With ``security`` "starttls" or "tls" the relay's certificate and name are
checked against the system's CAs, or against ``ca_file`` alone when a
private CA signs the relay's certificate; one ``SSLContext`` serves every
connection of the transport.
"""

from __future__ import annotations

import asyncio
import ssl

import aiosmtplib

from campaigns.config import Smtp
from campaigns.content.addresses import needs_smtputf8
from campaigns.delivery.ledger import BOUNCE_CODES
from campaigns.delivery.ratelimit import TokenBucket
from campaigns.delivery.transports.base import Outcome, Outgoing, TransportUnavailable

# A dropped connection or a timeout: defer, and connect again. (SMTPConnectError
# and the timeouts are OSError and TimeoutError subclasses too.)
_CONNECTION_LOST = (
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPTimeoutError,
    OSError,
    TimeoutError,
)


def certificate_problem(error: BaseException) -> str | None:
    """Why the relay's certificate was refused, if that is what ``error`` (or its cause) is."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or seen.reason or str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def classify(error: BaseException) -> tuple[Outcome, bool]:
    """The outcome of a failed send, and whether the connection must be made again."""
    if (problem := certificate_problem(error)) is not None:
        return Outcome("error", f"the relay's TLS certificate was refused: {problem}"), True
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused) and error.recipients:
        refused = error.recipients[0]
        closing = refused.code == 421  # the relay itself is going away, whatever the address
        return _by_code(refused.code, refused.message, recipient=True, ours=closing), closing
    if isinstance(error, aiosmtplib.SMTPSenderRefused | aiosmtplib.SMTPAuthenticationError):
        return _by_code(error.code, error.message, ours=True), error.code == 421
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return _by_code(error.code, error.message, ours=error.code == 421), error.code == 421
    if isinstance(error, aiosmtplib.SMTPNotSupported):  # a UTF-8 address, a relay without SMTPUTF8
        return Outcome("failed", f"the relay cannot take this address: {error}"), False
    if isinstance(error, _CONNECTION_LOST):
        reply = f"connection lost: {type(error).__name__}: {error}"
        return Outcome("deferred", reply, ours=True), True
    return Outcome("error", f"not sent: {type(error).__name__}: {error}"), True


def _by_code(code: int, message: str, *, recipient: bool = False, ours: bool = False) -> Outcome:
    """``ours``: the reply is about rebook's sender, login or the relay itself (421)."""
    reply = f"{code} {message}".strip()
    if 400 <= code < 500:
        return Outcome("deferred", reply, ours=ours)
    if ours and not recipient:
        return Outcome("error", f"the relay refused rebook's sender or login: {reply}")
    return Outcome("failed", reply, hard_bounce=recipient and code in BOUNCE_CODES)


class SmtpTransport:
    """``connections`` clients, each reused for message after message and reconnected when lost."""

    def __init__(self, config: Smtp) -> None:
        self.config = config
        self.slots = config.connections
        self._tls = _tls_context(config)
        self._clients = [self._client() for _ in range(self.slots)]
        self._bucket = TokenBucket(config.rate_limit) if config.rate_limit else None

    def _client(self) -> aiosmtplib.SMTP:
        config = self.config
        return aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password.get_secret_value() if config.password else None,
            use_tls=config.security == "tls",
            start_tls={"none": False, "starttls": True, "tls": False}[config.security],
            tls_context=self._tls,
            timeout=config.timeout.total_seconds(),
        )

    async def open(self) -> None:
        outcomes = await asyncio.gather(
            *(client.connect() for client in self._clients), return_exceptions=True
        )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if len(failures) == len(outcomes):
            await self.close()
            where = f"{self.config.host}:{self.config.port}"
            if (problem := certificate_problem(failures[0])) is not None:
                raise TransportUnavailable(
                    f"smtp: the TLS certificate of {where} was refused: {problem} "
                    f"(checked against {self._trusted()}; is smtp.host the name on the "
                    "certificate?)"
                )
            if isinstance(failures[0], aiosmtplib.SMTPAuthenticationError):
                raise TransportUnavailable(
                    f"smtp: {where} refused the login of smtp.username {self.config.username!r} "
                    f"(check REBOOK_SMTP__PASSWORD): {failures[0]}"
                )
            raise TransportUnavailable(f"smtp: cannot reach {where}: {failures[0]}")

    def _trusted(self) -> str:
        if self.config.ca_file is None:
            return "the system's certificate authorities"
        return f"the CA in smtp.ca_file {self.config.ca_file}"

    def share(self, fraction: float) -> None:
        if self._bucket is not None:
            self._bucket.share(fraction)

    async def send(self, message: Outgoing, slot: int) -> Outcome:
        client = self._clients[slot]
        if self._bucket is not None:
            await self._bucket.acquire()
        try:
            if not client.is_connected:
                await client.connect()
            options = ["SMTPUTF8"] if needs_smtputf8(message.recipient) else []
            _, reply = await client.sendmail(
                message.sender, [message.recipient], message.data, mail_options=options
            )
        except Exception as error:  # sorted by classify, whatever it is
            outcome, reconnect = classify(error)
            if reconnect:
                client.close()
                self._clients[slot] = self._client()
            return outcome
        return Outcome("sent", reply)

    async def close(self) -> None:
        for client in self._clients:
            if client.is_connected:
                try:
                    await asyncio.wait_for(client.quit(), timeout=5)
                except (TimeoutError, aiosmtplib.SMTPException, OSError):
                    client.close()


def _tls_context(config: Smtp) -> ssl.SSLContext | None:
    """Only the private CA of ``ca_file`` when set; otherwise aiosmtplib's (the system's CAs)."""
    if config.ca_file is None or config.security == "none":
        return None
    return ssl.create_default_context(cafile=str(config.ca_file))
