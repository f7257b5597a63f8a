"""The service's reading of the bounce mailbox, every ``[bounces] every``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from jobs.logs import LOGGER, event
from jobs.loops import RetryLater, Round

log = logging.getLogger(LOGGER)


def bounces_round(engine, settings: Callable, clock: Callable[[], datetime]) -> Round:
    """One read of the bounce mailbox, in a thread (IMAP and files block); each action logged.

    A mailbox that cannot be reached or refuses the login is tried again
    ``every`` later, not sooner: a server asked for a login every second
    may lock the account. Sending never waits for it.
    """
    from campaigns.bounces.mailboxes import MailboxError

    async def one_round() -> float | None:
        bounces = settings().bounces
        if bounces is None or bounces.reads is None:
            return None
        try:
            results = await asyncio.to_thread(_read_once, engine, settings(), clock())
        except MailboxError as error:
            raise RetryLater(error, bounces.every.total_seconds()) from error
        for result in results:
            if result.ours:
                event(log, "returned mail handled", kind=result.kind, matched=result.matched,
                      action="; ".join(result.actions))  # fmt: skip
        return bounces.every.total_seconds()

    return one_round


def _read_once(engine, settings, now: datetime) -> list:
    from campaigns.bounces.reading import mailbox_of, read_mailbox

    with mailbox_of(settings) as mailbox:
        return read_mailbox(engine, settings, mailbox, now)


def require_mailbox_password(settings) -> None:
    """A service told to read an IMAP mailbox without its password would only fail."""
    from campaigns.errors import UserError

    bounces = settings.bounces
    if bounces is not None and bounces.imap is not None and bounces.imap.password is None:
        raise UserError(
            "[bounces.imap] is set but REBOOK_BOUNCES__IMAP__PASSWORD is not: give rebook run "
            "the bounce mailbox's password, or remove [bounces.imap]"
        )
