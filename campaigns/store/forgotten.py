"""Forgotten addresses and clients, kept only as keyed hashes.

``rebook forget`` erases a client and keeps, for each address they had and
for their id, HMAC-SHA256 under the forget key (``campaigns.store.secrets``):
enough to recognise the address when a later export brings it back, nothing
to read it from. A plain hash would not do: anyone could hash a list of
likely addresses and test them. The key lives in the database, generated on
the first forget, so a copy of the table alone tells nothing.

Callers pass values already normalised the way every table stores them
(addresses by ``campaigns.clients.csv_rows.parse_email``: lower case, the
domain in one form whether it was typed as Unicode or as an IDNA A-label).
Hashing costs about a microsecond, so the importer hashes every row.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection

from campaigns.store.secrets import FORGET_KEY_NAME, make_key, stored_key
from campaigns.store.tables import forgotten
from campaigns.store.upsert import insert_for


class ForgetHasher:
    """Keyed hashes of addresses and client ids, under one forget key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _hash(self, kind: str, value: str) -> str:
        # hmac.digest is OpenSSL's one call: about half the cost of hmac.new(...).hexdigest()
        return hmac.digest(self._key, f"{kind}:{value}".encode(), "sha256").hex()

    def address(self, address: str) -> str:
        return self._hash("address", address)

    def client(self, client_id: str) -> str:
        return self._hash("client", client_id)


def hasher(connection: Connection) -> ForgetHasher | None:
    """The hasher under the stored key; None while nobody was ever forgotten."""
    key = stored_key(connection, FORGET_KEY_NAME)
    return None if key is None else ForgetHasher(key)


def making_hasher(connection: Connection) -> ForgetHasher:
    """The hasher; on the first forget its key is made now, in the caller's transaction."""
    return ForgetHasher(make_key(connection, FORGET_KEY_NAME))


def forgotten_hashes(connection: Connection, kind: str) -> set[str]:
    """Every hash of one kind, as a set: forgotten clients are few (hundreds, not millions)."""
    query = select(forgotten.c.hash).where(forgotten.c.kind == kind)
    return set(connection.execute(query).scalars())


def forgotten_at(connection: Connection, hashed: str) -> datetime | None:
    query = select(forgotten.c.forgotten_at).where(forgotten.c.hash == hashed)
    return connection.execute(query).scalar()


def count_forgotten(connection: Connection) -> int:
    """Forgotten addresses (a client with two addresses counts twice)."""
    query = select(func.count()).select_from(forgotten).where(forgotten.c.kind == "address")
    return connection.execute(query).scalar_one()


def remember(connection: Connection, kind: str, hashes: Iterable[str], now: datetime) -> None:
    """Add hashes; one already there keeps its first date."""
    rows = [{"hash": hashed, "kind": kind, "forgotten_at": now} for hashed in hashes]
    if rows:
        statement = insert_for(connection.dialect.name, forgotten).on_conflict_do_nothing(
            index_elements=[forgotten.c.hash]
        )
        connection.execute(statement, rows)


def forgotten_among(connection: Connection, hashes: Iterable[str]) -> set[str]:
    """Which of ``hashes`` are forgotten, in one query."""
    wanted = list(hashes)
    if not wanted:
        return set()
    return set(connection.execute(_AMONG, {"hashes": wanted}).scalars())


_AMONG = select(forgotten.c.hash).where(forgotten.c.hash.in_(bindparam("hashes", expanding=True)))
