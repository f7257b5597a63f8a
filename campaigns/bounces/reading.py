"""Reading the bounce mailbox: each new message handled, rebook's own moved out of the way.

Where the last read stopped is kept in the database (``app_state``), so a
restart neither skips a message nor acts on one twice (and acting twice
would change nothing anyway). A message that is not rebook's stays exactly
where it was, unread; one rebook acted on goes to the processed folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine

from campaigns.bounces.handling import Handled, ReturnHandler
from campaigns.config import Settings
from campaigns.errors import ConfigError
from campaigns.store.database import write_transaction
from campaigns.store.tables import app_state
from campaigns.store.upsert import set_state


def open_mailbox(settings: Settings):
    """The configured bounce mailbox, or a ``ConfigError`` saying there is none to read."""
    bounces = settings.bounces
    if bounces is None or bounces.reads is None:
        raise ConfigError(
            "there is no bounce mailbox to read: set [bounces] maildir or [bounces.imap] "
            "(or give rebook bounces the message files, or - for a mail server's pipe)"
        )
    if bounces.reads == "maildir":
        from campaigns.bounces.mailboxes import MaildirBox

        return MaildirBox(bounces.maildir)
    from campaigns.bounces.mailboxes import ImapBox

    imap = bounces.imap
    if imap.password is None:
        raise ConfigError(
            "[bounces.imap] is set but REBOOK_BOUNCES__IMAP__PASSWORD is not: give rebook the "
            "bounce mailbox's password in its environment"
        )
    return ImapBox(imap.host, imap.server_port, imap.user, imap.password.get_secret_value(),
                   folder=imap.folder, processed_folder=imap.processed_folder,
                   security=imap.security, ca_file=imap.ca_file)  # fmt: skip


@contextmanager
def mailbox_of(settings: Settings) -> Iterator:
    mailbox = open_mailbox(settings)
    try:
        yield mailbox
    finally:
        mailbox.close()


def read_mailbox(engine: Engine, settings: Settings, mailbox, now: datetime, *,
                 dry_run: bool = False) -> list[Handled]:  # fmt: skip
    """Handle every message that arrived since the last read; dry, change nothing anywhere."""
    source = settings.bounces.reads or "mailbox"
    name = f"bounces:{source}"
    handler = ReturnHandler(engine, settings, now, source=source, dry_run=dry_run)
    position = None if dry_run else _position(engine, name)
    handled = []
    for incoming in mailbox.read(position):
        result = handler(incoming.raw, incoming.key)
        if result.ours and not dry_run:
            mailbox.processed(incoming.key)
        handled.append(result)
    if not dry_run and mailbox.position != position:
        with write_transaction(engine) as connection:
            set_state(connection, name, mailbox.position or "", now)
    return handled


def _position(engine: Engine, name: str) -> str | None:
    with engine.connect() as connection:
        value = connection.execute(
            select(app_state.c.value).where(app_state.c.name == name)
        ).scalar()
    return value or None


def waiting(engine: Engine, settings: Settings, mailbox) -> tuple[int, int]:
    """(messages not read yet, messages in the mailbox): for ``rebook check --bounces``."""
    name = f"bounces:{settings.bounces.reads}"
    return mailbox.count(_position(engine, name)), mailbox.count(None)
