"""Campaign schedules: a 5-field crontab line or ``"every D"``.

Clinic owners write crontab, where a numeric day of week counts from
Sunday = 0 (7 is Sunday too). APScheduler 3.x counts from Monday = 0, so
``"0 10 * * 1"`` would fire on Tuesdays. We translate every numeric day of
week into day names before APScheduler sees the expression.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from campaigns.durations import parse_duration

_DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_CRON_FIELDS = ["minute", "hour", "day of month", "month", "day of week"]
_TRIGGER_KEYS = ["minute", "hour", "day", "month", "day_of_week"]
_NUMERIC_DOW = re.compile(r"^(\*|\d+)(?:-(\d+))?(?:/(\d+))?$")


def crontab_day_of_week(field: str) -> str:
    """Rewrite a crontab day-of-week field with names, which APScheduler reads unambiguously."""
    if field == "*":
        return field
    days: list[str] = []
    for part in field.split(","):
        match = _NUMERIC_DOW.match(part)
        if not match:
            days.append(part)  # names, "mon-fri", …: APScheduler agrees with crontab
            continue
        start, stop, step = match.groups()
        if start == "*":
            first, last = 0, 6
        else:
            first = int(start)
            last = int(stop) if stop is not None else (6 if step else first)
        if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last):
            raise ValueError(f"day of week {part!r} is out of range 0-7 (0 and 7 are Sunday)")
        for day in range(first, last + 1, int(step or 1)):
            name = _DAY_NAMES[day % 7]
            if name not in days:
                days.append(name)
    return ",".join(days)


@dataclass(frozen=True)
class Schedule:
    """When a campaign runs: ``every`` a fixed interval, or on a ``cron`` expression."""

    text: str
    every: timedelta | None = None
    cron: str | None = None  # the APScheduler-ready expression

    @classmethod
    def parse(cls, text: str) -> Schedule:
        if not isinstance(text, str):
            raise ValueError(
                f'expected a cron line like "0 10 * * tue" or "every 2h", got {text!r}'
            )
        stripped = text.strip()
        if stripped.startswith("every "):
            every = parse_duration(stripped.removeprefix("every "))
            if not every:
                raise ValueError(f"{text!r} never waits: expected a duration longer than zero")
            return cls(stripped, every=every)
        return cls(stripped, cron=_validated_cron(stripped))

    def trigger(self, timezone: ZoneInfo):
        """The APScheduler trigger for this schedule in the clinic's time zone."""
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        if self.every is not None:
            return IntervalTrigger(seconds=int(self.every.total_seconds()), timezone=timezone)
        return CronTrigger.from_crontab(self.cron, timezone=timezone)

    def next_run(self, after: datetime, timezone: ZoneInfo) -> datetime | None:
        """The first run strictly after ``after`` (an aware datetime)."""
        return self.trigger(timezone).get_next_fire_time(None, after + timedelta(microseconds=1))

    @property
    def day_and_weekday(self) -> bool:
        """Both the day of month and the weekday are set: it runs when *both* match.

        That is APScheduler's reading, and rebook keeps it (``0 9 1-7 * mon`` is
        the first Monday of the month); crontab runs when *either* matches.
        """
        if self.cron is None:
            return False
        fields = self.cron.split()
        return fields[2] != "*" and fields[4] != "*"

    def __str__(self) -> str:
        return self.text


def _validated_cron(text: str) -> str:
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"expected 5 cron fields (minute hour day month weekday) or "
            f'"every D", got {len(fields)} in {text!r}'
        )
    fields[4] = crontab_day_of_week(fields[4])
    from apscheduler.triggers.cron import CronTrigger

    # One field at a time, so the message can say which of the five is wrong.
    for label, key, value in zip(_CRON_FIELDS, _TRIGGER_KEYS, fields, strict=True):
        try:
            CronTrigger(**{key: value}, timezone="UTC")
        except ValueError as error:
            raise ValueError(f"in cron {text!r}, the {label} field {value!r}: {error}") from None
    expression = " ".join(fields)
    _matches_some_date(text, expression)
    return expression


def _matches_some_date(text: str, expression: str) -> None:
    """Each field can be right and the whole never match (``0 9 30 2 *``): refuse it now."""
    from campaigns.timing import next_cron_run

    try:
        next_cron_run(expression, ZoneInfo("UTC"), datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC")))
    except ValueError:
        raise ValueError(f"cron {text!r} matches no date: it would never run") from None
