"""rebook's time rules, as pure functions of the moment they are asked about.

A cron schedule runs once per matching local date and time. APScheduler's own
``CronTrigger`` in a zone with clock changes fires a repeated local time twice
and moves a time that does not exist an hour later, so the trigger here only
enumerates *wall-clock* times (in UTC, which has no clock changes) and
:func:`local_instant` decides which instant each one names. Nothing in this
module reads the clock: ``now``, ``after`` and ``started`` are arguments.

Instants come back in UTC and are compared in UTC. Python compares and
subtracts two datetimes of the same zone by their wall-clock reading, and
never finds a datetime inside a repeated hour equal to one of another zone
(PEP 495), so a zone-aware result would mislead the very checks this module
exists for. Read a result in the clinic's zone only to show it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice, takewhile
from zoneinfo import ZoneInfo

from campaigns.durations import DailyWindow


def local_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant at which a clock in ``zone`` first shows ``wall`` or later.

    That is the only reading of "run at 01:30" that happens exactly once a day:
    in a repeated hour it is the first occurrence; in a skipped hour it is the
    end of the gap, the moment the clock jumps past ``wall``.
    """
    if wall.tzinfo is not None:
        raise ValueError(f"expected a wall-clock time without a zone, got {wall.isoformat()}")
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    if first.utcoffset() >= second.utcoffset():  # existing, or repeated: first occurrence
        return first.astimezone(UTC)
    # In a gap, fold=0 reads ``wall`` with the offset before the jump and fold=1 with
    # the one after, so fold=1 is the earlier instant; the jump lies between the two.
    return _transition(second, first, zone)


def _transition(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """The first whole second at which the UTC offset has changed, by bisection.

    ``zoneinfo`` does not publish its transition times; tz data puts every one of
    them on a whole second, and a gap lasts hours at most, so this is a few steps.
    """
    low = int(before.timestamp())  # the old offset still holds
    high = -int(-after.timestamp() // 1)  # the new offset holds
    old = datetime.fromtimestamp(low, zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == old:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


def next_cron_run(cron: str, zone: ZoneInfo, after: datetime) -> datetime:
    """The first run of ``cron`` (APScheduler-ready, local to ``zone``) strictly after ``after``.

    Raises ``ValueError`` for an expression that matches no date at all
    (``"0 0 30 2 *"``), rather than looping forever.
    """
    return next(_runs(cron, zone, after))


def cron_runs(cron: str, zone: ZoneInfo, start: datetime, count: int) -> list[datetime]:
    """The next ``count`` runs strictly after ``start``, for ``rebook plan --runs N``.

    Fewer when the calendar ends first (year 9999: ``0 9 29 2 mon`` comes
    every 28 years); ``ValueError`` only for a line that matches no date.
    """
    found: list[datetime] = []
    try:
        for run in islice(_runs(cron, zone, start), max(count, 0)):
            found.append(run)
    except OverflowError:
        pass  # past 9999-12-31: Python's calendar ends there
    except ValueError:
        if not found:
            raise
    return found


def _runs(cron: str, zone: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """The runs of ``cron`` strictly after ``after``, one per local date and time.

    A matching wall-clock time that names an instant not after the previous run
    is skipped: that is how the second pass of a repeated hour, and several
    times inside one gap, collapse into one run.
    """
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(cron, timezone=UTC)
    floor = _utc(after)
    wall = floor.astimezone(zone).replace(tzinfo=UTC)  # wall times never repeat in UTC
    while True:
        wall = trigger.get_next_fire_time(None, wall + timedelta(microseconds=1))
        if wall is None:
            raise ValueError(f"cron {cron!r} matches no date")
        run = local_instant(wall.replace(tzinfo=None), zone)
        if run > floor:
            yield run
            floor = run


def interval_due_at_start(every: timedelta, last_run: datetime | None, now: datetime) -> bool:
    """Whether an ``every D`` campaign runs as soon as the service starts.

    An interval has no time of day to wait for: a campaign that never ran, or
    whose last run is ``D`` or more ago, is already due, and waiting another
    whole interval after a restart would stretch the gap to up to twice ``D``.
    """
    return last_run is None or _utc(now) - _utc(last_run) >= every


@dataclass(frozen=True)
class CatchUp:
    """What the service does on start about runs missed while it was down, for its log."""

    run: datetime | None = None  # the latest missed run, to run once now
    skipped: datetime | None = None  # the latest missed run, older than the window
    missed: int = 0  # scheduled runs that passed while the service was down


def catch_up(
    cron: str,
    zone: ZoneInfo,
    last_scheduled: datetime | None,
    started: datetime,
    window: timedelta,
) -> CatchUp:
    """The runs of ``cron`` after ``last_scheduled`` and up to ``started``, and what to do.

    The latest one runs once (the clients would get the same email for each
    missed tick otherwise) if it is no older than ``window``; an older one is
    reported as skipped, because a reminder meant for last week's Tuesday
    morning would now arrive at a surprising time. A tick exactly at
    ``started`` counts as missed: the live schedule takes the runs after it.

    A campaign with no ``last_scheduled`` never ran, so nothing was missed: it
    was just added, or never reached its first time. Catching up would send it
    the moment the service starts, at whatever hour that is, instead of the
    time its schedule names; it waits for its next time.
    """
    if last_scheduled is None:
        return CatchUp()
    started = _utc(started)
    latest, missed = None, 0
    for run in takewhile(lambda run: run <= started, _runs(cron, zone, last_scheduled)):
        latest, missed = run, missed + 1
    if latest is None:
        return CatchUp()
    if started - latest <= window:
        return CatchUp(run=latest, missed=missed)
    return CatchUp(skipped=latest, missed=missed)


def quiet_until(window: DailyWindow, zone: ZoneInfo, now: datetime) -> datetime | None:
    """When quiet hours that hold at ``now`` end, read on a clock in ``zone``; None if they don't.

    The zone is the clinic's, or a client's own, so that "20:00-08:00" means the
    client's evening. The end is an instant rather than "08:00", so that a
    clock change during the night moves it with the clock.
    """
    local = _utc(now).astimezone(zone)
    if not window.contains(local.time()):
        return None
    day = local.date()
    if window.end <= window.start and local.time() >= window.start:
        day += timedelta(days=1)  # the window wraps midnight: it ends tomorrow
    return _next_showing(datetime.combine(day, window.end), zone, now)


def _next_showing(wall: datetime, zone: ZoneInfo, now: datetime) -> datetime:
    """The first instant after ``now`` at which the clock shows ``wall`` or later.

    Usually :func:`local_instant`; but when ``now`` is in the second pass of a
    repeated hour, the end of that hour's first pass is already behind us and
    the clock shows the end time again one hour later.
    """
    end = local_instant(wall, zone)
    if end <= _utc(now):
        end = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return end


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC, refusing a naive datetime, whose instant nobody can know."""
    if moment.utcoffset() is None:
        raise ValueError(f"expected an aware datetime, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def interval_slot(every: timedelta, now: datetime) -> datetime:
    """The start of the ``every``-long slot ``now`` is in, counted from the Unix epoch.

    Every worker computes the same slots, so an ``every 2h`` run has one
    scheduled time however many workers are up.
    """
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + every * ((_utc(now) - epoch) // every)


def next_run(schedule, zone: ZoneInfo, after: datetime) -> datetime:
    """A campaign's first scheduled time strictly after ``after`` (``Schedule``: cron or every)."""
    if schedule.every is not None:
        return interval_slot(schedule.every, after) + schedule.every
    return next_cron_run(schedule.cron, zone, after)
