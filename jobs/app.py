"""What every command may need: the config path, settings and database, loaded when first used."""

from __future__ import annotations

import errno
import os
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import click

from campaigns.errors import DatabaseUnavailable, StorageError, UserError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class App:
    """What every command may need, loaded only when first asked for."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path

    @cached_property
    def settings(self):
        from campaigns.config import load_settings

        return load_settings(self.config_path)

    @cached_property
    def engine(self):
        from campaigns.store.database import open_database

        return open_database(self.settings.database)

    def segment(self, name: str):
        try:
            return self.settings.segments[name]
        except KeyError:
            known = ", ".join(sorted(self.settings.segments)) or "none"
            raise UserError(
                f"{self.config_path}: no segment named {name!r} (defined: {known})"
            ) from None

    def campaign(self, name: str):
        try:
            return self.settings.campaigns[name]
        except KeyError:
            known = ", ".join(sorted(self.settings.campaigns)) or "none"
            raise UserError(
                f"{self.config_path}: no campaign named {name!r} (defined: {known})"
            ) from None

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)


pass_app = click.make_pass_decorator(App)


class RebookGroup(click.Group):
    """The ``rebook`` command group: a disk or database that refuses a write is one line.

    Every command writes somewhere (the database, an export, a folder); a
    full disk or a read-only one is the machine's trouble, not a bug and not
    a mistake in the command: ``StorageError``, exit 1, without a traceback
    (which would also print the rows being written, clients' addresses among them).
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as error:
            refused = refused_write(error, ctx.obj)
            if refused is None:
                raise
            raise refused from None


_NO_ROOM = {errno.ENOSPC, errno.EDQUOT}
_NOT_ALLOWED = {errno.EROFS, errno.EACCES, errno.EPERM}


def refused_write(error: Exception, app: object) -> StorageError | DatabaseUnavailable | None:
    """``error`` in one line when a disk or database is full or read-only, or the database
    went away during the command (``DatabaseUnavailable``), else None."""
    if isinstance(error, OSError):
        if error.filename is None or error.errno not in _NO_ROOM | _NOT_ALLOWED:
            return None
        advice = (
            "make room on the disk"
            if error.errno in _NO_ROOM
            else f"give rebook's user (id {os.geteuid()}) the right to it, or use another place"
        )
        return StorageError(f"{error.filename}: {error.strerror}: {advice}, then run it again")
    engine = app.__dict__.get("engine") if isinstance(app, App) else None
    if engine is None:  # opening the database says it itself (campaigns.store.database)
        return None
    from campaigns.store.database import unavailable
    from campaigns.store.refusals import storage_failure

    return storage_failure(error, engine.url) or unavailable(error, engine.url)


def local_time(moment: datetime | None, zone) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else ""
