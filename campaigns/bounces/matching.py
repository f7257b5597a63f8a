"""Which message a returned one is about: its VERP token, its Message-ID, or the address.

In that order, the most exact first. The VERP token (``bounces+TOKEN@…``,
where the mail server delivered the return) names the ledger row and is
signed, so a forged one names nothing. rebook's Message-IDs start with the
ledger row's id (``<1234.9f…@waso.example>``), so a returned Message-ID is
checked against that one row, never searched for. Last, the failed
recipient's address, when rebook sent mail there within ``[bounces]
match_within``: the newest such message. A mailed unsubscribe is matched by
the one-click token in ``unsubscribe+TOKEN@…``, else by its sender's address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from campaigns.config import Settings
from campaigns.config.bounces import unsubscribe_address
from campaigns.content.tokens import read_token, read_verp_token, tag_of
from campaigns.store.tables import clients, sends

_OUR_MESSAGE_ID = re.compile(r"<(\d{1,18})\.[0-9a-f]{16}@[^>\s]+>")
_LEFT = ("sending", "sent", "deferred", "failed")  # rows that may have reached someone


@dataclass(frozen=True)
class Sent:
    """What a return is about: a ledger row, or (a mailed unsubscribe) a client."""

    email: str  # the address to act on
    by: str  # verp, message-id, address, token, sender
    send_id: int | None = None
    client_id: str | None = None
    campaign: str | None = None


class Matcher:
    """Matching for one batch of returned messages: the secret and settings read once."""

    def __init__(self, connection: Connection, settings: Settings, secret: bytes,
                 now: datetime) -> None:  # fmt: skip
        self.connection, self.settings, self.secret, self.now = connection, settings, secret, now
        bounces = settings.bounces
        self.base = bounces.mailbox_address if bounces is not None else None
        self.within = bounces.match_within if bounces is not None else None
        self.unsubscribe = unsubscribe_address(settings.mail.unsubscribe_mailto, bounces)

    def message(self, envelope_to, message_ids, address: str | None) -> Sent | None:
        """The ledger row a bounce or complaint is about, or None when it is not rebook's."""
        return (
            self._by_verp(envelope_to)
            or self._by_message_id(message_ids)
            or (self._by_address(address) if address else None)
        )

    def client(self, envelope_to, sender: str) -> list[Sent]:
        """The client(s) a mailed unsubscribe is from: by the link's token, else by sender."""
        for address in envelope_to:
            token = tag_of(address, self.unsubscribe) if self.unsubscribe else None
            client_id = read_token(self.secret, token) if token else None
            if client_id is not None:
                email = self._email_of(client_id) or sender
                return [Sent(email, "token", client_id=client_id)]
        if not sender:
            return []
        query = select(clients.c.id).where(clients.c.email == sender)  # stored lower case
        found = self.connection.execute(query).scalars().all()
        return [Sent(sender, "sender", client_id=client_id) for client_id in found]

    def _by_verp(self, envelope_to) -> Sent | None:
        if self.base is None:
            return None
        for address in envelope_to:
            token = tag_of(address, self.base)
            row_id = read_verp_token(self.secret, token) if token else None
            if row_id is not None and (found := self._row(sends.c.id == row_id, "verp")):
                return found
        return None

    def _by_message_id(self, message_ids) -> Sent | None:
        for message_id in message_ids:
            ours = _OUR_MESSAGE_ID.fullmatch(message_id.strip())
            if ours is None:
                continue
            row = (sends.c.id == int(ours[1])) & (sends.c.message_id == ours[0])
            if found := self._row(row, "message-id"):
                return found
        return None

    def _by_address(self, address: str) -> Sent | None:
        if self.within is None:
            return None
        recent = func.coalesce(sends.c.sent_at, sends.c.updated_at) >= self.now - self.within
        condition = (sends.c.email == address.lower()) & sends.c.status.in_(_LEFT) & recent
        return self._row(condition, "address")

    def _row(self, condition, by: str) -> Sent | None:
        query = (
            select(sends.c.id, sends.c.email, sends.c.client_id, sends.c.campaign)
            .where(condition)
            .order_by(sends.c.id.desc())
            .limit(1)
        )
        row = self.connection.execute(query).first()
        if row is None:
            return None
        return Sent(row.email.lower(), by, row.id, row.client_id, row.campaign)

    def _email_of(self, client_id: str) -> str | None:
        email = self.connection.execute(
            select(clients.c.email).where(clients.c.id == client_id)
        ).scalar()
        return email.lower() if email else None
