"""Importing practice-software exports: streamed, validated, upserted, one transaction per file.

A file is read row by row and written in batches inside one transaction, so
a million visits never sit in memory and a file with a bad row leaves the
database exactly as it was (unless ``skip_invalid`` asks for the good rows).
Rows are upserted by ``id``; a row whose values did not change is not
written, which is how importing the same file twice changes nothing. A visit
is stamped ``first_seen_at`` by the import that inserts it and never again,
so the report can tell a booking made after an email from an older one. An id
twice in one file is a mistake (which row should win?), so the second is
rejected.

Imports of one database run one at a time (SQLite's write lock, a
PostgreSQL advisory lock), and the inserted/updated counts come from the
writes themselves, so two imports started together each report what they did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from campaigns.clients import csv_rows
from campaigns.clients.csv_file import Kind, Progress, read_csv
from campaigns.clients.writer import TableWriter, client_ids
from campaigns.errors import BadRow, CsvError, StorageError
from campaigns.store.database import BUSY_TIMEOUT_MS, REFRESH_STATISTICS_FROM, refresh_statistics
from campaigns.store.forgotten import ForgetHasher, forgotten_hashes, hasher, remember
from campaigns.store.refusals import storage_failure
from campaigns.store.tables import clients as client_rows

BATCH_ROWS = 2_000  # rows per INSERT … ON CONFLICT round trip
_TABLES = {"clients": ("clients", "client_tags"), "visits": ("visits",)}  # what an import writes
_PG_IMPORT_LOCK = 0x7265626F6F6B + 1  # one import at a time, as SQLite's write lock gives
_UNKNOWN_CLIENT = "is not an imported client"


@dataclass
class ImportReport:
    """What an import did, or (dry run) would do."""

    kind: Kind
    path: Path | str  # the file, or where the rows came from ("Cliniko")
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[BadRow] = field(default_factory=list)  # the first CsvError.SHOWN_ROWS
    rejected_count: int = 0
    unknown_clients: int = 0  # visits rejected because their client was not imported
    suppressed: int = 0  # rows whose address is on the suppression list; it stays there
    forgotten: int = 0  # rows of forgotten clients (rebook forget), left out
    dry_run: bool = False

    @property
    def rows(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def reject(self, line: int, reason: str) -> None:
        """Count a bad row; keep the first few (a million bad rows are one mistake, not a list)."""
        self.rejected_count += 1
        if len(self.rejected) < CsvError.SHOWN_ROWS:
            self.rejected.append(BadRow(line, reason))

    def hint(self) -> str:
        """When most visits were refused for want of their client, the file order was wrong."""
        if self.unknown_clients * 2 <= self.rejected_count:
            return ""
        return (
            f"{self.unknown_clients} of the {self.rejected_count} bad row(s) name a client "
            "that is not imported: import the clients file first (rebook import clients FILE)"
        )

    def summary(self) -> str:
        verb = "would import" if self.dry_run else "imported"
        text = (
            f"{self.path}: {verb} {self.rows} {self.kind}: {self.inserted} inserted, "
            f"{self.updated} updated, {self.unchanged} unchanged, {self.rejected_count} rejected"
        )
        if self.suppressed:
            text += f" ({self.suppressed} suppressed address(es) stay suppressed)"
        if self.forgotten:
            text += (
                f"; {self.forgotten} row(s) of forgotten clients left out (erased with rebook "
                "forget: never imported or mailed again)"
            )
        return text


def import_file(
    engine: Engine,
    kind: Kind,
    path: Path,
    *,
    clinic_zone: tzinfo,
    skip_invalid: bool = False,
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import one export file; nothing is written if a row is bad (CsvError) or the
    database refuses the write, its disk full or read-only (StorageError)."""
    now = now or datetime.now(UTC)
    report = ImportReport(kind, path, dry_run=dry_run)
    try:
        _import_in_one_transaction(engine, report, clinic_zone, skip_invalid, now, progress)
    except SQLAlchemyError as error:
        refused = storage_failure(error, engine.url)
        if refused is None:
            raise
        raise StorageError(f"{path}: nothing imported: {refused}") from None
    if not dry_run and report.inserted + report.updated >= REFRESH_STATISTICS_FROM:
        refresh_statistics(engine, *_TABLES[kind])
    return report


def _import_in_one_transaction(
    engine: Engine,
    report: ImportReport,
    clinic_zone: tzinfo,
    skip_invalid: bool,
    now: datetime,
    progress: Progress | None,
) -> None:
    path = report.path
    with engine.connect() as connection:
        connection = connection.execution_options(sqlite_immediate=True)
        transaction = begin_import(
            connection, lambda why: CsvError(path, f"nothing imported: {why}")
        )
        try:
            lock_imports(connection)
            _import_rows(connection, report, clinic_zone, now, progress)
            if report.rejected_count and not skip_invalid:
                raise CsvError(path, report.rejected, total=report.rejected_count,
                               hint=report.hint())  # fmt: skip
        except BaseException:
            transaction.rollback()
            raise
        if report.dry_run:
            transaction.rollback()
        else:
            transaction.commit()


def lock_imports(connection: Connection) -> None:
    """PostgreSQL: wait for any other import (or forget) to finish; held to the transaction's end.

    SQLite needs nothing: its write lock, taken at BEGIN IMMEDIATE, already serialises them.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"SELECT pg_advisory_xact_lock({_PG_IMPORT_LOCK})"))


def begin_import(connection: Connection, failure: Callable[[str], Exception]):
    """A writing transaction; on SQLite it waits for the write lock, for a while only.

    ``failure(why)`` is what to raise when the lock never came: an import
    names its file, a sync its source.
    """
    try:
        return connection.begin()
    except OperationalError as error:
        if "locked" not in str(error.orig):
            raise
        raise failure(
            f"the database stayed locked for {BUSY_TIMEOUT_MS // 1000} s "
            "(another rebook import or send is writing to it); try again when it has finished"
        ) from None


def _import_rows(
    connection: Connection,
    report: ImportReport,
    clinic_zone: tzinfo,
    now: datetime,
    progress: Progress | None,
) -> None:
    writer = TableWriter(connection, report.kind, report, now)
    known = client_ids(connection) if report.kind == "visits" else None
    forgotten = Forgotten.load(connection)
    for batch in _batches(_valid_rows(report, clinic_zone, known, forgotten, progress)):
        writer.write(batch)
    writer.finish()
    if forgotten is not None:
        forgotten.remember_new_ids(connection, now)


@dataclass
class Forgotten:
    """Forgotten addresses and client ids (``rebook forget``), by their keyed hashes.

    A client row is left out by either. One left out by its address alone,
    under an id rebook has not seen, is the same person under a new id in
    the practice software (or someone who shares the address, which was
    erased for everyone who had it): that id is remembered as forgotten too,
    in the import's transaction, so their visits are left out with them
    rather than refused for want of their client, and a later address under
    that id does not bring them back. A client rebook already has keeps
    their row as it was, and is not forgotten for it.
    """

    hasher: ForgetHasher
    addresses: set[str]
    clients: set[str]
    new_ids: dict[str, str] = field(default_factory=dict)  # id → its hash, met under a
    # forgotten address

    @classmethod
    def load(cls, connection: Connection) -> Forgotten | None:
        """None while nobody was ever forgotten: then no row is hashed at all."""
        found = hasher(connection)
        if found is None:
            return None
        addresses = forgotten_hashes(connection, "address")
        return cls(found, addresses, forgotten_hashes(connection, "client"))

    def client(self, client_id: str) -> bool:
        return self.hasher.client(client_id) in self.clients

    def left_out(self, record: dict) -> bool:
        """Whether a client record is a forgotten client's (its id or its address)."""
        hashed = self.hasher.client(record["id"])
        if hashed in self.clients:
            return True
        if self.hasher.address(record["email"]) not in self.addresses:
            return False
        self.new_ids[record["id"]] = hashed
        return True

    def remember_new_ids(self, connection: Connection, now: datetime) -> None:
        """Forget the ids met under a forgotten address, but those of clients rebook has."""
        ids = list(self.new_ids)  # as few as the people forgotten: one query per batch is plenty
        known: set[str] = set()
        for start in range(0, len(ids), BATCH_ROWS):
            query = select(client_rows.c.id).where(
                client_rows.c.id.in_(ids[start : start + BATCH_ROWS])
            )
            known.update(connection.execute(query).scalars())
        remember(connection, "client", [self.new_ids[i] for i in ids if i not in known], now)


def _valid_rows(
    report: ImportReport,
    clinic_zone: tzinfo,
    known_clients: set[str] | None,
    forgotten: Forgotten | None,
    progress: Progress | None,
) -> Iterator[dict]:
    """Each good row as a record; each bad one counted in ``report``.

    A row of a forgotten client is left out and counted, neither imported
    nor rejected: a clients row by its id or its address (``Forgotten``), a
    visits row by its client id when that client is not imported.

    ``first_lines`` (id → line) costs about 125 bytes per row (peak RSS 70 →
    200 MB at a million visits), the price of naming both lines of a duplicate.
    """
    first_lines: dict[str, int] = {}
    for line, row, problem in read_csv(report.path, report.kind, progress):
        try:
            if problem:
                raise ValueError(problem)
            if known_clients is None:
                record = csv_rows.parse_client(row)
                if forgotten is not None and forgotten.left_out(record):
                    report.forgotten += 1
                    continue
            else:
                record = csv_rows.parse_visit(row, clinic_zone)
                if record["client_id"] not in known_clients:
                    if forgotten is not None and forgotten.client(record["client_id"]):
                        report.forgotten += 1
                        continue
                    report.unknown_clients += 1
                    raise ValueError(
                        f"client_id {csv_rows.excerpt(record['client_id'])} {_UNKNOWN_CLIENT}"
                    )
            first = first_lines.setdefault(record["id"], line)
            if first != line:
                raise ValueError(
                    f"id {csv_rows.excerpt(record['id'])} is already on line {first}; "
                    "each id may appear once"
                )
            yield record
        except ValueError as error:
            report.reject(line, str(error))


def _batches(records: Iterator[dict]) -> Iterator[list[dict]]:
    """Batches of unique ids: the last row for an id wins, as it would row by row."""
    batch: dict[str, dict] = {}
    for record in records:
        batch[record["id"]] = record
        if len(batch) >= BATCH_ROWS:
            yield list(batch.values())
            batch = {}
    if batch:
        yield list(batch.values())
