"""Forgetting a client on request: erase what rebook knows of them, keep only keyed hashes.

What goes, in one transaction (a failure leaves everything as it was):

- the client row (with its tags), every visit, the opt-out kept by id;
- every suppression row of every address they had (the ledger remembers
  old ones), replaced by a keyed hash of each address in ``forgotten``
  (``campaigns.store.forgotten``), so no later import or send reaches it;
- their ledger rows. Rows not yet ended (queued, held, claimed, in flight,
  deferred, skipped, error) are deleted: they will never be sent; a worker
  that had claimed one finds it gone and sends nothing, and one whose message
  was already in flight records nothing of it, not even a bounce. Rows that
  ended (sent, failed, held out of a control group) stay, because
  ``status`` and reports count them, but nothing in them points at the
  person any more: the client id becomes a random stand-in
  (``erased-…``, unrelated to the hashes, so knowing the address does not
  find them), the address, the server's reply (which often quotes the
  address) and the Message-ID (which the provider's logs tie to the
  address) are blanked, and an appointment reminder's key loses the visit id.

"They" is every client who has the address now or was ever sent mail at
it: a shared (family) address names several clients, and all of them are
listed before anyone confirms. An address another client (not forgotten)
has now is left to them: only the address asked for, and the forgotten
clients' own old addresses, are hashed.

Imports and forgets run one at a time (``lock_imports``), so an import
running alongside cannot bring the address back between the two.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import String, case, cast, delete, func, literal, or_, select, update
from sqlalchemy.engine import Connection

from campaigns.clients.importer import lock_imports
from campaigns.delivery.audience import VISIT_KEY
from campaigns.delivery.history import address, clients_of, forgotten_since, lookup_form
from campaigns.errors import UserError
from campaigns.store.forgotten import making_hasher, remember
from campaigns.store.tables import (
    client_suppressions,
    client_tags,
    clients,
    returns,
    sends,
    suppressions,
    visits,
)

ENDED = ("sent", "failed", "held_out")  # rows status and reports count: kept, anonymised
STAND_IN = "erased-"  # + random hex: the client id of a forgotten client's kept ledger rows


@dataclass(frozen=True)
class Erasure:
    """What forgetting an address erases (or erased)."""

    address: str
    clients: list[tuple[str, str]] = field(default_factory=list)  # (id, name)
    addresses: list[str] = field(default_factory=list)  # every address hashed
    visits: int = 0
    messages: int = 0  # ledger rows erased or anonymised
    already: datetime | None = None  # when the address was forgotten before

    def counts(self) -> str:
        """What was erased, in numbers only: this may end up in a script's log."""
        return (
            f"{len(self.clients)} client(s), {self.visits} visit(s), "
            f"{self.messages} message(s) in the ledger, {len(self.addresses)} address(es)"
        )

    def summary(self) -> str:
        """Whom and what, named: shown before the owner confirms."""
        if not self.clients:
            return f"no client has or had {self.address}"
        names = ", ".join(f"{name or '(no name)'} (id {id_})" for id_, name in self.clients)
        return (
            f"{len(self.clients)} client(s): {names}; {self.visits} visit(s), "
            f"{self.messages} message(s) in the ledger, "
            f"{len(self.addresses)} address(es): {', '.join(self.addresses)}"
        )


def survey(connection: Connection, email: str) -> Erasure:
    """What ``forget`` would erase now; changes nothing."""
    address = _address(connection, email)
    ids = clients_of(connection, address)
    return Erasure(
        address,
        _names(connection, ids),
        _addresses(connection, address, ids),
        _count(connection, visits, visits.c.client_id.in_(ids)),
        _count(connection, sends, sends.c.client_id.in_(ids)),
        forgotten_since(connection, address),
    )


def forget(connection: Connection, email: str, now: datetime) -> Erasure:
    """Erase everything kept about the clients of ``email``, in the caller's transaction."""
    lock_imports(connection)
    hashes = making_hasher(connection)
    erased = survey(connection, email)
    ids = [client_id for client_id, _ in erased.clients]
    _erase_ledger(connection, ids)
    connection.execute(delete(visits).where(visits.c.client_id.in_(ids)))
    connection.execute(delete(client_tags).where(client_tags.c.client_id.in_(ids)))
    connection.execute(delete(clients).where(clients.c.id.in_(ids)))
    connection.execute(delete(client_suppressions).where(client_suppressions.c.client_id.in_(ids)))
    connection.execute(delete(suppressions).where(suppressions.c.address.in_(erased.addresses)))
    connection.execute(  # what came back names them: their address, a server's words
        delete(returns).where(
            or_(returns.c.client_id.in_(ids), returns.c.recipient.in_(erased.addresses))
        )
    )
    remember(connection, "address", map(hashes.address, erased.addresses), now)
    remember(connection, "client", map(hashes.client, ids), now)
    return erased


def _address(connection: Connection, email: str) -> str:
    """The address as stored; a malformed one only if some row holds it (else it is a typo)."""
    try:
        return address(email)
    except UserError:
        stored = lookup_form(email)
        if clients_of(connection, stored):
            return stored
        raise


def _names(connection: Connection, ids: list[str]) -> list[tuple[str, str]]:
    query = select(clients.c.id, clients.c.first_name, clients.c.last_name).where(
        clients.c.id.in_(ids)
    )
    rows = connection.execute(query)
    named = {row.id: f"{row.first_name} {row.last_name}".strip() for row in rows}
    return [(client_id, named.get(client_id, "")) for client_id in ids]


def _addresses(connection: Connection, address: str, ids: list[str]) -> list[str]:
    """The address asked for, and the clients' own: now, and every one the ledger sent to.

    One another client (not being forgotten) has now is theirs, and stays mailable.
    """
    theirs = (
        select(clients.c.email)
        .where(clients.c.id.in_(ids))
        .union(select(sends.c.email).where(sends.c.client_id.in_(ids)))
    )
    others = select(clients.c.email).where(clients.c.id.not_in(ids))
    found = set(connection.execute(theirs).scalars()) - {""}
    taken = set(connection.execute(others.where(clients.c.email.in_(found))).scalars())
    return sorted({address} | (found - taken))


def _count(connection: Connection, table, condition) -> int:
    return connection.execute(select(func.count()).select_from(table).where(condition)).scalar_one()


def _erase_ledger(connection: Connection, ids: list[str]) -> None:
    connection.execute(
        delete(sends).where(sends.c.client_id.in_(ids), sends.c.status.not_in(ENDED))
    )
    # visit:ID → visit:erased-ROW, still unique, no longer the practice's visit id
    erased_key = literal(VISIT_KEY + STAND_IN) + cast(sends.c.id, String)
    visit_key = case((sends.c.key.like(VISIT_KEY + "%"), erased_key), else_=sends.c.key)
    for client_id in ids:
        connection.execute(
            update(sends)
            .where(sends.c.client_id == client_id)
            .values(
                client_id=STAND_IN + secrets.token_hex(8),
                email="",
                last_reply="",
                message_id=None,
                key=visit_key,
            )
        )
