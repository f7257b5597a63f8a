"""rebook's time rules: once per local date and time, whatever the clock does that night.

Tables of cases with no clock and no I/O. Expected instants are written with
their UTC offset, so each row says which side of a clock change it is on.
In 2026 Europe/London skips 01:00-02:00 on 29 March and repeats 01:00-02:00 on
25 October; Australia/Sydney repeats 02:00-03:00 on 5 April and skips
02:00-03:00 on 4 October; Australia/Lord_Howe moves half an hour at 02:00.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.durations import DailyWindow
from campaigns.schedules import Schedule
from campaigns.timing import (
    CatchUp,
    catch_up,
    cron_runs,
    interval_due_at_start,
    local_instant,
    next_cron_run,
    quiet_until,
)

LONDON = ZoneInfo("Europe/London")
SYDNEY = ZoneInfo("Australia/Sydney")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
PERTH = ZoneInfo("Australia/Perth")
DAY = timedelta(hours=24)
NIGHT = DailyWindow.parse("20:00-08:00")


def at(text: str) -> datetime:
    """An aware instant from ``"2026-10-25 01:30+01:00"``."""
    return datetime.fromisoformat(text)


def wall(text: str) -> datetime:
    """A naive wall-clock reading from ``"2026-10-25 01:30"``."""
    return datetime.fromisoformat(text)


def reading(moment: datetime, zone: ZoneInfo) -> str:
    """What a clock in ``zone`` shows at ``moment``, with its offset."""
    return moment.astimezone(zone).isoformat(sep=" ", timespec="minutes")


@pytest.mark.parametrize(
    ("zone", "local", "expected"),
    [
        (LONDON, "2026-03-29 00:59", "2026-03-29 00:59+00:00"),  # just before the gap
        (LONDON, "2026-03-29 01:00", "2026-03-29 02:00+01:00"),  # the gap: its end
        (LONDON, "2026-03-29 01:30", "2026-03-29 02:00+01:00"),
        (LONDON, "2026-03-29 01:59", "2026-03-29 02:00+01:00"),
        (LONDON, "2026-03-29 02:00", "2026-03-29 02:00+01:00"),  # just after the gap
        (LONDON, "2026-10-25 00:59", "2026-10-25 00:59+01:00"),
        (LONDON, "2026-10-25 01:00", "2026-10-25 01:00+01:00"),  # repeated: the first
        (LONDON, "2026-10-25 01:30", "2026-10-25 01:30+01:00"),
        (LONDON, "2026-10-25 01:59", "2026-10-25 01:59+01:00"),
        (LONDON, "2026-10-25 02:00", "2026-10-25 02:00+00:00"),  # just after the repeat
        (SYDNEY, "2026-04-05 01:59", "2026-04-05 01:59+11:00"),
        (SYDNEY, "2026-04-05 02:30", "2026-04-05 02:30+11:00"),  # repeated: the first
        (SYDNEY, "2026-04-05 03:00", "2026-04-05 03:00+10:00"),
        (SYDNEY, "2026-10-04 01:59", "2026-10-04 01:59+10:00"),
        (SYDNEY, "2026-10-04 02:00", "2026-10-04 03:00+11:00"),  # the gap: its end
        (SYDNEY, "2026-10-04 02:45", "2026-10-04 03:00+11:00"),
        (SYDNEY, "2026-10-04 03:00", "2026-10-04 03:00+11:00"),
        (LORD_HOWE, "2026-10-04 02:15", "2026-10-04 02:30+11:00"),  # a half-hour gap
        (LORD_HOWE, "2026-10-04 02:30", "2026-10-04 02:30+11:00"),
        (LORD_HOWE, "2026-04-05 01:45", "2026-04-05 01:45+11:00"),  # a half-hour repeat
        (LORD_HOWE, "2026-04-05 02:00", "2026-04-05 02:00+10:30"),
        (PERTH, "2026-10-04 02:30", "2026-10-04 02:30+08:00"),  # no clock changes at all
        (LONDON, "2026-03-29 01:00:30.5", "2026-03-29 02:00+01:00"),  # the jump is on a second
        (LONDON, "2026-06-01 12:00:30.5", "2026-06-01 12:00:30.500000+01:00"),
    ],
)
def test_a_wall_clock_time_names_the_first_instant_the_clock_shows_it(zone, local, expected):
    instant = local_instant(wall(local), zone)
    assert instant == at(expected)
    assert reading(instant, zone) == reading(at(expected), zone)


@pytest.mark.parametrize(
    ("cron", "zone", "after", "expected"),
    [
        # daily, in London's repeated hour: once, at the first 01:30
        ("30 1 * * *", LONDON, "2026-10-24 12:00+01:00", "2026-10-25 01:30+01:00"),
        ("30 1 * * *", LONDON, "2026-10-25 01:29+01:00", "2026-10-25 01:30+01:00"),
        ("30 1 * * *", LONDON, "2026-10-25 01:30+01:00", "2026-10-26 01:30+00:00"),
        ("30 1 * * *", LONDON, "2026-10-25 01:10+00:00", "2026-10-26 01:30+00:00"),
        ("30 1 * * *", LONDON, "2026-10-25 01:45+00:00", "2026-10-26 01:30+00:00"),
        ("0 1 * * *", LONDON, "2026-10-25 00:00+01:00", "2026-10-25 01:00+01:00"),
        ("0 2 * * *", LONDON, "2026-10-25 01:00+00:00", "2026-10-25 02:00+00:00"),
        # daily, in London's gap: at the end of the gap
        ("30 1 * * *", LONDON, "2026-03-28 12:00+00:00", "2026-03-29 02:00+01:00"),
        ("30 1 * * *", LONDON, "2026-03-29 00:59+00:00", "2026-03-29 02:00+01:00"),
        ("30 1 * * *", LONDON, "2026-03-29 02:00+01:00", "2026-03-30 01:30+01:00"),
        ("30 2 * * *", LONDON, "2026-03-28 12:00+00:00", "2026-03-29 02:30+01:00"),
        ("59 0 * * *", LONDON, "2026-03-28 12:00+00:00", "2026-03-29 00:59+00:00"),
        # several times inside one gap, and one just after it, make one run
        ("*/20 1 * * *", LONDON, "2026-03-29 00:30+00:00", "2026-03-29 02:00+01:00"),
        ("*/20 1 * * *", LONDON, "2026-03-29 02:00+01:00", "2026-03-30 01:00+01:00"),
        ("0 1,2 * * *", LONDON, "2026-03-29 00:30+00:00", "2026-03-29 02:00+01:00"),
        ("0 1,2 * * *", LONDON, "2026-03-29 02:00+01:00", "2026-03-30 01:00+01:00"),
        # hourly through both changes
        ("15 * * * *", LONDON, "2026-10-25 00:30+01:00", "2026-10-25 01:15+01:00"),
        ("15 * * * *", LONDON, "2026-10-25 01:15+01:00", "2026-10-25 02:15+00:00"),
        ("15 * * * *", LONDON, "2026-03-29 00:30+00:00", "2026-03-29 02:00+01:00"),
        ("15 * * * *", LONDON, "2026-03-29 02:00+01:00", "2026-03-29 02:15+01:00"),
        # Sydney
        ("30 2 * * *", SYDNEY, "2026-04-04 12:00+11:00", "2026-04-05 02:30+11:00"),
        ("30 2 * * *", SYDNEY, "2026-04-05 02:30+11:00", "2026-04-06 02:30+10:00"),
        ("30 2 * * *", SYDNEY, "2026-04-05 02:00+10:00", "2026-04-06 02:30+10:00"),
        ("30 3 * * *", SYDNEY, "2026-04-05 02:40+10:00", "2026-04-05 03:30+10:00"),
        ("30 2 * * *", SYDNEY, "2026-10-03 12:00+10:00", "2026-10-04 03:00+11:00"),
        ("30 2 * * *", SYDNEY, "2026-10-04 03:00+11:00", "2026-10-05 02:30+11:00"),
        ("30 3 * * *", SYDNEY, "2026-10-03 12:00+10:00", "2026-10-04 03:30+11:00"),
        ("0 1 * * *", SYDNEY, "2026-10-03 12:00+10:00", "2026-10-04 01:00+10:00"),
        # Lord Howe's half hours
        ("15 2 * * *", LORD_HOWE, "2026-10-03 12:00+10:30", "2026-10-04 02:30+11:00"),
        ("45 1 * * *", LORD_HOWE, "2026-04-05 01:45+11:00", "2026-04-06 01:45+10:30"),
        # weekly: Sundays are when clocks change
        ("0 10 * * tue", LONDON, "2026-10-24 12:00+01:00", "2026-10-27 10:00+00:00"),
        ("30 1 * * sun", LONDON, "2026-10-18 12:00+01:00", "2026-10-25 01:30+01:00"),
        ("30 1 * * sun", LONDON, "2026-10-25 01:30+01:00", "2026-11-01 01:30+00:00"),
        ("30 1 * * sun", LONDON, "2026-03-22 12:00+00:00", "2026-03-29 02:00+01:00"),
        ("30 1 * * sun", LONDON, "2026-03-29 02:00+01:00", "2026-04-05 01:30+01:00"),
        # monthly, and the dates some months or years lack
        ("0 9 1 * *", LONDON, "2026-10-15 12:00+01:00", "2026-11-01 09:00+00:00"),
        ("0 0 31 * *", LONDON, "2026-04-01 00:00+01:00", "2026-05-31 00:00+01:00"),
        ("0 0 29 2 *", LONDON, "2026-03-01 00:00+00:00", "2028-02-29 00:00+00:00"),
        ("30 1 29 3 *", LONDON, "2026-01-01 00:00+00:00", "2026-03-29 02:00+01:00"),
        # ``after`` in any zone; seconds are honoured
        ("30 1 * * *", LONDON, "2026-10-25 00:29:59+00:00", "2026-10-25 01:30+01:00"),
        ("30 1 * * *", LONDON, "2026-10-25 00:30:00.000001+00:00", "2026-10-26 01:30+00:00"),
        ("0 10 * * *", PERTH, "2026-11-26 01:59+00:00", "2026-11-26 10:00+08:00"),
    ],
)
def test_next_cron_run_is_once_per_local_date_and_time(cron, zone, after, expected):
    run = next_cron_run(Schedule.parse(cron).cron, zone, at(after))
    assert reading(run, zone) == reading(at(expected), zone)
    assert run == at(expected)


def test_a_cron_matching_no_date_is_an_error_not_a_hang():
    with pytest.raises(ValueError, match="matches no date"):
        next_cron_run("0 0 30 2 *", LONDON, at("2026-01-01 00:00+00:00"))


def test_a_naive_moment_is_refused():
    """A naive ``now`` would be read in the server's zone, which is nobody's."""
    with pytest.raises(ValueError, match="expected an aware datetime"):
        next_cron_run("0 10 * * *", LONDON, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="expected an aware datetime"):
        quiet_until(NIGHT, LONDON, datetime(2026, 1, 1, 23))
    with pytest.raises(ValueError, match="expected an aware datetime"):
        catch_up("0 10 * * *", LONDON, at("2026-01-01 10:00+00:00"), datetime(2026, 1, 3), DAY)


def test_a_wall_clock_time_with_a_zone_is_refused():
    with pytest.raises(ValueError, match="without a zone"):
        local_instant(at("2026-10-25 01:30+01:00"), LONDON)


@pytest.mark.parametrize(
    ("cron", "zone", "start", "expected"),
    [
        # a daily time inside London's gap, every day for a week: one run a day
        ("30 1 * * *", LONDON, "2026-03-26 12:00+00:00", [
            "2026-03-27 01:30+00:00", "2026-03-28 01:30+00:00", "2026-03-29 02:00+01:00",
            "2026-03-30 01:30+01:00", "2026-03-31 01:30+01:00", "2026-04-01 01:30+01:00",
            "2026-04-02 01:30+01:00",
        ]),
        # the same in Sydney's gap
        ("15 2 * * *", SYDNEY, "2026-10-01 12:00+10:00", [
            "2026-10-02 02:15+10:00", "2026-10-03 02:15+10:00", "2026-10-04 03:00+11:00",
            "2026-10-05 02:15+11:00", "2026-10-06 02:15+11:00", "2026-10-07 02:15+11:00",
            "2026-10-08 02:15+11:00",
        ]),
        # every half hour through London's repeated hour: 01:00 and 01:30 once each
        ("0,30 * * * *", LONDON, "2026-10-25 00:15+01:00", [
            "2026-10-25 00:30+01:00", "2026-10-25 01:00+01:00", "2026-10-25 01:30+01:00",
            "2026-10-25 02:00+00:00", "2026-10-25 02:30+00:00",
        ]),
        # every half hour through Sydney's gap: 02:00 and 02:30 become one run at 03:00
        ("0,30 * * * *", SYDNEY, "2026-10-04 01:15+10:00", [
            "2026-10-04 01:30+10:00", "2026-10-04 03:00+11:00", "2026-10-04 03:30+11:00",
        ]),
        # 10:00 every day keeps its local time while the offset changes
        ("0 10 * * *", SYDNEY, "2026-04-03 12:00+11:00", [
            "2026-04-04 10:00+11:00", "2026-04-05 10:00+10:00", "2026-04-06 10:00+10:00",
        ]),
        ("0 10 * * *", LONDON, "2026-01-01 00:00+00:00", []),
    ],
)  # fmt: skip
def test_cron_runs_lists_the_next_runs_across_a_clock_change(cron, zone, start, expected):
    runs = cron_runs(cron, zone, at(start), len(expected))
    assert [reading(run, zone) for run in runs] == [reading(at(e), zone) for e in expected]


@pytest.mark.parametrize(
    ("every", "last_run", "now", "due"),
    [
        (timedelta(hours=2), None, "2026-11-26 10:00+08:00", True),  # never ran
        (timedelta(hours=2), "2026-11-26 09:00+08:00", "2026-11-26 10:00+08:00", False),
        (timedelta(hours=2), "2026-11-26 08:00+08:00", "2026-11-26 10:00+08:00", True),
        (timedelta(hours=2), "2026-11-26 07:00+08:00", "2026-11-26 10:00+08:00", True),
        (timedelta(hours=2), "2026-11-26 02:00+00:00", "2026-11-26 12:00+08:00", True),
        (timedelta(hours=2), "2026-11-26 02:00+00:00", "2026-11-26 11:00+08:00", False),
        (timedelta(days=7), "2026-11-20 10:00+08:00", "2026-11-26 10:00+08:00", False),
        (timedelta(hours=2), "2026-11-26 11:00+08:00", "2026-11-26 10:00+08:00", False),
    ],
)
def test_an_interval_campaign_runs_at_start_when_never_run_or_overdue(every, last_run, now, due):
    last = at(last_run) if last_run else None
    assert interval_due_at_start(every, last, at(now)) is due


def test_interval_age_counts_real_time_through_a_repeated_hour():
    """Both moments read in London: 01:30 BST and 01:40 GMT are 70 minutes apart, not 10."""
    last_run = datetime(2026, 10, 25, 1, 30, tzinfo=LONDON)
    now = datetime(2026, 10, 25, 1, 40, tzinfo=LONDON, fold=1)
    assert interval_due_at_start(timedelta(minutes=30), last_run, now)


@pytest.mark.parametrize(
    ("cron", "last", "started", "window", "expected"),
    [
        # nothing missed
        ("0 10 * * *", "2026-11-25 10:00+00:00", "2026-11-25 15:00+00:00", DAY, CatchUp()),
        # one missed, within the window: it runs
        ("0 10 * * *", "2026-11-24 10:00+00:00", "2026-11-25 15:00+00:00", DAY,
         CatchUp(run=at("2026-11-25 10:00+00:00"), missed=1)),
        # many missed: the latest runs, once
        ("0 10 * * *", "2026-11-20 10:00+00:00", "2026-11-25 15:00+00:00", DAY,
         CatchUp(run=at("2026-11-25 10:00+00:00"), missed=5)),
        # the latest missed is older than the window: skipped
        ("0 10 * * *", "2026-11-20 10:00+00:00", "2026-11-25 15:00+00:00", timedelta(hours=2),
         CatchUp(skipped=at("2026-11-25 10:00+00:00"), missed=5)),
        ("0 10 * * tue", "2026-11-10 10:00+00:00", "2026-11-26 09:00+00:00", DAY,
         CatchUp(skipped=at("2026-11-24 10:00+00:00"), missed=2)),
        # exactly as old as the window still runs
        ("0 10 * * *", "2026-11-24 10:00+00:00", "2026-11-25 15:00+00:00", timedelta(hours=5),
         CatchUp(run=at("2026-11-25 10:00+00:00"), missed=1)),
        # a tick exactly at the start is caught up here: the live schedule starts after it
        ("0 10 * * *", "2026-11-24 10:00+00:00", "2026-11-25 10:00+00:00", DAY,
         CatchUp(run=at("2026-11-25 10:00+00:00"), missed=1)),
        # the repeated hour is one missed run, not two
        ("30 1 * * *", "2026-10-24 01:30+01:00", "2026-10-25 01:45+00:00", DAY,
         CatchUp(run=at("2026-10-25 01:30+01:00"), missed=1)),
        # a run in the gap was missed at the gap's end
        ("30 1 * * *", "2026-03-28 01:30+00:00", "2026-03-29 03:00+01:00", DAY,
         CatchUp(run=at("2026-03-29 02:00+01:00"), missed=1)),
        # every 5 minutes for October: 31 days of ticks less the 12 of the repeated hour
        ("*/5 * * * *", "2026-10-01 00:00+00:00", "2026-11-01 00:00+00:00", DAY,
         CatchUp(run=at("2026-11-01 00:00+00:00"), missed=31 * 24 * 12 - 12)),
        # never run: nothing to catch up, it waits for its next time
        ("0 10 * * *", None, "2026-11-25 15:00+00:00", DAY, CatchUp()),
    ],
)  # fmt: skip
def test_catch_up_runs_the_latest_missed_run_once_if_recent(cron, last, started, window, expected):
    last_scheduled = at(last) if last else None
    assert catch_up(cron, LONDON, last_scheduled, at(started), window) == expected


LUNCH = DailyWindow.parse("12:00-14:00")


@pytest.mark.parametrize(
    ("window", "zone", "now", "expected"),
    [
        # wrapping midnight
        (NIGHT, PERTH, "2026-11-26 21:00+08:00", "2026-11-27 08:00+08:00"),
        (NIGHT, PERTH, "2026-11-26 07:00+08:00", "2026-11-26 08:00+08:00"),
        (NIGHT, PERTH, "2026-11-26 00:00+08:00", "2026-11-26 08:00+08:00"),
        (NIGHT, PERTH, "2026-11-26 20:00+08:00", "2026-11-27 08:00+08:00"),  # at the start
        (NIGHT, PERTH, "2026-11-26 08:00+08:00", None),  # at the end: open
        (NIGHT, PERTH, "2026-11-26 07:59:59+08:00", "2026-11-26 08:00+08:00"),
        (NIGHT, PERTH, "2026-11-26 19:59+08:00", None),
        (NIGHT, PERTH, "2026-11-26 12:00+08:00", None),
        # not wrapping
        (LUNCH, PERTH, "2026-11-26 12:00+08:00", "2026-11-26 14:00+08:00"),
        (LUNCH, PERTH, "2026-11-26 13:30+08:00", "2026-11-26 14:00+08:00"),
        (LUNCH, PERTH, "2026-11-26 14:00+08:00", None),
        (LUNCH, PERTH, "2026-11-26 11:59+08:00", None),
        (LUNCH, PERTH, "2026-11-26 21:00+08:00", None),
        # ``now`` given in another zone is read in the window's zone
        (NIGHT, PERTH, "2026-11-26 13:00+00:00", "2026-11-27 08:00+08:00"),
        # a clock change during the night moves the end with the clock
        (NIGHT, LONDON, "2026-03-28 22:00+00:00", "2026-03-29 08:00+01:00"),
        (NIGHT, LONDON, "2026-03-29 03:00+01:00", "2026-03-29 08:00+01:00"),
        (NIGHT, LONDON, "2026-10-24 22:00+01:00", "2026-10-25 08:00+00:00"),
        (NIGHT, LONDON, "2026-10-25 01:30+00:00", "2026-10-25 08:00+00:00"),
        (NIGHT, SYDNEY, "2026-10-03 21:00+10:00", "2026-10-04 08:00+11:00"),
        (NIGHT, SYDNEY, "2026-04-04 21:00+11:00", "2026-04-05 08:00+10:00"),
        # the window ends inside a gap: at the gap's end
        (
            DailyWindow.parse("23:00-01:30"),
            LONDON,
            "2026-03-28 23:30+00:00",
            "2026-03-29 02:00+01:00",
        ),
        # the window ends inside a repeated hour: the clock shows the end again
        (
            DailyWindow.parse("00:00-01:30"),
            LONDON,
            "2026-10-25 01:10+01:00",
            "2026-10-25 01:30+01:00",
        ),
        (
            DailyWindow.parse("00:00-01:30"),
            LONDON,
            "2026-10-25 01:10+00:00",
            "2026-10-25 01:30+00:00",
        ),
    ],
)
def test_quiet_until_is_the_instant_the_window_ends(window, zone, now, expected):
    end = quiet_until(window, zone, at(now))
    if expected is None:
        assert end is None
    else:
        assert reading(end, zone) == reading(at(expected), zone)
        assert end == at(expected)


def test_quiet_hours_are_the_clients_evening_not_the_clinics():
    """At 13:00 in Perth it is 05:00 in London: the clinic is open, the London client asleep."""
    now = at("2026-11-26 13:00+08:00")
    assert quiet_until(NIGHT, PERTH, now) is None
    assert quiet_until(NIGHT, LONDON, now) == at("2026-11-26 08:00+00:00")
    evening = at("2026-11-26 22:00+08:00")  # 14:00 in London
    assert quiet_until(NIGHT, PERTH, evening) == at("2026-11-27 08:00+08:00")
    assert quiet_until(NIGHT, LONDON, evening) is None


# --- property: random daily and hourly crons against a minute-by-minute clock ---

ZONES = [LONDON, SYDNEY, LORD_HOWE, ZoneInfo("America/New_York"), ZoneInfo("Pacific/Chatham"),
         ZoneInfo("Asia/Kolkata")]  # fmt: skip
MINUTE = timedelta(minutes=1)


def clock_changes(zone: ZoneInfo) -> list[datetime]:
    """The hour (UTC) before each of ``zone``'s clock changes in 2026; none for Kolkata."""
    hours = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(366 * 24)]
    return [
        h
        for h in hours
        if h.astimezone(zone).utcoffset() != (h + timedelta(hours=1)).astimezone(zone).utcoffset()
    ]


CHANGES = {zone: clock_changes(zone) or [datetime(2026, 6, 1, tzinfo=UTC)] for zone in ZONES}


def field_values(field: str, top: int) -> set[int]:
    """The numbers a simple cron field (``*``, ``*/n``, ``a-b``, ``a,b``) matches."""
    if field.startswith("*"):
        return set(range(0, top, int(field.partition("/")[2] or 1)))
    if "-" in field:
        first, last = map(int, field.split("-"))
        return set(range(first, last + 1))
    return {int(part) for part in field.split(",")}


def matches(cron: str) -> tuple[set[int], set[int]]:
    minute, hour = cron.split()[:2]
    return field_values(minute, 60), field_values(hour, 24)


def numbers(top: int, usual: list[str]) -> st.SearchStrategy[str]:
    listed = st.lists(st.integers(0, top - 1), min_size=1, max_size=3, unique=True)
    return st.one_of(
        listed.map(lambda values: ",".join(map(str, sorted(values)))), st.sampled_from(usual)
    )


minute_fields = numbers(60, ["*", "*/15", "0", "30", "45", "0,30"])
hour_fields = numbers(24, ["*", "*/6", "1", "2", "3", "1-3", "1,2"])  # clocks change at night
crons = st.tuples(minute_fields, hour_fields).map(lambda f: f"{f[0]} {f[1]} * * *")


@st.composite
def zones_and_afters(draw: st.DrawFn) -> tuple[ZoneInfo, datetime]:
    """A zone, and a moment in 2026 that is often within hours of one of its clock changes."""
    zone = draw(st.sampled_from(ZONES))
    anywhere = st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 31), timezones=st.just(UTC))
    change = draw(st.sampled_from(CHANGES[zone]))
    nearby = st.integers(-3 * 3600, 3 * 3600).map(lambda s: change + timedelta(seconds=s))
    during = st.integers(0, 2 * 3600).map(lambda s: change + timedelta(seconds=s))
    return zone, draw(st.one_of(anywhere, nearby, during))


def clock_oracle(cron: str, zone: ZoneInfo, after: datetime) -> datetime:
    """Watch a clock in ``zone`` minute by minute: a run is the first time it passes a match.

    ``highest`` is the latest reading seen, so a repeated hour passes nothing new and a
    jump over a gap passes every time inside it at once.
    """
    minutes, hours = matches(cron)
    start = after.replace(second=0, microsecond=0)
    earlier = (start - k * MINUTE for k in range(0, 3 * 60))
    highest = max([after.astimezone(zone).replace(tzinfo=None)] + [_wall(u, zone) for u in earlier])
    moment = start + MINUTE
    while True:
        shown = _wall(moment, zone)
        passed = highest.replace(second=0, microsecond=0) + MINUTE
        while passed <= shown:
            if passed.minute in minutes and passed.hour in hours:
                return moment
            passed += MINUTE
        highest = max(highest, shown)
        moment += MINUTE


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


@settings(max_examples=200, deadline=None)
@given(cron=crons, zone_and_after=zones_and_afters())
def test_runs_are_after_match_the_local_clock_and_never_repeat_a_reading(cron, zone_and_after):
    zone, after = zone_and_after
    run = next_cron_run(cron, zone, after)
    assert run > after
    shown = _wall(run, zone)
    minutes, hours = matches(cron)
    jumped = shown - _wall(run - timedelta(seconds=1), zone) > timedelta(seconds=1)
    assert (shown.minute in minutes and shown.hour in hours) or jumped
    assert run == clock_oracle(cron, zone, after)
    following = next_cron_run(cron, zone, run)
    assert cron_runs(cron, zone, after, 2) == [run, following]
    assert _wall(following, zone) != shown
    assert following == clock_oracle(cron, zone, run)
