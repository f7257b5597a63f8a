"""Turning rendered content into the bytes of a well-formed email.

Building a multipart message with ``email.message.EmailMessage`` costs about
0.85 ms, more than rendering the template, and a campaign builds one per
client. ``MessageComposer`` composes the same MIME structure directly: the
headers that never change in a run are encoded once; per message, names and
subjects are encoded by the standard library's own ``email.header`` and
``email.utils`` and the two bodies by ``binascii``'s quoted-printable codec
(C code), with ``email.policy.SMTP``'s conventions (CRLF, folded headers).
tests/test_message.py checks, over generated names, subjects and bodies, that
every message parses back exactly like the one ``EmailMessage`` builds.

With ``[dkim]`` the composed bytes are signed as the last step
(``campaigns.content.signing``), so what is signed is exactly what leaves,
whichever transport takes it, and what ``rebook preview`` shows.

A message with an attachment (an appointment reminder's ``.ics``) is
multipart/mixed: the same multipart/alternative, then the attachment in
base64. A message without one is byte for byte what it was before
attachments existed.

No CR or LF from data ever reaches a header: a name or address carrying one
fails that message with ``MessageError``; subjects are made one line when
rendered.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr, getaddresses, make_msgid
from typing import Protocol

from campaigns.config import Bounces, Dkim, Mail
from campaigns.config.bounces import unsubscribe_address
from campaigns.content.render import Rendered
from campaigns.content.tokens import tagged
from campaigns.errors import RebookError

MAX_LINE = 78  # RFC 5322's recommended limit, as email.policy.SMTP folds
# A line break would start a new header; any other control character (NUL,
# ESC, DEL…) is forbidden in a header by RFC 5322 and mangled by relays.
_BREAKS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_ADDRESS = re.compile(r"^[^\s@<>()\[\],;:\\\"]+@[^\s@<>()\[\],;:\\\"]+$")


class MessageError(RebookError):
    """One message cannot be built from its data (a line break in a name, say)."""


@dataclass(frozen=True)
class Sender:
    """The sending side of every message of a run, parsed once from ``[mail]``."""

    name: str
    address: str
    reply_to: str | None
    unsubscribe_mailto: str | None
    # With [bounces]: the mailto carries the one-click link's token (unsubscribe+TOKEN@…),
    # so a mailed unsubscribe names its client exactly, whatever address it comes from.
    tag_mailto: bool = False

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


@dataclass(frozen=True)
class Attachment:
    """A file attached to one message; ``content_type`` and ``filename`` are rebook's own."""

    content_type: str
    filename: str
    data: bytes


def sender_from(mail: Mail, bounces: Bounces | None = None) -> Sender:
    [(name, address)] = getaddresses([mail.from_])
    mailto = unsubscribe_address(mail.unsubscribe_mailto, bounces)
    return Sender(name, address, mail.reply_to, mailto, tag_mailto=bounces is not None)


class Signer(Protocol):
    def sign(self, message: bytes, at: datetime) -> bytes:
        """``message`` with a signature header added; ``at`` is when it was signed."""


def dkim_signer(config: Dkim | None) -> Signer | None:
    """The run's signer, its key parsed once; without ``[dkim]``, none (and no dkimpy import)."""
    if config is None:
        return None
    from campaigns.content.signing import DkimSigner

    return DkimSigner(config)


def new_message_id(sender: Sender) -> str:
    return make_msgid(domain=sender.domain)


def encode_header(name: str, value: str) -> bytes:
    """``Name: value`` folded to 78 columns, as RFC 2047 encoded words where plain text can't be.

    Plain ASCII folds at its spaces. Anything else (non-ASCII, a word too
    long to fold, or a literal ``=?…?=`` a reader would decode as an encoded
    word) is written as UTF-8 encoded words, which fold anywhere and read
    back exactly as typed.
    """
    if _plain(value, MAX_LINE - len(name) - 2):
        return f"{name}: {value}\r\n".encode("ascii")  # short plain ASCII: nothing to do
    charset = "us-ascii" if _plain(value, MAX_LINE - len(name) - 2, words=True) else "utf-8"
    encoded = Header(value, charset, header_name=name).encode(linesep="\r\n", maxlinelen=MAX_LINE)
    return f"{name}: {encoded}\r\n".encode("ascii")


def _plain(value: str, room: int, *, words: bool = False) -> bool:
    """Whether ``value`` can go as it is: ASCII, nothing like an encoded word, and short.

    ``words``: each word short enough (the value will be folded at spaces).
    """
    if not value.isascii() or "=?" in value:
        return False
    if words:
        return all(len(word) <= room for word in value.split())
    return len(value) <= room


def _address_header(name: str, display_name: str, address: str) -> bytes:
    """``Name: display name <address>``, the name quoted or encoded, folded to 78 columns.

    A non-ASCII local part stays UTF-8 (RFC 6532): the transport sends such a
    message only over SMTPUTF8.
    """
    if _BREAKS.search(display_name) or not _ADDRESS.match(address):
        raise MessageError(f"cannot address a message to {display_name!r} <{address!r}>")
    display_name = " ".join(display_name.split())  # one plain space between words, as readers show
    charset = "ascii" if address.isascii() else "utf-8"
    plain = _formatted(display_name, address)
    if not display_name or _plain(plain, MAX_LINE - len(name) - 2):
        return f"{name}: {plain}\r\n".encode(charset)
    phrase = Header(display_name, "utf-8", header_name=name).encode(
        linesep="\r\n", maxlinelen=MAX_LINE
    )
    last = phrase.rpartition("\r\n")[2]
    fits = len(last) + len(address) + 3 <= MAX_LINE - (0 if "\r\n" in phrase else len(name) + 2)
    return f"{name}: {phrase}{' ' if fits else chr(13) + chr(10) + ' '}<{address}>\r\n".encode(
        charset
    )


def _formatted(display_name: str, address: str) -> str:
    """``formataddr``'s quoting of the name, for any address (it refuses a UTF-8 one)."""
    if not display_name:
        return address
    quoted = formataddr((display_name, "x@x"))  # quotes the name where specials need it
    return f"{quoted.removesuffix('<x@x>')}<{address}>"


def _quoted_printable(text: str) -> bytes:
    lines = "\n".join(text.splitlines()) + "\n"
    return binascii.b2a_qp(lines.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


class MessageComposer:
    """Composes the messages of one campaign run; the fixed headers are encoded once."""

    def __init__(self, sender: Sender, signer: Signer | None = None) -> None:
        self.sender = sender
        self.signer = signer
        self.boundary = f"==============={secrets.token_hex(8)}=="
        fixed = [_address_header("From", sender.name, sender.address)]
        if sender.reply_to:
            [(name, address)] = getaddresses([sender.reply_to])
            fixed.append(_address_header("Reply-To", name, address))
        self._fixed = b"".join(fixed)
        self._mime = (
            "MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/alternative;\r\n boundary="{self.boundary}"\r\n\r\n'
        ).encode("ascii")
        part = (
            '--{}\r\nContent-Type: text/{}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self._text_head = part.format(self.boundary, "plain").encode("ascii")
        self._html_head = ("\r\n" + part.format(self.boundary, "html")).encode("ascii")
        self._end = f"\r\n--{self.boundary}--\r\n".encode("ascii")
        # With an attachment: multipart/mixed around the same alternative part.
        self.mixed_boundary = f"==============={secrets.token_hex(8)}=="
        self._mixed = (
            "MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/mixed;\r\n boundary="{self.mixed_boundary}"\r\n\r\n'
            f"--{self.mixed_boundary}\r\n"
            f'Content-Type: multipart/alternative;\r\n boundary="{self.boundary}"\r\n\r\n'
        ).encode("ascii")

    def compose(
        self,
        content: Rendered,
        *,
        to_name: str,
        to_email: str,
        message_id: str,
        date: datetime,
        unsubscribe_url: str | None = None,
        attachment: Attachment | None = None,
    ) -> bytes:
        """multipart/alternative, text then HTML, UTF-8; one-click unsubscribe for marketing.

        With ``attachment``: multipart/mixed, the alternative part then the attachment.
        Signed last, when the composer has a signer, with ``date`` as the time of signing.
        """
        if _BREAKS.search(content.subject) or _BREAKS.search(message_id):
            raise MessageError("a header value contains a line break")
        headers = [
            self._fixed,
            _address_header("To", to_name, to_email),
            encode_header("Subject", content.subject),
            f"Date: {format_datetime(date)}\r\nMessage-ID: {message_id}\r\n".encode("ascii"),
        ]
        if unsubscribe_url:
            headers.append(self._unsubscribe(unsubscribe_url))
        body = [self._mixed if attachment else self._mime, self._text_head,
                _quoted_printable(content.text), self._html_head,
                _quoted_printable(content.html), self._end]  # fmt: skip
        if attachment:
            body.append(self._attached(attachment))
        data = b"".join(headers + body)
        return self.signer.sign(data, date) if self.signer else data

    def _attached(self, attachment: Attachment) -> bytes:
        head = (
            f"\r\n--{self.mixed_boundary}\r\nContent-Type: {attachment.content_type}\r\n"
            f'Content-Disposition: attachment; filename="{attachment.filename}"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
        )
        data = base64.encodebytes(attachment.data).replace(b"\n", b"\r\n")
        return head.encode("ascii") + data + f"--{self.mixed_boundary}--\r\n".encode("ascii")

    def _unsubscribe(self, url: str) -> bytes:
        if _BREAKS.search(url) or not url.isascii():
            raise MessageError(f"unsubscribe URL {url!r} cannot go in a header")
        targets = [f"<{url}>"]
        if mailto := self.sender.unsubscribe_mailto:
            if self.sender.tag_mailto:  # the link's token: /unsubscribe/TOKEN
                mailto = tagged(mailto, url.rstrip("/").rpartition("/")[2])
            targets.append(f"<mailto:{mailto}?subject=unsubscribe>")
        value = ",\r\n ".join(targets)
        long = len("List-Unsubscribe: ") + len(targets[0]) > MAX_LINE
        header = f"List-Unsubscribe:\r\n {value}" if long else f"List-Unsubscribe: {value}"
        return f"{header}\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n".encode("ascii")
