"""Importing practice-software exports: streamed, validated, upserted, one transaction per file.

A file is read row by row and written in batches inside one transaction, so
a million visits never sit in memory and a file with a bad row leaves the
database exactly as it was (unless ``skip_invalid`` asks for the good rows).
Rows are upserted by ``id``; a row whose values did not change is not
written, which is how importing the same file twice changes nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Literal

from sqlalchemy import Table, delete, func, insert, or_, select
from sqlalchemy.engine import Connection, Engine

from campaigns.clients import csv_rows
from campaigns.errors import BadRow, CsvError
from campaigns.store.prepared import PreparedStatement
from campaigns.store.tables import client_tags, clients, suppressions, visits
from campaigns.store.upsert import insert_for

BATCH_ROWS = 2_000  # rows per INSERT … ON CONFLICT round trip
Kind = Literal["clients", "visits"]
Progress = Callable[[int, int], None]  # (bytes read, file size)


@dataclass
class ImportReport:
    """What an import did, or (dry run) would do."""

    kind: Kind
    path: Path
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[BadRow] = field(default_factory=list)
    suppressed: int = 0  # rows whose address is on the suppression list; it stays there
    dry_run: bool = False

    @property
    def rows(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def summary(self) -> str:
        verb = "would import" if self.dry_run else "imported"
        text = (
            f"{self.path}: {verb} {self.rows} {self.kind}: {self.inserted} inserted, "
            f"{self.updated} updated, {self.unchanged} unchanged, {len(self.rejected)} rejected"
        )
        if self.suppressed:
            text += f" ({self.suppressed} suppressed address(es) stay suppressed)"
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
    """Import one export file; raise CsvError (nothing written) if a row is bad."""
    now = now or datetime.now(UTC)
    report = ImportReport(kind, path, dry_run=dry_run)
    with engine.connect() as connection:
        connection = connection.execution_options(sqlite_immediate=True)
        transaction = connection.begin()
        try:
            _import_rows(connection, report, clinic_zone, now, progress)
            if report.rejected and not skip_invalid:
                raise CsvError(path, report.rejected)
        except BaseException:
            transaction.rollback()
            raise
        if dry_run:
            transaction.rollback()
        else:
            transaction.commit()
    return report


def _import_rows(
    connection: Connection,
    report: ImportReport,
    clinic_zone: tzinfo,
    now: datetime,
    progress: Progress | None,
) -> None:
    table = clients if report.kind == "clients" else visits
    before = connection.execute(select(func.count()).select_from(table)).scalar_one()
    known = _client_ids(connection) if report.kind == "visits" else None
    changed = valid = 0
    for batch in _batches(_valid_rows(report, clinic_zone, known, progress)):
        valid += len(batch)
        changed += _upsert(connection, table, batch, now)
        if report.kind == "clients":
            _replace_tags(connection, batch)
            report.suppressed += _count_suppressed(connection, batch)
    after = connection.execute(select(func.count()).select_from(table)).scalar_one()
    report.inserted = after - before
    report.updated = changed - report.inserted
    report.unchanged = valid - changed


def _valid_rows(
    report: ImportReport,
    clinic_zone: tzinfo,
    known_clients: set[str] | None,
    progress: Progress | None,
) -> Iterator[dict]:
    """Each good row as a record; each bad one appended to ``report.rejected``."""
    for line, row in _read_csv(report.path, report.kind, progress):
        try:
            if known_clients is None:
                yield csv_rows.parse_client(row)
                continue
            record = csv_rows.parse_visit(row, clinic_zone)
            if record["client_id"] not in known_clients:
                raise ValueError(f"client_id {record['client_id']!r} is not an imported client")
            yield record
        except ValueError as error:
            report.rejected.append(BadRow(line, str(error)))


def _read_csv(path: Path, kind: Kind, progress: Progress | None) -> Iterator[tuple[int, dict]]:
    required = (
        csv_rows.REQUIRED_CLIENT_COLUMNS if kind == "clients" else csv_rows.REQUIRED_VISIT_COLUMNS
    )
    try:
        raw = path.open("rb")
    except OSError as error:
        raise CsvError(path, f"cannot open: {error.strerror}") from None
    size = path.stat().st_size
    with raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
        reader = csv.reader(text)
        try:
            header = [name.strip().lower() for name in next(reader, [])]
            missing = [name for name in required if name not in header]
            if missing:
                raise CsvError(
                    path,
                    f"line 1: missing column(s) {', '.join(missing)}; a {kind} file needs "
                    f"{', '.join(required)} (found: {', '.join(header) or 'an empty file'})",
                )
            for number, values in enumerate(reader):
                if values:  # blank lines are skipped; cells past the header are ignored
                    yield reader.line_num, dict(zip(header, map(str.strip, values), strict=False))
                if progress and number % 1000 == 0:
                    progress(raw.tell(), size)
        except UnicodeDecodeError as error:
            line = reader.line_num + 1
            raise CsvError(path, f"line {line}: not UTF-8 text ({error.reason})") from None
        except csv.Error as error:
            raise CsvError(path, f"line {reader.line_num}: {error}") from None
    if progress:
        progress(size, size)


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


def _upsert_statement(connection: Connection, table: Table, columns: list[str]):
    """INSERT … ON CONFLICT (id) DO UPDATE, touching only rows whose values differ."""
    statement = insert_for(connection.dialect.name, table)
    data = [name for name in columns if name not in ("id", "updated_at")]
    return statement.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={name: statement.excluded[name] for name in [*data, "updated_at"]},
        where=or_(*(table.c[name].is_distinct_from(statement.excluded[name]) for name in data)),
    )


def _upsert(connection: Connection, table: Table, batch: list[dict], now: datetime) -> int:
    """Write a batch stamped ``updated_at = now``; return how many rows were inserted or changed.

    On SQLite the records are converted in place to what the driver stores
    (the tags and addresses the caller reads afterwards are text, unchanged).
    """
    statement = _upsert_statement(connection, table, [*batch[0], "updated_at"])
    if connection.dialect.name != "sqlite":
        # psycopg reports no rowcount for executemany; the rows returned are the written ones
        rows = [{**record, "updated_at": now} for record in batch]
        return len(connection.execute(statement.returning(table.c.id), rows).all())
    # SQLite: plain rows to the driver's executemany (see campaigns.store.prepared),
    # whose rowcount counts the rows written.
    return (
        PreparedStatement(statement, connection.dialect)
        .execute(connection, batch, updated_at=now)
        .rowcount
    )


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
    addresses = {record["email"] for record in batch}
    query = (
        select(func.count()).select_from(suppressions).where(suppressions.c.address.in_(addresses))
    )
    return connection.execute(query).scalar_one()


def _client_ids(connection: Connection) -> set[str]:
    return set(connection.execute(select(clients.c.id)).scalars())
