"""Reading returned mail where it arrives: an IMAP mailbox or a Maildir on this machine.

Both give the same thing (``base.Mailbox``): the messages newer than a
stored position, oldest first and as stored; ``processed(key)`` moves the
one rebook acted on out of the way; nothing else is touched. They take plain
values, not rebook's config, so the classifier's tests and the command line
can use them as they are.
"""

from campaigns.bounces.mailboxes.base import (
    MAX_MESSAGE,
    Incoming,
    Mailbox,
    MailboxError,
    MailboxRefused,
    MailboxUnavailable,
)
from campaigns.bounces.mailboxes.imap import ImapBox
from campaigns.bounces.mailboxes.maildir import MaildirBox

__all__ = [
    "MAX_MESSAGE",
    "ImapBox",
    "Incoming",
    "Mailbox",
    "MailboxError",
    "MailboxRefused",
    "MailboxUnavailable",
    "MaildirBox",
]
