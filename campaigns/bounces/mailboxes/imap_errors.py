"""What went wrong with an IMAP server, in words the clinic's owner can act on.

imaplib and imapclient raise a handful of exception types whose text is
Python's (``b'[AUTHENTICATIONFAILED] ...'``, ``command: SELECT => ...``).
These turn them into a ``MailboxRefused`` (the owner must change something)
or a ``MailboxUnavailable`` (try again later), each naming the server and
user and saying what happened. None of them ever carries the password:
imaplib's messages hold the server's reply, never the command sent.
"""

from __future__ import annotations

import re
import socket
import ssl
from pathlib import Path

from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from campaigns.bounces.mailboxes.base import MailboxError, MailboxRefused, MailboxUnavailable

# Response codes (RFC 5530) of a refusal that waiting will not fix.
_REFUSED = re.compile(r"NOPERM|TRYCREATE|NONEXISTENT|CANNOT|LIMIT")


def failure(
    error: Exception, *, where: str, host: str, security: str, ca_file: Path | None,
    timeout: float,
) -> MailboxError:  # fmt: skip
    """A connection that failed or was lost: ``where`` is "IMAP host:port (user 'x')"."""
    if (problem := certificate_problem(error)) is not None:
        trusted = f"the CA in {ca_file}" if ca_file else "the system's CAs"
        return MailboxRefused(
            f"{where}: the server's TLS certificate was refused: {problem} (checked "
            f"against {trusted}; is {host!r} the name on the certificate?)"
        )
    if isinstance(error, ssl.SSLError):
        return MailboxRefused(
            f"{where}: the TLS handshake failed: {error.reason or error} (security "
            f'"{security}": "tls" is for the TLS port, usually 993, "starttls" '
            "for the plain one, 143)"
        )
    if isinstance(error, LoginError):
        return MailboxRefused(f"{where}: the login was refused: {said(error)}")
    if isinstance(error, socket.gaierror):
        return MailboxUnavailable(f"{where}: cannot find the host: {error.strerror}")
    if isinstance(error, TimeoutError):
        return MailboxUnavailable(f"{where}: no answer within {timeout:g} s")
    if isinstance(error, OSError):
        return MailboxUnavailable(f"{where}: cannot connect: {error.strerror or error}")
    if isinstance(error, IMAPClientAbortError):
        return MailboxUnavailable(f"{where}: the connection was lost: {said(error)}")
    return MailboxUnavailable(f"{where}: {type(error).__name__}: {said(error)}")


def refusal(what: str, error: IMAPClientError, *, where: str) -> MailboxError:
    """The server answered NO or BAD to ``what`` ("move to 'rebook/processed'")."""
    words = said(error)
    kind = MailboxRefused if _REFUSED.search(words) else MailboxUnavailable
    return kind(f"{where}: {what} was refused: {words}")


def said(error: BaseException) -> str:
    """The server's words from an imaplib/imapclient error, without Python's b'…' around them."""
    text = re.sub(r"\[?b(['\"])(.*?)\1\]?", r"\2", str(error))
    return re.sub(r"^(\w+ (failed|command error): |command: \w+ => )", "", text).strip()


def certificate_problem(error: BaseException) -> str | None:
    """Why the certificate was refused, if that is what ``error`` (or its cause) is."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or seen.reason or str(seen)
        seen = seen.__cause__ or seen.__context__
    return None
