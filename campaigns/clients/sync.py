"""Picking up the practice software's exports on their own: ``[sync]`` files.

Each file named in ``[sync]`` is imported, exactly as ``rebook import`` does
(same validation, one transaction, all or nothing), when its content has
changed since the last import, clients before visits (visits name their
clients). A fingerprint (SHA-256) of what was last read is kept in the
database, so a restart does not import an unchanged file again and every
worker agrees. A bad export is reported once and left alone until it
changes (a visits file refused for naming a client not imported yet, until
it or the clients change): the data stay as they were.

An export caught while the practice software is still writing it (its last
line cut short) is not a bad export: it is reported as such, imported at
the first sync that finds it whole, and its visits file waits for it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from campaigns.clients.importer import ImportReport, import_file
from campaigns.config import Settings
from campaigns.errors import CsvError, CutShort, StorageError
from campaigns.store.database import write_transaction
from campaigns.store.refusals import storage_failure
from campaigns.store.tables import app_state, clients
from campaigns.store.upsert import set_state

KINDS = ("clients", "visits")  # in this order: a visit needs its client
CUT_SHORT = ("incomplete", "still incomplete")  # outcomes of a file still being written


@dataclass(frozen=True)
class SyncResult:
    kind: str
    path: Path
    outcome: str  # imported, unchanged, rejected, still rejected, missing, incomplete,
    # still incomplete (CUT_SHORT: its last line cut), waiting (visits, for such a clients file),
    # failed (the database refused the write: disk full, read-only)
    detail: str = ""
    report: ImportReport | None = None


def sync_files(engine: Engine, settings: Settings, now: datetime, *, full: bool = False) -> list:
    """Import each changed ``[sync]`` file once; ``full`` imports unchanged ones too."""
    if settings.sync is None:
        return []
    results: list[SyncResult] = []
    for kind in KINDS:
        path = getattr(settings.sync, kind)
        if path is None:
            continue
        cut = [result.path for result in results if result.outcome in CUT_SHORT]
        if cut:  # its new visits would name clients not imported yet
            reason = f"{path}: not imported yet: it waits for {cut[0]}, still being written"
            results.append(SyncResult(kind, path, "waiting", reason))
        else:
            results.append(_sync_or_say_why_not(engine, settings, kind, path, now, full))
    return results


def _sync_or_say_why_not(engine, settings, kind: str, path: Path, now, full: bool) -> SyncResult:
    """A database that refuses the write (disk full, read-only) fails this pass, said in one
    line: nothing of the file is imported and no fingerprint kept, so the next pass tries again."""
    try:
        return _sync_one(engine, settings, kind, path, now, full)
    except StorageError as error:
        return SyncResult(kind, path, "failed", str(error))
    except SQLAlchemyError as error:
        refused = storage_failure(error, engine.url)
        if refused is None:
            raise
        return SyncResult(kind, path, "failed", f"{path}: {refused}")


def _sync_one(engine, settings, kind: str, path: Path, now: datetime, full: bool) -> SyncResult:
    if not path.is_file():  # a FIFO or a device would be read forever
        what = "does not exist" if not path.exists() else "is not a regular file"
        return SyncResult(kind, path, "missing", f"sync.{kind}: {path} {what}")
    try:
        digest = _fingerprint(path)
    except OSError as error:
        return SyncResult(
            kind, path, "missing", f"sync.{kind}: cannot read {path}: {error.strerror}"
        )
    stored = None if full else _stored(engine, kind)
    if stored == digest:
        return SyncResult(kind, path, "unchanged")
    was_rejected = (stored or "").startswith(f"rejected:{digest}")
    if was_rejected and stored == _rejected(engine, kind, digest):
        reason = f"{path}: unchanged since it was rejected: fix it (rebook sync --full says why)"
        return SyncResult(kind, path, "still rejected", reason)
    if stored == f"incomplete:{digest}":
        reason = (
            f"{path}: its last line is still cut short, as at the last sync: still being "
            "written, or cut for good (rebook sync --full says where)"
        )
        return SyncResult(kind, path, "still incomplete", reason)
    try:
        zone = settings.clinic.timezone
        report = import_file(engine, kind, path, clinic_zone=zone, now=now)
    except CutShort as error:  # not a bad export: imported once the writer is done
        _store(engine, kind, f"incomplete:{digest}", now)
        return SyncResult(kind, path, "incomplete", str(error))
    except CsvError as error:
        _store(engine, kind, _rejected(engine, kind, digest), now)
        return SyncResult(kind, path, "rejected", str(error))
    _store(engine, kind, digest, now)
    return SyncResult(kind, path, "imported", report.summary(), report)


def _fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _rejected(engine: Engine, kind: str, digest: str) -> str:
    """The mark of a rejected file; a visits file's also names the clients it was checked
    against, so one refused for naming a client not imported yet is tried again once the
    clients changed, even if the file did not."""
    return f"rejected:{digest}" + (_clients_version(engine) if kind == "visits" else "")


def _clients_version(engine: Engine) -> str:
    """What changes whenever clients are written or erased, by any import, sync or forget."""
    query = select(func.count(), func.max(clients.c.updated_at)).select_from(clients)
    with engine.connect() as connection:
        number, latest = connection.execute(query).one()
    return f":{number}:{latest.isoformat() if latest else ''}"


def _stored(engine: Engine, kind: str) -> str | None:
    query = select(app_state.c.value).where(app_state.c.name == f"sync:{kind}")
    with engine.connect() as connection:
        return connection.execute(query).scalar()


def _store(engine: Engine, kind: str, value: str, now: datetime) -> None:
    with write_transaction(engine) as connection:
        set_state(connection, f"sync:{kind}", value, now)
