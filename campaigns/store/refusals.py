"""Why a database refused a write: its disk full, or it read-only; said in one line.

That is the machine's trouble, not a bug and not a mistake in the data or
the config: whoever runs rebook makes room, or gives rebook's user the right
to write, and runs the command again. A failed statement rolls its
transaction back, so what was being written is undone (an import imports
nothing, a send keeps what it had recorded).

SQLite names its errors (``sqlite_errorname``, Python 3.11) but not always
the cause: a full disk can surface as an I/O error (no room for the
``-shm`` file) or as "unable to open", a read-only disk or a file rebook's
user may not write as either of those too. So for those the file system
itself is asked. PostgreSQL gives its SQLSTATE.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import URL

from campaigns.config.report import mask_secrets
from campaigns.errors import StorageError

FULL = "the disk is full"
READ_ONLY = "it is read-only"
FAILED = "the disk failed to write"
ROOM = 1 << 20  # free bytes under which an I/O error is taken for a full disk
# By SQLite's error name (its extended names start with these) or PostgreSQL's SQLSTATE.
_REASONS = {
    "SQLITE_FULL": FULL,
    "53100": FULL,  # disk_full
    "SQLITE_READONLY": READ_ONLY,
    "25006": READ_ONLY,  # read_only_sql_transaction: a standby, or default_transaction_read_only
}
_ASK_THE_DISK = ("SQLITE_IOERR", "SQLITE_CANTOPEN")


def database_name(url: URL) -> str:
    """The database as whoever runs rebook finds it: the SQLite file, or the URL, no password."""
    if url.get_backend_name() == "sqlite":
        return str(url.database or ":memory:")
    return url.render_as_string(hide_password=True)


def storage_failure(error: BaseException, url: URL) -> StorageError | None:
    """``error`` in one line when the database's disk is full or it is read-only, else None.

    None keeps any other error as it was: a mistake in ``database.url`` (a
    folder that does not exist) or a bug.
    """
    orig = getattr(error, "orig", None)
    code = getattr(orig, "sqlite_errorname", None) or getattr(orig, "sqlstate", None) or ""
    reason = next((why for key, why in _REASONS.items() if code.startswith(key)), None)
    if code.startswith(_ASK_THE_DISK):
        reason = _sqlite_disk(url) or (FAILED if code.startswith("SQLITE_IOERR") else None)
    if reason is None:
        return None
    words = str(orig).strip().splitlines()[0] if orig is not None else str(error)
    return StorageError(
        mask_secrets(
            f"cannot write to the database {database_name(url)}: {reason} ({words}); what the "
            f"command was writing was undone: {_advice(reason, url)}, then run it again"
        )
    )


def _sqlite_disk(url: URL) -> str | None:
    """What the SQLite file's folder says: read-only, not ours to write, or full."""
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    path = Path(url.database)
    folder = path.parent
    if not folder.is_dir():
        return None
    disk = os.statvfs(folder)
    if disk.f_flag & os.ST_RDONLY:
        return READ_ONLY
    if not os.access(folder, os.W_OK | os.X_OK) or (
        path.exists() and not os.access(path, os.R_OK | os.W_OK)
    ):
        return READ_ONLY
    if disk.f_bavail * disk.f_frsize < ROOM:
        return FULL
    return None


def _advice(reason: str, url: URL) -> str:
    if reason == FULL:
        return "make room on the disk"
    if reason != READ_ONLY:
        return "check the disk (dmesg)"
    if url.get_backend_name() != "sqlite":
        return "point database.url at the primary server, not a standby"
    name = Path(url.database or "").name
    return (
        f"let rebook's user write the file and its folder (SQLite writes {name}-wal and "
        f"{name}-shm beside it), or mount the disk read-write"
    )
