"""One client's story: what they were sent, what became of it, and suppression events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from campaigns.clients.csv_rows import parse_email
from campaigns.delivery.ledger import suppress
from campaigns.errors import UserError
from campaigns.store.tables import sends, suppressions


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    campaign: str
    key: str
    status: str
    attempts: int
    reply: str
    message_id: str | None

    def as_json(self) -> dict:
        return {**self.__dict__, "at": self.at.isoformat()}


@dataclass(frozen=True)
class Suppression:
    address: str
    reason: str
    detail: str
    since: datetime

    def as_json(self) -> dict:
        return {**self.__dict__, "since": self.since.isoformat()}


def address(text: str) -> str:
    try:
        return parse_email(text.strip())
    except ValueError as error:
        raise UserError(str(error)) from None


def client_history(
    connection: Connection, email: str
) -> tuple[list[HistoryEntry], Suppression | None]:
    email = address(email)
    rows = connection.execute(
        select(sends).where(sends.c.email == email).order_by(sends.c.created_at, sends.c.id)
    )
    entries = [
        HistoryEntry(row.sent_at or row.updated_at, row.campaign, row.key, row.status, row.attempts,
                     row.last_reply, row.message_id)
        for row in rows
    ]  # fmt: skip
    found = connection.execute(select(suppressions).where(suppressions.c.address == email)).first()
    suppression = found and Suppression(found.address, found.reason, found.detail, found.created_at)
    return entries, suppression or None


def unsubscribe_by_hand(connection: Connection, email: str, now: datetime) -> Suppression | None:
    """Suppress ``email``; return the existing suppression if there already was one."""
    email = address(email)
    if suppress(connection, email, "manual", "added with rebook unsubscribe", now):
        return None
    found = connection.execute(select(suppressions).where(suppressions.c.address == email)).one()
    return Suppression(found.address, found.reason, found.detail, found.created_at)
