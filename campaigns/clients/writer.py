"""Writing clean client and visit records: batched upserts that count what they changed.

Both ways data come in, an export file (``importer``) and the practice
software's API (``campaigns.cliniko``), write through ``TableWriter`` inside
a transaction the caller owns. Rows are upserted by ``id``; a row whose
values did not change is not written, so a second import of the same data
changes nothing and reports it unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import (
    Boolean,
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
)
from sqlalchemy.engine import Connection

from campaigns.store.prepared import PreparedStatement
from campaigns.store.tables import client_suppressions, client_tags, clients, suppressions, visits
from campaigns.store.upsert import insert_for

_INSERTED = literal_column("xmax = 0", Boolean)  # PostgreSQL: the row is new, not updated
_STAMPS = ("updated_at", "first_seen_at")  # set by the writer, not read from the data


class Counts(Protocol):
    """What a writer fills in: an ImportReport, or a sync's report of one table."""

    inserted: int
    updated: int
    unchanged: int
    suppressed: int


class TableWriter:
    """Upserts batches of ``clients`` or ``visits`` and, at ``finish``, fills in the counts.

    A visit is stamped ``first_seen_at`` when it is inserted and never again,
    so the report can tell a booking made after an email from an older one.
    Clients' tags are replaced only when the records carry ``tags`` (an API
    that has none leaves the tags of an earlier import alone).
    """

    def __init__(self, connection: Connection, kind: str, counts: Counts, now: datetime) -> None:
        self.connection = connection
        self.table = clients if kind == "clients" else visits
        self.counts = counts
        self.now = now
        self.sqlite = connection.dialect.name == "sqlite"
        # SQLite's upsert cannot say which rows were new; its write lock, held since
        # BEGIN IMMEDIATE, makes the difference of two counts exact.
        self._before = count_rows(connection, self.table) if self.sqlite else 0
        self._written = self._inserted = self._seen = 0

    def write(self, batch: list[dict]) -> None:
        """Upsert one batch of records with distinct ids."""
        if not batch:
            return
        written, inserted = _upsert(self.connection, self.table, batch, self.now)
        self._seen += len(batch)
        self._written += written
        self._inserted += inserted
        if self.table is clients:
            if "tags" in batch[0]:
                _replace_tags(self.connection, batch)
            self.counts.suppressed += _count_suppressed(self.connection, batch)

    def finish(self) -> None:
        inserted = count_rows(self.connection, self.table) - self._before
        self.counts.inserted += inserted if self.sqlite else self._inserted
        self.counts.updated += self._written - (inserted if self.sqlite else self._inserted)
        self.counts.unchanged += self._seen - self._written


def count_rows(connection: Connection, table: Table) -> int:
    return connection.execute(select(func.count()).select_from(table)).scalar_one()


def client_ids(connection: Connection) -> set[str]:
    """Every client id: what a visit must name (100,000 of them are about 10 MB)."""
    return set(connection.execute(select(clients.c.id)).scalars())


def _upsert_statement(connection: Connection, table: Table, columns: list[str]):
    """INSERT … ON CONFLICT (id) DO UPDATE, touching only rows whose values differ.

    ``first_seen_at`` is inserted and never updated, nor compared: a row seen
    before keeps its date, and counts as unchanged when nothing else changed.
    """
    # only the columns given: a column left out (tags, from an API that has none) keeps its value
    statement = insert_for(connection.dialect.name, table).values(
        {name: bindparam(name, type_=table.c[name].type) for name in columns}
    )
    data = [name for name in columns if name != "id" and name not in _STAMPS]
    return statement.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={name: statement.excluded[name] for name in [*data, "updated_at"]},
        where=or_(*(table.c[name].is_distinct_from(statement.excluded[name]) for name in data)),
    )


def _upsert(
    connection: Connection, table: Table, batch: list[dict], now: datetime
) -> tuple[int, int]:
    """Write a batch stamped ``updated_at = now``; return (rows written, of which inserted).

    SQLite reports 0 inserted: it cannot tell, and the caller counts the table instead.
    On SQLite the records are converted in place to what the driver stores
    (the tags and addresses the caller reads afterwards are text, unchanged).
    """
    stamps = {name: now for name in _STAMPS if name in table.c}
    statement = _upsert_statement(connection, table, [*batch[0], *stamps])
    if connection.dialect.name != "sqlite":
        # psycopg reports no rowcount for executemany; the rows returned are the written
        # ones, and a row this statement inserted (rather than updated) has no xmax.
        rows = [{**record, **stamps} for record in batch]
        written = connection.execute(statement.returning(_INSERTED), rows).scalars().all()
        return len(written), sum(written)
    # SQLite: plain rows to the driver's executemany (see campaigns.store.prepared),
    # whose rowcount counts the rows written.
    written = (
        PreparedStatement(statement, connection.dialect)
        .execute(connection, batch, **stamps)
        .rowcount
    )
    return written, 0


def _replace_tags(connection: Connection, batch: list[dict]) -> None:
    ids = [record["id"] for record in batch]
    connection.execute(delete(client_tags).where(client_tags.c.client_id.in_(ids)))
    tags = [
        {"client_id": record["id"], "tag": tag}
        for record in batch
        for tag in record["tags"].split(";")
        if tag
    ]
    if tags:
        connection.execute(insert(client_tags), tags)


def _count_suppressed(connection: Connection, batch: list[dict]) -> int:
    """Rows of the batch whose address, or whose client (an opt-out kept by id), is suppressed."""
    by_address = {record["email"]: record["id"] for record in batch}
    found = set(
        connection.execute(
            select(suppressions.c.address).where(suppressions.c.address.in_(by_address))
        ).scalars()
    )
    ids = set(
        connection.execute(
            select(client_suppressions.c.client_id).where(
                client_suppressions.c.client_id.in_(by_address.values())
            )
        ).scalars()
    )
    return sum(1 for record in batch if record["email"] in found or record["id"] in ids)
