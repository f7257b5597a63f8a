"""The suppression list: who may no longer be mailed, and adding to it.

Two lists. ``suppressions`` holds addresses: an unsubscribe, a hard bounce,
a hand-made entry. ``client_suppressions`` holds client ids, so an
unsubscribe follows the client to a new address; a hard bounce does not (the
new address may work). No import overrides either.

Marketing goes to nobody on either list. Transactional mail (appointment
reminders) needs no consent and ignores unsubscribes, but never goes to an
address that bounced or was forgotten. The same rules are asked twice: when
the audience is chosen and again the moment each message leaves.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, bindparam, delete, exists, literal_column, not_, or_, select
from sqlalchemy.engine import Connection

from campaigns.store.forgotten import forgotten_at, hasher
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
    """Put an address on the suppression list; False if it already was."""
    values = {
        "address": address.strip().lower(),
        "reason": reason,
        "detail": detail[:2000],
        "created_at": now,
    }
    statement = suppression_insert(connection.dialect.name)
    return _inserted(connection, statement, values)


def suppress_client(
    connection: Connection, client_id: str, reason: str, detail: str, now: datetime
) -> bool:
    """Put a client on the suppression list by id; False if they already were."""
    statement = (
        insert_for(connection.dialect.name, client_suppressions)
        .values(client_id=client_id, reason=reason, detail=detail[:2000], created_at=now)
        .on_conflict_do_nothing(index_elements=["client_id"])
    )
    return _inserted(connection, statement)


def _inserted(connection: Connection, statement, values=None) -> bool:
    """Whether an ``INSERT … ON CONFLICT DO NOTHING`` wrote its row.

    SQLAlchemy reports an INSERT's row count only when asked (``preserve_rowcount``):
    without it psycopg's is -1, and the answer would always be no on PostgreSQL.
    """
    counted = connection.execution_options(preserve_rowcount=True)
    return counted.execute(statement, values).rowcount == 1


def unsubscribe_client(connection: Connection, client_id: str, detail: str, now: datetime) -> None:
    """A client's own unsubscribe (their link): the client by id and their address now.

    A link of a client since forgotten stores nothing: they are already never
    mailed, and keeping their id again would undo part of the erasure.
    """
    hashes = hasher(connection)
    if hashes is not None and forgotten_at(connection, hashes.client(client_id)) is not None:
        return
    suppress_client(connection, client_id, "unsubscribed", detail, now)
    address = _address_of(connection, client_id)
    if address is not None:
        suppress(connection, address, "unsubscribed", detail, now)


def unsubscribe_clients(
    connection: Connection, requests: list[tuple[str, str]], now: datetime
) -> None:
    """Many clients' own unsubscribes, (client id, detail) each, in three statements.

    The same as ``unsubscribe_client`` for each: the web endpoint writes what
    arrived meanwhile as one batch, one short transaction for them all.
    """
    if not requests:
        return
    dialect = connection.dialect.name
    by_id = insert_for(dialect, client_suppressions).on_conflict_do_nothing(
        index_elements=["client_id"]
    )
    rows = {}  # one row per client, however often they asked
    for client_id, detail in requests:
        rows.setdefault(client_id, {"client_id": client_id, "reason": "unsubscribed",
                                    "detail": detail[:2000], "created_at": now})  # fmt: skip
    connection.execute(by_id, list(rows.values()))
    ids = list(rows)
    emails = dict(
        connection.execute(select(clients.c.id, clients.c.email).where(clients.c.id.in_(ids))).all()
    )
    addresses = {}
    for client_id, detail in requests:
        if emails.get(client_id) is not None:
            address = emails[client_id].strip().lower()
            addresses.setdefault(address, {"address": address, "reason": "unsubscribed",
                                           "detail": detail[:2000], "created_at": now})  # fmt: skip
    if addresses:
        connection.execute(suppression_insert(dialect), list(addresses.values()))


def resubscribe_client(connection: Connection, client_id: str) -> None:
    """Undo the client's own unsubscribe; an owner's, a bounce or a forget stays."""
    connection.execute(
        delete(client_suppressions).where(
            client_suppressions.c.client_id == client_id,
            client_suppressions.c.reason == "unsubscribed",
        )
    )
    address = _address_of(connection, client_id)
    if address is not None:
        connection.execute(
            delete(suppressions).where(
                suppressions.c.address == address, suppressions.c.reason == "unsubscribed"
            )
        )


def _address_of(connection: Connection, client_id: str) -> str | None:
    query = select(clients.c.email).where(clients.c.id == client_id)
    return connection.execute(query).scalar()
