"""The suppression list: who may no longer be mailed, and adding to it.

Two lists. ``suppressions`` holds addresses: an unsubscribe, a hard bounce,
a hand-made entry. ``client_suppressions`` holds client ids, so an
unsubscribe follows the client to a new address; a hard bounce does not (the
new address may work). No import overrides either.

Marketing goes to nobody on either list. Transactional mail (appointment
reminders) needs no consent and ignores unsubscribes, but never goes to an
address that bounced or was forgotten. The same rules are asked twice: when
the audience is chosen and again the moment each message leaves.

Every entry is written by ``suppress_clients`` or ``suppress_addresses``
(the ledger's hard bounces aside), which leave forgotten clients and
addresses out. A client's own link undoes only their own unsubscribe; what
the clinic decided (``kept_off``) it cannot.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ColumnElement, bindparam, delete, exists, literal_column, not_, or_, select
from sqlalchemy.engine import Connection

from campaigns.store.forgotten import forgotten_among, hasher
from campaigns.store.tables import client_suppressions, clients, suppressions
from campaigns.store.upsert import insert_for

ALWAYS_SUPPRESSED = ("bounced", "forgotten")  # even transactional mail never goes there


def barred(address: ColumnElement, client_id: ColumnElement, *, marketing) -> ColumnElement[bool]:
    """True when a message of this kind may not go to this address of this client.

    ``marketing`` is a bool, or a boolean column (the ledger's rows carry it).
    """
    # Written into the SQL, not bound: the ledger compiles this once for its driver.
    reasons = [literal_column(f"'{reason}'") for reason in ALWAYS_SUPPRESSED]
    always = exists().where(suppressions.c.address == address, suppressions.c.reason.in_(reasons))
    if marketing is False:
        return always
    any_reason = or_(
        exists().where(suppressions.c.address == address),
        exists().where(client_suppressions.c.client_id == client_id),
    )
    if marketing is True:
        return any_reason
    return or_(always, marketing.is_(True) & any_reason)


def allowed(address: ColumnElement, client_id: ColumnElement, *, marketing) -> ColumnElement[bool]:
    return not_(barred(address, client_id, marketing=marketing))


def suppression_insert(dialect_name: str):
    """INSERT … ON CONFLICT DO NOTHING into the address list, built once per dialect."""
    if dialect_name not in _INSERTS:
        _INSERTS[dialect_name] = (
            insert_for(dialect_name, suppressions)
            .values(
                address=bindparam("address"),
                reason=bindparam("reason"),
                detail=bindparam("detail"),
                created_at=bindparam("created_at"),
            )
            .on_conflict_do_nothing(index_elements=["address"])
        )
    return _INSERTS[dialect_name]


_INSERTS: dict = {}


def suppress(connection: Connection, address: str, reason: str, detail: str, now: datetime) -> bool:
    """Put an address on the suppression list; False if it already was, or is forgotten."""
    return suppress_addresses(connection, [(address, reason, detail)], now) == 1


def suppress_client(
    connection: Connection, client_id: str, reason: str, detail: str, now: datetime
) -> bool:
    """Put a client on the suppression list by id; False if they already were, or are forgotten."""
    return suppress_clients(connection, [(client_id, reason, detail)], now) == 1


Entry = tuple[str, str, str]  # (client id or address, reason, detail)


def suppress_clients(connection: Connection, entries: Iterable[Entry], now: datetime) -> int:
    """The one writer of ``client_suppressions``: every path that keeps a client id comes here.

    A client already on the list keeps their first entry. A forgotten client
    (``rebook forget``) is left out: they are never mailed anyway, and storing
    their id again would undo part of the erasure (a mail scanner POSTing to
    an old unsubscribe link did exactly that). Returns the rows written when
    there is one entry (0 or 1); for several, how many were asked and kept.
    """
    rows: dict[str, dict] = {}  # one row per client, however often they asked
    for client_id, reason, detail in entries:
        rows.setdefault(client_id, {"client_id": client_id, "reason": reason,
                                    "detail": detail[:2000], "created_at": now})  # fmt: skip
    for client_id in ForgetCheck(connection).among("client", rows):
        del rows[client_id]
    return _insert_clients(connection, list(rows.values()))


def _insert_clients(connection: Connection, rows: list[dict]) -> int:
    """Rows already checked against ``forgotten``: callers are this module's writers only."""
    dialect = connection.dialect.name
    if dialect not in _CLIENT_INSERTS:
        _CLIENT_INSERTS[dialect] = insert_for(dialect, client_suppressions).on_conflict_do_nothing(
            index_elements=["client_id"]
        )
    return _insert(connection, _CLIENT_INSERTS[dialect], rows)


_CLIENT_INSERTS: dict = {}


def suppress_addresses(
    connection: Connection,
    entries: Iterable[Entry],
    now: datetime,
    check: ForgetCheck | None = None,
) -> int:
    """The one writer of ``suppressions`` but the ledger's hard bounces (``Ledger._record``).

    As ``suppress_clients``: an address already on the list keeps its first
    entry, and a forgotten address is left out, since storing it would keep
    in clear what ``forget`` keeps only as a keyed hash.
    """
    rows: dict[str, dict] = {}
    for address, reason, detail in entries:
        address = address.strip().lower()
        rows.setdefault(address, {"address": address, "reason": reason,
                                  "detail": detail[:2000], "created_at": now})  # fmt: skip
    for address in (check or ForgetCheck(connection)).among("address", rows):
        del rows[address]
    return _insert(connection, suppression_insert(connection.dialect.name), list(rows.values()))


class ForgetCheck:
    """Which client ids or addresses were forgotten; the key is read once, for a whole batch."""

    def __init__(self, connection: Connection) -> None:
        self.connection, self.hashes = connection, hasher(connection)

    def among(self, kind: str, values: Iterable[str]) -> set[str]:
        """Those of ``values`` (``kind`` "client" ids or "address"es) that were forgotten."""
        if self.hashes is None:  # nobody was ever forgotten
            return set()
        hashed = {getattr(self.hashes, kind)(value): value for value in values}
        return {hashed[found] for found in forgotten_among(self.connection, hashed)}


def _insert(connection: Connection, statement, rows: list[dict]) -> int:
    if len(rows) == 1:
        return int(_inserted(connection, statement, rows[0]))
    if rows:
        connection.execute(statement, rows)
    return len(rows)


def _inserted(connection: Connection, statement, values=None) -> bool:
    """Whether an ``INSERT … ON CONFLICT DO NOTHING`` wrote its row.

    SQLAlchemy reports an INSERT's row count only when asked (``preserve_rowcount``):
    without it psycopg's is -1, and the answer would always be no on PostgreSQL.
    """
    counted = connection.execution_options(preserve_rowcount=True)
    return counted.execute(statement, values).rowcount == 1


def unsubscribe_client(connection: Connection, client_id: str, detail: str, now: datetime) -> None:
    """A client's own unsubscribe (their link): the client by id and their address now."""
    unsubscribe_clients(connection, [(client_id, detail)], now)


def unsubscribe_clients(
    connection: Connection, requests: list[tuple[str, str]], now: datetime
) -> set[str]:
    """Many clients' own unsubscribes, (client id, detail) each, in a few statements.

    The web endpoint writes what arrived meanwhile as one batch, one short
    transaction for them all. A link of a client since forgotten stores nothing.
    Returns the ids the clinic keeps off the list at its end (``kept_off``):
    their page must not offer to subscribe again.
    """
    if not requests:
        return set()
    check = ForgetCheck(connection)  # the batch's statements are few: the endpoint waits on them
    rows: dict[str, dict] = {}
    for client_id, detail in requests:
        rows.setdefault(client_id, {"client_id": client_id, "reason": "unsubscribed",
                                    "detail": detail[:2000], "created_at": now})  # fmt: skip
    gone = check.among("client", rows)
    _insert_clients(connection, [row for key, row in rows.items() if key not in gone])
    known = connection.execute(_KNOWN, {"ids": list(rows)}).all()
    emails = {client_id: email for client_id, email, _ in known}
    addresses = [
        (emails[client_id], "unsubscribed", detail)
        for client_id, detail in requests
        if emails.get(client_id) is not None
    ]
    suppress_addresses(connection, addresses, now, check)
    return gone | {client_id for client_id, _, other in known if other}


SUBSCRIBED, UNSUBSCRIBED, KEPT_OFF = "subscribed", "unsubscribed", "kept off"
OWN = literal_column("'unsubscribed'")  # the one reason a client's own link may undo


def kept_off(connection: Connection, ids: Iterable[str]) -> set[str]:
    """The clients kept off marketing at the clinic's end, which their own link cannot undo.

    Any entry but their own unsubscribe, on their id or on their address now
    (an owner's ``rebook unsubscribe``, a hard bounce, a complaint), or a
    forget. A client forgotten answers as one the clinic keeps off, so no page
    tells whether a client's data still exist.
    """
    ids = list(ids)
    if not ids:
        return set()
    by_id = select(client_suppressions.c.client_id).where(
        client_suppressions.c.client_id.in_(ids), client_suppressions.c.reason != OWN
    )
    by_address = (
        select(clients.c.id)
        .join(suppressions, suppressions.c.address == clients.c.email)
        .where(clients.c.id.in_(ids), suppressions.c.reason != OWN)
    )
    found = set(connection.execute(by_id.union(by_address)).scalars())
    return found | ForgetCheck(connection).among("client", ids)


def _other_reason(client_id: ColumnElement, address: ColumnElement) -> ColumnElement[bool]:
    """True when an entry but the client's own unsubscribe is on their id or their address."""
    return or_(
        exists().where(
            client_suppressions.c.client_id == client_id, client_suppressions.c.reason != OWN
        ),
        exists().where(suppressions.c.address == address, suppressions.c.reason != OWN),
    )


def standing(connection: Connection, client_id: str) -> str:
    """``SUBSCRIBED``, ``UNSUBSCRIBED`` (by their own choice) or ``KEPT_OFF`` (``kept_off``)."""
    if kept_off(connection, [client_id]):
        return KEPT_OFF
    own = exists().where(client_suppressions.c.client_id == client_id)
    address = _address_of(connection, client_id)
    if address is not None:
        own = or_(own, exists().where(suppressions.c.address == address))
    return UNSUBSCRIBED if connection.execute(select(own)).scalar() else SUBSCRIBED


def resubscribe_client(connection: Connection, client_id: str) -> bool:
    """Undo the client's own unsubscribe; False, changing nothing, when they are ``kept_off``."""
    if kept_off(connection, [client_id]):
        return False
    connection.execute(
        delete(client_suppressions).where(
            client_suppressions.c.client_id == client_id, client_suppressions.c.reason == OWN
        )
    )
    address = _address_of(connection, client_id)
    if address is not None:
        connection.execute(
            delete(suppressions).where(
                suppressions.c.address == address, suppressions.c.reason == OWN
            )
        )
    return True


def _address_of(connection: Connection, client_id: str) -> str | None:
    query = select(clients.c.email).where(clients.c.id == client_id)
    return connection.execute(query).scalar()


# Built once: the endpoint runs it for every batch of unsubscribes.
_KNOWN = select(clients.c.id, clients.c.email, _other_reason(clients.c.id, clients.c.email)).where(
    clients.c.id.in_(bindparam("ids", expanding=True))
)
