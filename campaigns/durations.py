"""Durations (``"6w"``), rates (``"10/s"``, ``"2/7d"``) and daily windows (``"20:00-08:00"``).

Pure parsers shared by the config models; each raises ``ValueError`` with a
message that says what was expected, which pydantic turns into a config error
naming the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time, timedelta

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# No rule of a clinic looks further than a century, and a date that far either side of
# today stays inside what ``datetime`` can represent (years 1 to 9999).
LONGEST = timedelta(days=36500)
MOST_EVENTS = 1_000_000  # a rate's count: beyond any provider's limit, within a database integer
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhdw])\s*$")
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_duration(text: str) -> timedelta:
    """``"90d"`` → 90 days. An integer and one unit of s, m, h, d or w."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(
            f'expected a duration like "30s", "15m", "2h", "90d" or "6w", got {text!r}'
        )
    return _bounded(int(match[1]) * UNITS[match[2]], text)


def _bounded(seconds: int, text: str) -> timedelta:
    """Refuse a span past ``LONGEST`` here, before timedelta or date arithmetic overflows."""
    if seconds > LONGEST.total_seconds():
        raise ValueError(f"{text!r} is too long: at most {format_duration(LONGEST)} (100 years)")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling, so a parsed duration prints as it was written."""
    seconds = int(value.total_seconds())
    for unit, size in sorted(UNITS.items(), key=lambda item: -item[1]):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Rate:
    """``count`` events per ``per``: a send rate or a per-client cap."""

    count: int
    per: timedelta
    spelling: str = field(default="", compare=False)  # as the owner wrote it: "2/7d", not "2/w"

    @classmethod
    def parse(cls, text: str) -> Rate:
        match = _RATE.match(text) if isinstance(text, str) else None
        if not match or int(match[1]) == 0:
            raise ValueError(f'expected a rate like "10/s" or "2/7d", got {text!r}')
        if int(match[1]) > MOST_EVENTS:
            raise ValueError(f"the count of {text!r} is too large: at most {MOST_EVENTS}")
        periods = int(match[2] or 1)
        if periods == 0:
            raise ValueError(f"the period of {text!r} is zero")
        per = _bounded(periods * UNITS[match[3]], text)
        return cls(int(match[1]), per, f"{int(match[1])}/{match[2]}{match[3]}")

    @property
    def per_second(self) -> float:
        return self.count / self.per.total_seconds()

    def __str__(self) -> str:
        if self.spelling:
            return self.spelling
        period = format_duration(self.per)
        if period[0] == "1" and period[1:] in UNITS:
            period = period[1:]  # "10/s", not "10/1s"
        return f"{self.count}/{period}"


@dataclass(frozen=True)
class DailyWindow:
    """A span of the clock that may wrap midnight, such as quiet hours ``20:00-08:00``."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> DailyWindow:
        match = _WINDOW.match(text) if isinstance(text, str) else None
        if not match:
            raise ValueError(f'expected a window like "20:00-08:00", got {text!r}')
        try:
            start = time(int(match[1]), int(match[2]))
            end = time(int(match[3]), int(match[4]))
        except ValueError:
            raise ValueError(f"{text!r} is not a valid time of day range") from None
        if start == end:
            raise ValueError(f"{text!r} is empty: start and end are the same")
        return cls(start, end)

    def contains(self, moment: time) -> bool:
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"
