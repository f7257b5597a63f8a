"""Quiet hours: marketing due inside ``[policy] quiet_hours`` waits for the window to end.

The window is read on the client's own clock when their export gives a
``timezone`` (their evening, not the clinic's), otherwise on the clinic's.
A held message is a ``queued`` ledger row whose ``next_attempt_at`` is the
end of the window: nothing claims it before then, and the service wakes
for it. The arithmetic is ``campaigns.timing.quiet_until``; this module
turns it into the SQL that stamps each row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, case, cast, literal, null, select
from sqlalchemy.engine import Connection

from campaigns.config import Campaign, Settings
from campaigns.durations import DailyWindow
from campaigns.store.tables import UTCDateTime, clients
from campaigns.timing import quiet_until


@dataclass(frozen=True)
class Holds:
    """Until when a run's marketing waits: per client time zone, and for everyone else."""

    clinic: datetime | None  # None: not quiet on the clinic's clock now
    zones: dict[str, datetime | None] = field(default_factory=dict)

    def column(self) -> ColumnElement:
        """Each audience row's ``next_attempt_at``: the end of its window, or NULL to go now."""
        default = _value(self.clinic)
        if not self.zones:
            return default
        return case(
            *((clients.c.timezone == zone, _value(until)) for zone, until in self.zones.items()),
            else_=default,
        )

    @property
    def any(self) -> bool:
        return self.clinic is not None or any(self.zones.values())


def _value(moment: datetime | None) -> ColumnElement:
    return no_hold() if moment is None else literal(moment, UTCDateTime)


def no_hold() -> ColumnElement:
    """A typed NULL: PostgreSQL reads a bare NULL in a subquery as text."""
    return cast(null(), UTCDateTime)


def clinic_quiet_until(settings: Settings, campaign: Campaign, at: datetime) -> datetime | None:
    """When the clinic's quiet hours holding ``campaign`` at ``at`` end; None if they don't."""
    window = settings.policy.quiet_hours
    if window is None or not campaign.marketing:
        return None
    return quiet_until(window, settings.clinic.timezone, at)


def holds_for(
    connection: Connection, window: DailyWindow | None, clinic_zone: ZoneInfo, now: datetime
) -> Holds:
    """The holds of a marketing run starting ``now`` (none without quiet hours)."""
    if window is None:
        return Holds(None)
    query = select(clients.c.timezone).where(clients.c.timezone.is_not(None)).distinct()
    zones = {}
    for name in connection.execute(query).scalars():
        try:
            zones[name] = quiet_until(window, ZoneInfo(name), now)
        except (ZoneInfoNotFoundError, ValueError):
            continue  # an unknown zone: the clinic's clock decides
    return Holds(quiet_until(window, clinic_zone, now), zones)
