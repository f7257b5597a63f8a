"""What every mailbox gives the classifier: the messages waiting, one at a time, as stored.

    RebookError
    └── MailboxError            names the mailbox (host, port, user; or folder) and what is wrong
        ├── MailboxUnavailable  cannot be used now (unreachable, timed out, dropped): retried
        └── MailboxRefused      the owner must fix it: login, certificate, TLS mode, folder, rights

A mailbox never alters or deletes a message it was not told to move, and
moves only into its processed folder. Reading is bounded: a message larger
than ``MAX_MESSAGE`` is returned cut at that size and marked, so a 200 MB
mail bomb costs 21 MiB, and the report parts of a DSN (which come before the
returned message, RFC 3464) are still there to classify.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from campaigns.errors import RebookError

# 20 MB is the usual ceiling of providers (Gmail 25 MB, Microsoft 365 25-35 MB,
# Postfix's message_size_limit 10 MB): the message whole up to 20 MiB, plus 1 MiB
# for the headers and the encoding a returned message adds around it.
MAX_MESSAGE = 21 * 1024 * 1024


class MailboxError(RebookError):
    """The mailbox could not be read or changed; ``str()`` says which and why, never a password."""


class MailboxUnavailable(MailboxError):
    """Cannot be used now: the server is down, slow or dropped the connection. Retried later."""


class MailboxRefused(MailboxError):
    """The owner must fix something before it can work: the login, certificate, folder, rights."""


@dataclass(frozen=True)
class Incoming:
    """One message as the mailbox stores it (IMAP gives CRLF line ends, a Maildir LF)."""

    key: str  # in its mailbox: the Maildir key, or "UIDVALIDITY:UID" for IMAP
    raw: bytes  # the whole message as stored, never altered (only cut, see ``size``)
    size: int | None = None  # set when the stored message was larger than MAX_MESSAGE

    @property
    def truncated(self) -> bool:
        """``raw`` is the first MAX_MESSAGE bytes of a message of ``size`` bytes."""
        return self.size is not None


class Mailbox(Protocol):
    """A folder of returned mail: read what is new, move what was acted on, touch nothing else."""

    # After read() (and after each message it yields): where the next read starts.
    # Opaque; the caller stores it and passes it back.
    position: str | None

    def read(self, position: str | None) -> Iterator[Incoming]:
        """Messages newer than ``position`` (None: all), oldest first; flags untouched.

        ``position`` advances as each message is yielded, so a caller that
        stores it after acting on a message resumes right after that message.
        """
        ...

    def processed(self, key: str) -> None:
        """Move the message acted on to the processed folder (created when missing).

        A message that is no longer there (moved or deleted by another
        program) is not an error: nothing is moved.
        """
        ...

    def count(self, position: str | None = None) -> int:
        """How many messages wait: all of them, or those newer than ``position``."""
        ...

    def close(self) -> None: ...
