"""A token bucket shared by every SMTP connection: the provider's rate, not per connection.

The rate is the clinic's total. When several workers deliver at once (other
processes, other machines), each takes its share: ``share(1 / workers)``.
"""

from __future__ import annotations

import asyncio
import time

from campaigns.durations import Rate


class TokenBucket:
    """``acquire()`` returns when one more message may go; bursts up to one second's worth.

    It starts nearly empty: a worker joining others must not add a second's
    worth of its own to what they already send (the rate is the clinic's total).
    """

    def __init__(self, rate: Rate, clock=time.monotonic) -> None:
        self.total = rate.per_second
        self.per_second = self.total
        self.capacity = max(1.0, self.per_second)
        self._tokens = 1.0
        self._clock = clock
        self._updated = clock()
        self._lock = asyncio.Lock()

    def share(self, fraction: float) -> None:
        """Run at ``fraction`` of the total rate from now on (bursts shrink alike)."""
        self._refill()
        self.per_second = self.total * fraction
        self.capacity = max(1.0, self.per_second)
        self._tokens = min(self._tokens, self.capacity)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.per_second)
        self._updated = now

    async def acquire(self) -> None:
        async with self._lock:  # waiters are served in turn
            self._refill()
            if self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self.per_second)
                self._refill()
            self._tokens -= 1
