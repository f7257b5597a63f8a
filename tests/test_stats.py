"""The intervals of ``campaigns.stats`` against published worked examples.

Newcombe (1998), Stat Med 17:873-890, Table II, method 10 ("score, no
continuity correction"). Examples (a), (b) and (d) as other implementations
quote them in their own tests: the R package propint (a, b: "the results
reported in Newcombe1998") and ratesci's tests (d: "Newcombe RD example (d)",
square-and-add with Wilson). (c) and the ones with no event at all are the
same formula worked by hand, so they guard the edge cases, not the source.
"""

from __future__ import annotations

import pytest

from campaigns.stats import MEASURED, NO_DIFFERENCE, NOT_ENOUGH, newcombe, verdict, wilson


@pytest.mark.parametrize(
    ("a", "m", "b", "n", "difference", "low", "high"),
    [
        (56, 70, 48, 80, 0.2000, 0.0524, 0.3339),  # (a)
        (9, 10, 3, 10, 0.6000, 0.1705, 0.8090),  # (b)
        (6, 7, 2, 7, 0.5714, 0.0582, 0.8062),  # (c)
        (5, 56, 0, 29, 0.0893, -0.0381, 0.1926),  # (d)
        (0, 10, 0, 20, 0.0, -0.1611, 0.2775),  # no event in either group
        (10, 10, 0, 20, 1.0, 0.6791, 1.0),  # every one against none: capped at 1
    ],
)
def test_newcombe_hybrid_score_interval_matches_the_worked_examples(
    a, m, b, n, difference, low, high
):
    found = newcombe(a, m, b, n)
    assert round(found.estimate, 4) == difference
    assert (round(found.low, 4), round(found.high, 4)) == (low, high)


def test_wilson_interval_of_a_rate():
    # Newcombe (1998), the companion paper on single proportions: 81/263, 0.2553 to 0.3662
    found = wilson(81, 263)
    assert (round(found.low, 4), round(found.high, 4)) == (0.2553, 0.3662)
    assert wilson(0, 0).high == 1.0  # nobody counted: nothing known


def test_the_verdict_says_in_words_what_a_number_cannot():
    assert verdict(29, 500, newcombe(20, 29, 10, 500)) == NOT_ENOUGH
    assert verdict(500, 40, newcombe(50, 500, 4, 40)) == NO_DIFFERENCE
    assert verdict(900, 100, newcombe(180, 900, 8, 100)) == MEASURED
