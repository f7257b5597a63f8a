"""Crontab as clinic owners write it: numeric days of week count from Sunday = 0."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from campaigns.schedules import Schedule, crontab_day_of_week

PERTH = ZoneInfo("Australia/Perth")
WEDNESDAY = datetime(2026, 11, 25, 12, 0, tzinfo=PERTH)


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("*", "*"),
        ("0", "sun"),
        ("7", "sun"),
        ("1", "mon"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("0,6", "sun,sat"),
        ("*/2", "sun,tue,thu,sat"),
        ("1-5/2", "mon,wed,fri"),
        ("tue", "tue"),
        ("mon-fri", "mon-fri"),
    ],
)
def test_numeric_days_become_names(field, expected):
    assert crontab_day_of_week(field) == expected


@pytest.mark.parametrize(
    ("cron", "weekday"),
    [("0 10 * * 1", "Monday"), ("0 10 * * 0", "Sunday"), ("0 10 * * 7", "Sunday"),
     ("0 10 * * tue", "Tuesday"), ("0 10 * * 5", "Friday")],
)  # fmt: skip
def test_cron_fires_on_the_crontab_day(cron, weekday):
    fire = Schedule.parse(cron).next_run(WEDNESDAY, PERTH)
    assert fire.strftime("%A %H:%M") == f"{weekday} 10:00"
    assert fire.tzinfo is not None and fire.utcoffset().total_seconds() == 8 * 3600


def test_every():
    schedule = Schedule.parse("every 2h")
    assert schedule.every.total_seconds() == 7200
    assert str(schedule) == "every 2h"


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("61 10 * * tue", "the minute field '61'"),
        ("0 25 * * *", "the hour field '25'"),
        ("0 10 32 * *", "the day of month field '32'"),
        ("0 10 * 13 *", "the month field '13'"),
        ("0 10 * * 8", "day of week '8' is out of range"),
        ("0 10 * *", "expected 5 cron fields"),
        ("every fortnight", "expected a duration"),
    ],
)
def test_bad_cron_names_the_field(cron, message):
    with pytest.raises(ValueError, match=message):
        Schedule.parse(cron)
