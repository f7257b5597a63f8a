"""Intervals for booking rates and their difference: pure arithmetic, no I/O.

A booking rate is a proportion (clients who booked / clients counted), and
the question a control group answers is the difference of two independent
proportions. Its interval is Newcombe's hybrid score interval, method 10 of
Newcombe (1998), "Interval estimation for the difference between independent
proportions: comparison of eleven methods", Stat Med 17:873-890: it combines
the Wilson score interval of each rate, keeps good coverage with small
groups and with rates near 0 (a clinic's usual case, where the textbook Wald
interval is too narrow and can leave [-1, 1]), and needs no iteration.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import sqrt

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile: a two-sided 95% interval
MIN_GROUP = 30  # fewer clients than this in a group: too few to say anything in words


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def spans_zero(self) -> bool:
        return self.low <= 0.0 <= self.high

    def scaled(self, factor: float) -> Interval:
        return Interval(self.estimate * factor, self.low * factor, self.high * factor)


def wilson(successes: int, total: int, z: float = Z95) -> Interval:
    """Wilson's score interval for ``successes / total`` (Wilson 1927); all of [0, 1] for none."""
    if total <= 0:
        return Interval(0.0, 0.0, 1.0)
    if not 0 <= successes <= total:
        raise ValueError(f"{successes} successes out of {total}")
    p = successes / total
    centre = 2 * successes + z * z
    spread = z * sqrt(z * z + 4 * successes * (1 - p))
    denominator = 2 * (total + z * z)
    return Interval(p, max(0.0, (centre - spread) / denominator),
                    min(1.0, (centre + spread) / denominator))  # fmt: skip


def newcombe(a: int, m: int, b: int, n: int, z: float = Z95) -> Interval:
    """The difference ``a/m - b/n`` with Newcombe's hybrid score interval (method 10)."""
    first, second = wilson(a, m, z), wilson(b, n, z)
    p1, p2 = first.estimate, second.estimate
    difference = p1 - p2
    low = difference - sqrt((p1 - first.low) ** 2 + (second.high - p2) ** 2)
    high = difference + sqrt((first.high - p1) ** 2 + (p2 - second.low) ** 2)
    return Interval(difference, max(-1.0, low), min(1.0, high))


NOT_ENOUGH = "not enough data yet"
NO_DIFFERENCE = "no measurable difference yet"
MEASURED = "measured"


def verdict(recipients: int, control: int, difference: Interval) -> str:
    """What may be said of a difference in words: too few clients, no difference yet, or one."""
    if min(recipients, control) < MIN_GROUP:
        return NOT_ENOUGH
    if difference.spans_zero():
        return NO_DIFFERENCE
    return MEASURED
