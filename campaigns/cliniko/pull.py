"""One Cliniko sync: fetch what changed into a private staging file, then write it all at once.

Fetching is slow (Cliniko allows 200 requests a minute: a first pull of a
big account takes most of an hour), writing is quick. So pages are mapped
and checked as they arrive and kept in a temporary file, never in memory,
and only when the last page is in does one transaction write them: the
database is locked for seconds, not for the pull, and a sync that fails
half-way (network, Cliniko, a bad page, a stop) writes nothing at all.

After a first full pull each sync asks only for what was updated since the
last one began, less ``OVERLAP`` for clocks that disagree, plus the
appointments whose start has passed since (a booking becomes a visit without
anyone touching it in Cliniko). A full pull every ``full_every`` catches what
``updated_at`` never showed. The mark moves only with a committed sync.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from campaigns.clients import csv_rows
from campaigns.clients.importer import (
    BATCH_ROWS,
    Forgotten,
    ImportReport,
    begin_import,
    lock_imports,
)
from campaigns.clients.writer import TableWriter, client_ids
from campaigns.cliniko import mapping
from campaigns.cliniko.api import ClinikoApi, ClinikoError
from campaigns.config import Settings
from campaigns.store.refusals import storage_failure
from campaigns.store.tables import app_state, clients
from campaigns.store.upsert import set_state

OVERLAP = timedelta(minutes=10)
_MARK, _FULL = "cliniko:mark", "cliniko:full"  # app_state: when the last sync / full pull began
# Each listing in the order written: a patient or appointment in two lists
# (it moved while we read) ends as the later list says.
PATIENTS = ("patients", "patients/archived")
APPOINTMENTS = (
    "individual_appointments",
    "individual_appointments/cancelled",
    "individual_appointments/deleted",
)
Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass
class SyncReport:
    """What a sync did: the clients and visits written, and what it left out and why."""

    full: bool
    since: datetime | None
    clients: ImportReport = field(default_factory=lambda: ImportReport("clients", "Cliniko"))
    visits: ImportReport = field(default_factory=lambda: ImportReport("visits", "Cliniko"))
    no_email: int = 0  # patients without an address: nobody to write to
    withdrawn: int = 0  # deleted patients whose consent was withdrawn
    left_out: int = 0  # appointments of patients not imported (no address, rejected)
    requests: int = 0
    reading: float = 0.0  # seconds fetching from Cliniko (the database untouched)
    writing: float = 0.0  # seconds in the one write transaction

    def lines(self) -> list[str]:
        since = "full pull" if self.full else f"changes since {self.since:%Y-%m-%d %H:%M} UTC"
        took = f"{self.reading:.1f} s reading, {self.writing:.1f} s writing"
        lines = [
            f"Cliniko ({since}, {self.requests} requests, {took}):",
            "  " + self.clients.summary().removeprefix("Cliniko: "),
            "  " + self.visits.summary().removeprefix("Cliniko: "),
        ]
        if self.no_email or self.left_out:
            lines.append(
                f"  left out: {self.no_email} patient(s) without an email address, "
                f"{self.left_out} appointment(s) of patients not imported"
            )
        if self.withdrawn:
            lines.append(f"  {self.withdrawn} deleted patient(s) will get no more marketing")
        return lines


def user_agent(settings: Settings) -> str:
    """``rebook for Clinic (address)``: the app and a contact, as Cliniko asks."""
    cliniko = settings.sync.cliniko
    if cliniko.user_agent:
        return cliniko.user_agent
    name = "".join(c for c in settings.clinic.name if c not in "()\r\n").strip()
    contact = settings.mail.reply_to or settings.mail.from_
    address = contact.rpartition("<")[2].rstrip(">").strip()
    return f"rebook for {name} ({address})"


async def sync_cliniko(
    engine: Engine,
    settings: Settings,
    now: datetime,
    *,
    full: bool = False,
    progress: Progress | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> SyncReport:
    """Pull what changed in Cliniko and write it; on failure raise, having written nothing."""
    cliniko = settings.sync.cliniko
    mark, last_full, rules = await asyncio.to_thread(_marks, engine)
    full = (
        full or mark is None or last_full is None or now - last_full >= cliniko.full_every
        or rules != _rules(cliniko)  # a new consent rule or service name applies to everyone
    )  # fmt: skip
    report = SyncReport(full, None if full else mark - OVERLAP)
    started = time.perf_counter()
    with Staging() as staging:
        async with ClinikoApi(cliniko, user_agent(settings), transport=transport) as api:
            names = await _names(api, cliniko.services)
            await _fetch_patients(api, staging, report, cliniko.consent, progress)
            await _fetch_appointments(api, staging, report, names, now, progress)
            if not full:  # bookings whose time came since the last sync are visits now
                begun = [f"starts_at:>{_utc(report.since)}", f"starts_at:<={_utc(now)}"]
                await _fetch(api, staging, report, "individual_appointments", begun, names,
                             now, progress)  # fmt: skip
            report.requests = api.requests
        staging.rewind()
        report.reading = time.perf_counter() - started
        await _finish_once_begun(
            asyncio.to_thread(_write, engine, staging, report, now, progress, _rules(cliniko))
        )
        report.writing = time.perf_counter() - started - report.reading
    return report


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")  # readme, "Filtering Results": DateTime in UTC


async def _finish_once_begun(writing) -> None:
    """A write that has begun ends, and is reported, even when the caller is cancelled.

    The write is one transaction in a thread, which a cancel would not stop
    but only hide: the service would log "stopped" and the sync commit a
    moment later, unreported. Cancelled while reading, a sync writes nothing;
    cancelled while writing, it finishes and returns its report.
    """
    task = asyncio.ensure_future(writing)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()


async def _names(api: ClinikoApi, renamed: dict[str, str]) -> mapping.Names:
    """Every appointment type and practitioner, archived and inactive ones too (small lists)."""
    services, therapists = {}, {}
    for path in ("appointment_types", "appointment_types/archived"):
        async for page in api.listing(path):
            for row in filter(lambda row: isinstance(row, dict), page.rows):
                services[str(row.get("id"))] = mapping.service_of(row, renamed)
    for path in ("practitioners", "practitioners/inactive"):
        async for page in api.listing(path):
            for row in filter(lambda row: isinstance(row, dict), page.rows):
                therapists[str(row.get("id"))] = mapping.therapist_of(row)
    return mapping.Names(services, therapists)


def _filters(report: SyncReport) -> list[str]:
    # readme, "Filtering Tips": "records that have been updated since a certain time"
    return [] if report.full else [f"updated_at:>{_utc(report.since)}"]


async def _fetch_patients(api, staging, report: SyncReport, rule: str, progress) -> None:
    for path in PATIENTS:
        async for page in api.listing(path, _filters(report)):
            records = {}
            for patient in page.rows:
                try:
                    record = mapping.client_record(mapping.as_record(patient), rule)
                except ValueError as error:
                    report.clients.reject(f"patient {_id_of(patient)}", str(error))
                    continue
                if record is None:
                    report.no_email += 1
                else:
                    records[record["id"]] = record
            staging.add("clients", records)
            _tell(progress, path, page)
    async for page in api.listing("patients/deleted", _filters(report)):
        ids = {}
        for patient in page.rows:
            try:
                link = mapping.linked_id(mapping.as_record(patient))
                ids[mapping.cliniko_id(link, "link")] = True
            except ValueError as error:
                report.clients.reject("a deleted patient", str(error))
        staging.add("deleted", ids)
        _tell(progress, "patients/deleted", page)


async def _fetch_appointments(api, staging, report, names, now, progress) -> None:
    for path in APPOINTMENTS:
        await _fetch(api, staging, report, path, _filters(report), names, now, progress)


async def _fetch(api, staging, report, path, filters, names, now, progress) -> None:
    async for page in api.listing(path, filters):
        records = {}
        for appointment in page.rows:
            try:
                record = mapping.visit_record(mapping.as_record(appointment), names, now)
            except ValueError as error:
                report.visits.reject(f"appointment {_id_of(appointment)}", str(error))
            else:
                records[record["id"]] = record
        staging.add("visits", records)
        _tell(progress, path, page)


def _id_of(record: object) -> str:
    """How a rejected row is named: its id as Cliniko wrote it, quoted when it is odd."""
    found = str(record.get("id", "?")) if isinstance(record, dict) else "?"
    return found if found.isdigit() and len(found) < 20 else csv_rows.excerpt(found)


def _tell(progress: Progress | None, path: str, page) -> None:
    if progress is not None:
        done = (page.number - 1) * 100 + len(page.rows)
        progress(f"reading {path}", done, max(done, page.total))


class Staging:
    """Checked records waiting for the write: pickled batches in anonymous temporary files.

    The files vanish when closed, or with the process. Pickle is safe here:
    rebook reads back only what it wrote a moment ago.
    """

    KINDS = ("clients", "deleted", "visits")

    def __init__(self) -> None:
        self.files = {  # closed by __exit__
            kind: tempfile.TemporaryFile(prefix="rebook-cliniko-")  # noqa: SIM115
            for kind in self.KINDS
        }
        self.pending: dict[str, dict] = {kind: {} for kind in self.KINDS}
        self.counts = dict.fromkeys(self.KINDS, 0)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        for file in self.files.values():
            file.close()

    def add(self, kind: str, records: dict) -> None:
        """Keep records by id; the later wins within a batch, as the later write would."""
        pending = self.pending[kind]
        pending.update(records)
        self.counts[kind] += len(records)
        if len(pending) >= BATCH_ROWS:
            self._flush(kind)

    def _flush(self, kind: str) -> None:
        if self.pending[kind]:
            pickle.dump(self.pending[kind], self.files[kind], pickle.HIGHEST_PROTOCOL)
            self.pending[kind] = {}

    def rewind(self) -> None:
        """Everything fetched is in: read it from the start."""
        for kind in self.KINDS:
            self._flush(kind)
            self.files[kind].seek(0)

    def batches(self, kind: str) -> Iterator[dict]:
        file = self.files[kind]
        while True:
            try:
                yield pickle.load(file)
            except EOFError:
                return


def _write(engine: Engine, staging: Staging, report: SyncReport, now: datetime, progress,
           rules: str) -> None:  # fmt: skip
    """Everything staged, in one transaction, with the new marks.

    Two syncs may overlap (a slow one by hand, the service's): the one that
    began earlier holds older data, and must not write over the later one's.
    """
    try:
        _write_in_one_transaction(engine, staging, report, now, progress, rules)
    except SQLAlchemyError as error:  # the database's disk full, or read-only
        refused = storage_failure(error, engine.url)
        if refused is None:
            raise
        raise ClinikoError(f"nothing written: {refused}") from None


def _write_in_one_transaction(engine: Engine, staging: Staging, report: SyncReport, now,
                              progress, rules: str) -> None:  # fmt: skip
    with engine.connect() as connection:
        connection = connection.execution_options(sqlite_immediate=True)
        transaction = begin_import(connection, lambda why: ClinikoError(f"nothing written: {why}"))
        with transaction:
            lock_imports(connection)
            mark = connection.execute(
                select(app_state.c.created_at).where(app_state.c.name == _MARK)
            ).scalar()
            if mark is not None and mark > now:
                raise ClinikoError(
                    f"nothing written: a sync that began later ({mark:%H:%M:%S} UTC) has "
                    "already written newer data"
                )
            _write_clients(connection, staging, report, now)
            _write_visits(connection, staging, report, now, progress)
            _store_marks(connection, now, report.full, rules)


def _write_clients(connection: Connection, staging: Staging, report: SyncReport, now) -> None:
    """A forgotten patient stays forgotten by Cliniko id and by address, as in a CSV import:
    the same patient with a new address is still the person who asked to be forgotten."""
    forgotten = Forgotten.load(connection)
    writer = TableWriter(connection, "clients", report.clients, now)
    for batch in staging.batches("clients"):
        if forgotten is not None:
            kept = {key: record for key, record in batch.items() if not forgotten.left_out(record)}
            report.clients.forgotten += len(batch) - len(kept)
            batch = kept
        writer.write(list(batch.values()))
    writer.finish()
    if forgotten is not None:
        forgotten.remember_new_ids(connection, now)
    for batch in staging.batches("deleted"):
        # sections/patients.md, "Get Deleted Patients": only the id is left to act on
        withdraw = (
            update(clients)
            .where(clients.c.id.in_(list(batch)), clients.c.marketing_consent)
            .values(marketing_consent=False, updated_at=now)
        )
        report.withdrawn += connection.execute(withdraw).rowcount


def _write_visits(connection: Connection, staging: Staging, report, now, progress) -> None:
    known = client_ids(connection)
    forgotten = Forgotten.load(connection)
    writer = TableWriter(connection, "visits", report.visits, now)
    done, total = 0, staging.counts["visits"]
    for batch in staging.batches("visits"):
        kept = []
        for record in batch.values():
            if record["client_id"] in known:
                kept.append(record)
            elif forgotten is not None and forgotten.client(record["client_id"]):
                report.visits.forgotten += 1
            else:
                report.left_out += 1
        writer.write(kept)
        done += len(batch)
        if progress is not None:
            progress("writing appointments", done, total)
    writer.finish()


def last_sync(engine: Engine) -> datetime | None:
    """When the last committed sync began, by any worker."""
    return _marks(engine)[0]


def _marks(engine: Engine) -> tuple[datetime | None, datetime | None, str | None]:
    """When the last sync and the last full pull began, and the rules that full pull applied."""
    query = select(app_state.c.name, app_state.c.created_at, app_state.c.value).where(
        app_state.c.name.in_((_MARK, _FULL))
    )
    with engine.connect() as connection:
        found = {name: (at, value) for name, at, value in connection.execute(query).all()}
    full_at, rules = found.get(_FULL, (None, None))
    return found.get(_MARK, (None, None))[0], full_at, rules


def _rules(cliniko) -> str:
    """What decides a row's content besides Cliniko: a change means every row is read again."""
    return json.dumps(
        {"consent": cliniko.consent, "services": cliniko.services, "url": cliniko.api_url},
        sort_keys=True,
    )


def _store_marks(connection: Connection, now: datetime, full: bool, rules: str) -> None:
    set_state(connection, _MARK, now.isoformat(), now)
    if full:
        set_state(connection, _FULL, rules, now)
