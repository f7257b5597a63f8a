"""Picking up the practice software's exports on their own: ``[sync]`` files.

Each file named in ``[sync]`` is imported, exactly as ``rebook import`` does
(same validation, one transaction, all or nothing), when its content has
changed since the last import, clients before visits (visits name their
clients). A fingerprint (SHA-256) of what was last read is kept in the
database, so a restart does not import an unchanged file again and every
worker agrees. A bad export is reported once and left alone until it
changes: the data stay as they were.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine

from campaigns.clients.importer import ImportReport, import_file
from campaigns.config import Settings
from campaigns.errors import CsvError
from campaigns.store.database import write_transaction
from campaigns.store.tables import app_state
from campaigns.store.upsert import set_state

KINDS = ("clients", "visits")  # in this order: a visit needs its client


@dataclass(frozen=True)
class SyncResult:
    kind: str
    path: Path
    outcome: str  # imported, unchanged, rejected, still rejected, missing
    detail: str = ""
    report: ImportReport | None = None


def sync_files(engine: Engine, settings: Settings, now: datetime, *, full: bool = False) -> list:
    """Import each changed ``[sync]`` file once; ``full`` imports unchanged ones too."""
    if settings.sync is None:
        return []
    results = []
    for kind in KINDS:
        path = getattr(settings.sync, kind)
        if path is not None:
            results.append(_sync_one(engine, settings, kind, path, now, full))
    return results


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
    if stored == f"rejected:{digest}":
        reason = f"{path}: unchanged since it was rejected: fix it (rebook sync --full says why)"
        return SyncResult(kind, path, "still rejected", reason)
    try:
        zone = settings.clinic.timezone
        report = import_file(engine, kind, path, clinic_zone=zone, now=now)
    except CsvError as error:
        _store(engine, kind, f"rejected:{digest}", now)
        return SyncResult(kind, path, "rejected", str(error))
    _store(engine, kind, digest, now)
    return SyncResult(kind, path, "imported", report.summary(), report)


def _fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _stored(engine: Engine, kind: str) -> str | None:
    query = select(app_state.c.value).where(app_state.c.name == f"sync:{kind}")
    with engine.connect() as connection:
        return connection.execute(query).scalar()


def _store(engine: Engine, kind: str, value: str, now: datetime) -> None:
    with write_transaction(engine) as connection:
        set_state(connection, f"sync:{kind}", value, now)
