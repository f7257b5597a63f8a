"""The web endpoint's per-address limit, as a table of requests and times (no clock)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from campaigns.durations import Rate
from jobs.iplimit import PerAddressLimit, client_key

TWENTY = Rate(20, timedelta(seconds=1))


def waits(limit: PerAddressLimit, requests: list[tuple[str, float]]) -> list[float]:
    return [round(limit.wait(address, at), 3) for address, at in requests]


def test_a_burst_goes_then_the_rate_and_the_wait_is_said():
    limit = PerAddressLimit(TWENTY, burst=3)
    assert waits(limit, [("192.0.2.1", 0.0)] * 4) == [0, 0, 0, 0.05]
    assert waits(limit, [("192.0.2.1", 0.05), ("192.0.2.1", 0.05)]) == [0, 0.05]
    assert waits(limit, [("192.0.2.1", 10.0)] * 3) == [0, 0, 0]  # refilled up to the burst only
    assert waits(limit, [("192.0.2.1", 10.0)]) == [0.05]


def test_a_refused_request_does_not_spend_a_token():
    limit = PerAddressLimit(Rate(1, timedelta(seconds=1)), burst=1)
    assert waits(limit, [("192.0.2.1", 0.0)] * 5) == [0, 1.0, 1.0, 1.0, 1.0]
    assert waits(limit, [("192.0.2.1", 1.0)]) == [0]


def test_each_address_has_its_own_bucket():
    limit = PerAddressLimit(TWENTY, burst=1)
    assert waits(limit, [("192.0.2.1", 0.0), ("192.0.2.1", 0.0), ("192.0.2.2", 0.0)]) == [
        0,
        0.05,
        0,
    ]


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # one subscriber's block, one bucket
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("unknown", "unknown"),  # whatever a proxy forwarded: counted as it is
    ],
)
def test_ipv6_counts_by_the_64_block(address, key):
    assert client_key(address) == key


def test_the_table_is_bounded_and_forgets_the_least_recent_address():
    limit = PerAddressLimit(TWENTY, burst=1, tracked=3)
    for n in range(3):
        limit.wait(f"192.0.2.{n}", 0.0)
    limit.wait("192.0.2.0", 0.0)  # seen again: now the most recent
    limit.wait("192.0.2.9", 0.0)  # pushes out 192.0.2.1
    assert len(limit) == 3
    assert waits(limit, [("192.0.2.0", 0.0), ("192.0.2.1", 0.0)]) == [0.05, 0]


def test_trusted_proxies_must_be_addresses(sqlite_clinic):
    sqlite_clinic.write_config('[web]\ntrusted_proxies = ["caddy"]\n')
    result = sqlite_clinic.rebook("check")
    assert result.code == 2 and "web.trusted_proxies" in result.err and "'caddy'" in result.err
    assert "Traceback" not in result.err
