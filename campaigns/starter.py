"""``rebook init``: a folder a new clinic can start from."""

from __future__ import annotations

import shutil
import tempfile
from datetime import date
from pathlib import Path

from campaigns.clients.sample import write_sample_clinic
from campaigns.errors import UserError
from campaigns.resources import default_templates, example_config


def write_starter(
    folder: Path, *, today: date, sample_data: bool = False, templates: bool = False
) -> list[Path]:
    """Write config.toml (and optionally sample exports and template copies) into ``folder``.

    Refuses, writing nothing, if any of the files is already there.
    """
    planned = {folder / "config.toml": example_config()}
    if templates:
        source = default_templates()
        for path in sorted(source.rglob("*")):
            if path.is_file():
                planned[folder / "templates" / path.relative_to(source)] = path
    if sample_data:
        planned[folder / "exports" / "clients.csv"] = None
        planned[folder / "exports" / "visits.csv"] = None
    existing = [path for path in planned if path.exists()]
    if existing:
        raise UserError(
            f"{existing[0]}: already exists; rebook init never overwrites "
            f"({len(existing)} file(s) in the way)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for target, source_file in planned.items():
        if source_file is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source_file, target)
    if sample_data:
        _write_sample(folder / "exports", today)
    return list(planned)


def _write_sample(exports: Path, today: date) -> None:
    """Write the sample files beside each other first, then move them in place."""
    with tempfile.TemporaryDirectory(dir=exports.parent) as scratch:
        made = write_sample_clinic(Path(scratch), today)
        exports.mkdir(exist_ok=True)
        for path in made:
            path.replace(exports / path.name)
