"""One client's story: what they were sent, what became of it, and suppression events.

A client is found by any address they had: the one they have now, or one the
ledger sent to. An address may also be shared (a family's), so it names every
client who used it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, union, update
from sqlalchemy.engine import Connection

from campaigns.clients.csv_rows import parse_email
from campaigns.delivery.suppression import suppress, suppress_client
from campaigns.errors import UserError
from campaigns.store.forgotten import forgotten_at, hasher
from campaigns.store.tables import client_suppressions, clients, returns, sends, suppressions


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    campaign: str
    key: str
    status: str
    attempts: int
    reply: str
    message_id: str | None
    came_back: tuple[dict, ...] = ()  # later bounces, complaints: kind, status, reason, at

    def as_json(self) -> dict:
        return {**self.__dict__, "at": self.at.isoformat(), "came_back": list(self.came_back)}

    @property
    def came_back_text(self) -> str:
        """What came back of it, for a table: ``hard bounce 5.1.1: user unknown``."""
        return "; ".join(
            f"{_KIND_WORDS.get(each['kind'], each['kind'])}"
            + (f" {each['status']}" if each["status"] else "")
            + (f": {each['reason'][:80]}" if each["reason"] else "")
            for each in self.came_back
        )


_KIND_WORDS = {"hard": "hard bounce", "soft": "soft bounce", "clinic-problem": "refused (not "
               "the client's fault)", "complaint": "spam complaint", "unsubscribe":
               "unsubscribed by mail"}  # fmt: skip


@dataclass(frozen=True)
class Suppression:
    address: str  # the address suppressed, or "client ID" for an opt-out kept by id
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


def clients_of(connection: Connection, email: str) -> list[str]:
    """Every client who has, or was sent mail at, ``email``."""
    ids = union(
        select(clients.c.id).where(clients.c.email == email),
        select(sends.c.client_id).where(sends.c.email == email),
    )
    return sorted(connection.execute(ids).scalars())


def client_history(
    connection: Connection, email: str
) -> tuple[list[HistoryEntry], Suppression | None]:
    """Found by any spelling; even a malformed address a row holds can be looked up."""
    if not email.strip():
        raise UserError("EMAIL is empty: give the client's address, e.g. jo@example.com")
    email = lookup_form(email)
    ids = clients_of(connection, email)
    rows = connection.execute(
        select(sends)
        .where(or_(sends.c.email == email, sends.c.client_id.in_(ids)))
        .order_by(sends.c.created_at, sends.c.id)
    )
    rows = rows.all()
    back = _came_back(connection, [row.id for row in rows])
    entries = [
        HistoryEntry(row.sent_at or row.updated_at, row.campaign, row.key, row.status, row.attempts,
                     row.last_reply, row.message_id, tuple(back.get(row.id, ())))
        for row in rows
    ]  # fmt: skip
    return entries, suppression_of(connection, email, ids)


def _came_back(connection: Connection, send_ids: list[int]) -> dict[int, list[dict]]:
    """The returns matched to each of these ledger rows, oldest first."""
    found: dict[int, list[dict]] = {}
    if not send_ids:
        return found
    query = (
        select(returns)
        .where(returns.c.send_id.in_(send_ids))
        .order_by(returns.c.received_at, returns.c.id)
    )
    for row in connection.execute(query):
        found.setdefault(row.send_id, []).append(
            {
                "kind": row.kind,
                "status": row.status,
                "reason": row.reason,
                "at": row.received_at.isoformat(),
                "matched_by": row.matched_by,
                "action": row.action,
            }
        )
    return found


def suppression_of(connection: Connection, email: str, ids: list[str]) -> Suppression | None:
    """The address's own suppression, else an opt-out kept for one of its clients."""
    found = connection.execute(select(suppressions).where(suppressions.c.address == email)).first()
    if found is not None:
        return Suppression(found.address, found.reason, found.detail, found.created_at)
    query = select(client_suppressions).where(client_suppressions.c.client_id.in_(ids))
    found = connection.execute(query.order_by(client_suppressions.c.created_at)).first()
    if found is not None:
        return Suppression(
            f"client {found.client_id}", found.reason, found.detail, found.created_at
        )
    return None


def unsubscribe_by_hand(connection: Connection, email: str, now: datetime) -> Suppression | None:
    """Suppress ``email`` and every client who has it; return the existing suppression if any.

    A forgotten address is left as it is: suppressing it would store it again.
    """
    email = address(email)
    since = forgotten_since(connection, email)
    if since is not None:
        return Suppression(email, "forgotten", "", since)
    existing = suppression_of(connection, email, [])
    detail = "added with rebook unsubscribe"
    suppress(connection, email, "manual", detail, now)
    owners = list(
        connection.execute(select(clients.c.id).where(clients.c.email == email)).scalars()
    )
    for client_id in owners:
        suppress_client(connection, client_id, "manual", detail, now)
    _made_the_owners(connection, email, owners, detail)
    return existing


def _made_the_owners(connection: Connection, email: str, ids: list[str], detail: str) -> None:
    """A client's own unsubscribe the owner repeats becomes the owner's: their link cannot
    undo it any more (the page tells them to ask the clinic)."""
    for table, key, values in (
        (suppressions, suppressions.c.address, [email]),
        (client_suppressions, client_suppressions.c.client_id, ids),
    ):
        connection.execute(
            update(table)
            .where(key.in_(values), table.c.reason == "unsubscribed")
            .values(reason="manual", detail=f"{detail}, after the client's own unsubscribe")
        )  # fmt: skip


def forgotten_since(connection: Connection, email: str) -> datetime | None:
    """When ``email`` was forgotten (``rebook forget``), or None."""
    hashes = hasher(connection)
    if hashes is None:
        return None
    return forgotten_at(connection, hashes.address(lookup_form(email)))


def lookup_form(email: str) -> str:
    """The address as the tables store it; a malformed one (old rows may hold it) lower-cased."""
    try:
        return address(email)
    except UserError:
        return email.strip().lower()
