"""Turning rendered content into a well-formed email.

The standard library's ``email`` package builds the message: it encodes
non-ASCII names and subjects, folds headers, and refuses CR or LF in any
header value, so no data can smuggle in a header of its own. A value it
refuses fails that one message with ``MessageError``, never the campaign.
"""

from __future__ import annotations

import email.policy
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid

from campaigns.config import Mail
from campaigns.errors import RebookError
from campaigns.render import Rendered

POLICY = email.policy.SMTP  # CRLF line ends, as sent


class MessageError(RebookError):
    """One message cannot be built from its data (a line break in a name, say)."""


@dataclass(frozen=True)
class Sender:
    """The sending side of every message of a run, parsed once from ``[mail]``."""

    address: Address
    reply_to: str | None
    unsubscribe_mailto: str | None

    @property
    def domain(self) -> str:
        return self.address.domain


def sender_from(mail: Mail) -> Sender:
    [(name, addr_spec)] = getaddresses([mail.from_])
    username, _, domain = addr_spec.rpartition("@")
    mailto = None
    if mail.unsubscribe_mailto:
        mailto = getaddresses([mail.unsubscribe_mailto])[0][1]
    return Sender(Address(name, username, domain), mail.reply_to, mailto)


def new_message_id(sender: Sender) -> str:
    return make_msgid(domain=sender.domain)


def build_message(
    content: Rendered,
    sender: Sender,
    *,
    to_name: str,
    to_email: str,
    message_id: str,
    date: datetime,
    unsubscribe_url: str | None = None,
) -> EmailMessage:
    """multipart/alternative, text then HTML, UTF-8; one-click unsubscribe headers for marketing."""
    message = EmailMessage(policy=POLICY)
    try:
        message["From"] = sender.address
        message["To"] = _recipient(to_name, to_email)
        message["Subject"] = content.subject
        message["Date"] = format_datetime(date)
        message["Message-ID"] = message_id
        if sender.reply_to:
            message["Reply-To"] = sender.reply_to
        if unsubscribe_url:
            targets = [f"<{unsubscribe_url}>"]
            if sender.unsubscribe_mailto:
                targets.append(f"<mailto:{sender.unsubscribe_mailto}?subject=unsubscribe>")
            message["List-Unsubscribe"] = ", ".join(targets)
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    except (ValueError, TypeError, IndexError) as error:
        raise MessageError(f"cannot address a message to {to_email!r}: {error}") from None
    message.set_content(content.text, subtype="plain", charset="utf-8")
    message.add_alternative(content.html, subtype="html", charset="utf-8")
    return message


def _recipient(name: str, email_address: str) -> Address:
    username, at, domain = email_address.rpartition("@")
    if not at:
        raise ValueError("not an email address")
    return Address(display_name=name, username=username, domain=domain)
