"""What every command may need: the config path, settings and database, loaded when first used."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import click

from campaigns.errors import UserError

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


def local_time(moment: datetime | None, zone) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else ""
