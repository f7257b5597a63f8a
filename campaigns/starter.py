"""``rebook init``: a folder a new clinic can start from.

All or nothing: every file is written into a staging folder inside the
target first, then moved into place, so a full disk, a folder rebook may
not write in or a name the file system refuses leaves nothing behind but a
clear error. Nothing already there is ever replaced, not even through a
symbolic link.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from datetime import date
from pathlib import Path

from campaigns.clients.sample import write_sample_clinic
from campaigns.errors import StorageError, UserError
from campaigns.resources import default_templates, example_config

_THE_MACHINES = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def write_starter(
    folder: Path, *, today: date, sample_data: bool = False, templates: bool = False
) -> list[Path]:
    """Write config.toml (and optionally sample exports and template copies) into ``folder``.

    Refuses, writing nothing, if any of the files is already there.
    """
    planned = _planned(folder, sample_data=sample_data, templates=templates)
    existing = [path for path in planned if os.path.lexists(path)]  # a dangling link is in the way
    if existing:
        raise UserError(
            f"{existing[0]}: already exists; rebook init never overwrites "
            f"({len(existing)} file(s) in the way)"
        )
    made = _make_folder(folder)
    try:
        with tempfile.TemporaryDirectory(dir=folder, prefix=".rebook-init-") as scratch:
            staged = _stage(Path(scratch), folder, planned, today)
            _move_in(staged)
    except OSError as error:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        reason = error.strerror or str(error)
        if error.errno in _THE_MACHINES:  # room or rights, not a mistake in the command
            raise StorageError(
                f"rebook init: cannot write into {folder}: {reason}; nothing was written: "
                "make room on the disk (or give rebook's user the right to write there), "
                "then run it again"
            ) from None
        where = error.filename or folder
        raise UserError(f"rebook init: cannot write {where}: {reason}") from None
    return list(planned)


def _planned(folder: Path, *, sample_data: bool, templates: bool) -> dict[Path, Path | None]:
    """Each file to write, and the packaged file it copies (None: the sample exports)."""
    planned: dict[Path, Path | None] = {folder / "config.toml": example_config()}
    if templates:
        source = default_templates()
        for path in sorted(source.rglob("*")):
            if path.is_file():
                planned[folder / "templates" / path.relative_to(source)] = path
    if sample_data:
        planned[folder / "exports" / "clients.csv"] = None
        planned[folder / "exports" / "visits.csv"] = None
    return planned


def _make_folder(folder: Path) -> Path | None:
    """Make ``folder`` (and its parents); return the topmost one made, to undo on failure."""
    missing = [path for path in (folder, *folder.parents) if not os.path.lexists(path)]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(
            f"rebook init: cannot make the folder {folder}: {error.strerror or error}"
        ) from None
    return missing[-1] if missing else None


def _stage(scratch: Path, folder: Path, planned: dict, today: date) -> list[tuple[Path, Path]]:
    """Write every file under ``scratch``; return (staged, final) pairs."""
    pairs = []
    for target, source in planned.items():
        staged = scratch / target.relative_to(folder)
        if source is not None:
            staged.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, staged)
            pairs.append((staged, target))
    if any(source is None for source in planned.values()):
        for made in write_sample_clinic(scratch / "exports", today):
            pairs.append((made, folder / "exports" / made.name))
    return pairs


def _move_in(staged: list[tuple[Path, Path]]) -> None:
    """Rename each file into place; on a failure, take back the ones already moved."""
    moved: list[Path] = []
    try:
        for source, target in staged:
            target.parent.mkdir(parents=True, exist_ok=True)
            if os.path.lexists(target):  # appeared since we looked
                raise FileExistsError(17, "already exists", str(target))
            source.rename(target)
            moved.append(target)
    except OSError:
        for target in moved:
            target.unlink(missing_ok=True)
            for parent in target.parents:  # the folders made for it, if now empty
                try:
                    parent.rmdir()
                except OSError:
                    break
        raise
