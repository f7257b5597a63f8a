from datetime import time, timedelta

import pytest

from campaigns.durations import DailyWindow, Rate, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("90d", timedelta(days=90)),
        ("6w", timedelta(weeks=6)),
        (" 6 w ", timedelta(weeks=6)),
    ],
)
def test_durations_parse(text, expected):
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["6", "w", "6 weeks", "-1d", "1.5h", "", "6y"])
def test_bad_durations_say_what_is_expected(text):
    with pytest.raises(ValueError, match="expected a duration like"):
        parse_duration(text)


def test_rates():
    assert Rate.parse("10/s") == Rate(10, timedelta(seconds=1))
    assert Rate.parse("2/7d") == Rate(2, timedelta(days=7))
    assert Rate.parse("2/1w") == Rate.parse("2/7d")


@pytest.mark.parametrize("text", ["2/7d", "10/s", "1/w", "2/1w", "5/90m"])
def test_a_rate_prints_as_the_owner_wrote_it(text):
    assert str(Rate.parse(f" {text.replace('/', ' / ')} ")) == text
    assert str(Rate(2, timedelta(days=7))) == "2/w"  # one made in code: its shortest spelling
    assert Rate.parse("10/s").per_second == 10
    for bad in ["10", "0/s", "10/0s", "ten/s"]:
        with pytest.raises(ValueError):
            Rate.parse(bad)


@pytest.mark.parametrize(
    ("moment", "quiet"),
    [("19:59", False), ("20:00", True), ("23:30", True), ("00:00", True), ("07:59", True),
     ("08:00", False), ("12:00", False)],
)  # fmt: skip
def test_quiet_hours_wrap_midnight(moment, quiet):
    window = DailyWindow.parse("20:00-08:00")
    assert window.contains(time.fromisoformat(moment)) is quiet


def test_window_within_a_day():
    window = DailyWindow.parse("12:00-13:30")
    assert window.contains(time(12, 45))
    assert not window.contains(time(13, 30))
    for bad in ["25:00-08:00", "20:00", "08:00-08:00"]:
        with pytest.raises(ValueError):
            DailyWindow.parse(bad)


@pytest.mark.parametrize("text", ["99999999999w", "99999999w", "36501d", "5215w"])
def test_durations_past_a_century_are_refused_before_they_overflow(text):
    with pytest.raises(ValueError, match="too long: at most 36500d"):
        parse_duration(text)


def test_a_century_is_the_longest_duration():
    assert parse_duration("36500d") == timedelta(days=36500)


@pytest.mark.parametrize(
    ("text", "problem"),
    [("1/99999999999w", "too long"), ("2/5215w", "too long"), ("99999999999999999999/s", "count")],
)
def test_rates_too_large_to_use_are_refused(text, problem):
    with pytest.raises(ValueError, match=problem):
        Rate.parse(text)
