"""A per-client-IP rate limit for the web endpoint: one address cannot crowd out the rest.

Each address has a token bucket (``[web] rate_limit_per_ip``, ``20/s`` by
default, holding up to ``burst_per_ip``, 40): a request beyond it is
answered 429 with ``Retry-After`` and does nothing else. The table is an LRU
of ``TRACKED_ADDRESSES`` buckets, so memory stays bounded (~2 MB) whoever
calls; an address pushed out simply starts again with a full bucket.

Why these numbers: unsubscribes are rare and human-paced. A mail provider
relays its users' one-click POSTs from a few addresses, and even a campaign
to 100,000 clients draws a few hundred unsubscribes spread over hours; a
provider replaying a backlog after an outage is the burst the 40 allow. What
the limit stops is one address hammering the endpoint (a broken scanner, a
script), whose POSTs would each be a write to the database the sender
commits its ledger to. Link scanners that open every link of every message
(GETs) are slowed, which costs them nothing and changes nothing.

IPv6 clients are counted by their /64, the block one subscriber gets: one
bucket per address would give each of them 2**64.

The address is the peer's, or, when the peer is one of ``[web]
trusted_proxies``, the one that proxy puts in ``X-Forwarded-For`` (uvicorn's
proxy-headers support resolves it before a request reaches this limit).
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from collections.abc import Callable

from campaigns.durations import Rate

TRACKED_ADDRESSES = 10_000  # buckets kept, least recently seen dropped first
REFUSED = b"Too many requests: please try again in a moment.\n"


def client_key(host: str) -> str:
    """The bucket an address counts against: itself, or for IPv6 its /64."""
    if ":" not in host:
        return host
    try:
        return str(ipaddress.IPv6Network((host, 64), strict=False))
    except ValueError:
        return host


class PerAddressLimit:
    """Token buckets by client address; ``now`` is an argument, the caller reads the clock."""

    def __init__(self, rate: Rate, burst: int, tracked: int = TRACKED_ADDRESSES) -> None:
        self.per_second = rate.per_second
        self.burst = float(burst)
        self.tracked = tracked
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when

    def wait(self, address: str, now: float) -> float:
        """0 when a request from ``address`` may go now (and counts it), else seconds to wait."""
        key = client_key(address)
        tokens, then = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.per_second)
        self._buckets[key] = (tokens - 1, now) if tokens >= 1 else (tokens, now)
        if len(self._buckets) > self.tracked:
            self._buckets.popitem(last=False)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.per_second

    def __len__(self) -> int:
        return len(self._buckets)


class LimitPerAddress:
    """ASGI middleware: HTTP requests over their address's limit get 429 and go no further."""

    def __init__(self, app, limit: PerAddressLimit, clock: Callable[[], float]) -> None:
        self.app, self.limit, self.clock = app, limit, clock

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.limit.wait(client[0] if client else "", self.clock())
        if not wait:
            await self.app(scope, receive, send)
            return
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(REFUSED)).encode()),
            (b"retry-after", str(max(1, math.ceil(wait))).encode()),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": REFUSED})
