"""``[bounces]``: where returned mail arrives, and how rebook tells which message it was.

Relays accept nearly everything and report failures later, by mail to the
envelope sender: delivery status notifications, spam complaints (ARF), and
unsubscribes sent to the ``List-Unsubscribe`` mailto. With ``address`` set,
every message leaves with a VERP envelope sender ``bounces+TOKEN@domain``
(``verp = false`` keeps it fixed for relays that rewrite or refuse it) and
rebook reads that mailbox: over IMAP (``[bounces.imap]``), from a Maildir
the mail server delivers into (``maildir``), or from the mail server's pipe
(``rebook bounces -``), which needs neither.
"""

from __future__ import annotations

from datetime import timedelta
from email.utils import parseaddr
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from campaigns.config.sections import Section
from campaigns.config.values import Address, Duration, FilePath, Host, Text


class Imap(Section):
    """``[bounces.imap]``: the bounce mailbox on an IMAP server; the password only from
    REBOOK_BOUNCES__IMAP__PASSWORD."""

    host: Host
    port: int | None = Field(None, ge=1, le=65535)  # 993 with tls, else 143
    security: Literal["none", "starttls", "tls"] = "tls"
    user: Text
    password: SecretStr | None = None
    folder: Text = "INBOX"
    processed_folder: Text = "rebook/processed"
    ca_file: FilePath | None = None  # a private CA's PEM to verify the server by

    @property
    def server_port(self) -> int:
        return self.port or (993 if self.security == "tls" else 143)

    @field_validator("password")
    @classmethod
    def _not_empty(cls, password: SecretStr | None) -> SecretStr | None:
        if password is not None and not password.get_secret_value():
            raise ValueError("is empty: set the bounce mailbox's password")
        return password

    @model_validator(mode="after")
    def _apart(self) -> Imap:
        """Moving a message into the folder it is read from would read it again, forever."""
        if self.processed_folder.strip("/") == self.folder.strip("/"):
            raise ValueError(
                f"processed_folder {self.processed_folder!r} is the folder read: choose another"
            )
        return self


class Bounces(Section):
    address: Address  # the envelope sender: bounces come back here
    verp: bool = True  # bounces+TOKEN@domain; false: a fixed envelope sender
    every: Duration = timedelta(minutes=5)
    soft_limit: int = Field(3, ge=1, le=1000)  # soft bounces within soft_window that suppress
    soft_window: Duration = timedelta(days=30)
    match_within: Duration = timedelta(days=30)  # a bounce names an address mailed this recently
    maildir: FilePath | None = None  # a Maildir the mail server delivers the bounce address to
    imap: Imap | None = None

    @model_validator(mode="after")
    def _one_mailbox(self) -> Bounces:
        if self.maildir is not None and self.imap is not None:
            raise ValueError(
                "set maildir or [bounces.imap], not both: rebook reads one bounce mailbox"
            )
        return self

    @property
    def mailbox_address(self) -> str:
        """The bare address, ``bounces@waso.example``."""
        return parseaddr(self.address)[1].lower()

    @property
    def domain(self) -> str:
        return self.mailbox_address.rpartition("@")[2]

    @property
    def reads(self) -> Literal["imap", "maildir"] | None:
        """Which mailbox the service reads, if any (a pipe from the mail server needs none)."""
        if self.imap is not None:
            return "imap"
        return "maildir" if self.maildir is not None else None


def unsubscribe_address(mailto: str | None, bounces: Bounces | None) -> str | None:
    """The plain address mailed unsubscribes go to: ``[mail] unsubscribe_mailto``, else
    ``unsubscribe@`` the bounce address's domain when ``[bounces]`` is set."""
    if mailto is not None:
        return parseaddr(mailto)[1].lower()
    return f"unsubscribe@{bounces.domain}" if bounces is not None else None
