"""Group commit for the send ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from campaigns.delivery.ledger import Ledger, Result


class Committer:
    """Every connection's "starting" joins one transaction with the results finished so far.

    A connection awaits ``start`` before its SMTP transaction. The commit
    waits one more turn of the event loop, so that connections whose replies
    arrived meanwhile join it, and it records every result finished since the
    last one: a connection's previous result is always committed no later
    than its next start. Fewer, larger commits keep the ledger off the
    critical path.
    """

    def __init__(self, ledger: Ledger, clock: Callable[[], datetime]) -> None:
        self.ledger, self.clock = ledger, clock
        self._starting: list[int] = []
        self._waiting: list[asyncio.Future] = []
        self._results: list[Result] = []
        self._scheduled = False

    async def start(self, row_id: int) -> bool:
        """Mark ``row_id`` as leaving; False when it may no longer go (recorded as skipped)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._starting.append(row_id)
        self._waiting.append(future)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(loop.call_soon, self._commit)  # after the next poll for I/O
        return await future

    def finish(self, result: Result) -> None:
        self._results.append(result)

    def _commit(self) -> None:
        self._scheduled = False
        starting, waiting = self._starting, self._waiting
        self._starting, self._waiting = [], []
        try:
            barred = self.flush(starting)
        except Exception as error:
            for future in waiting:
                future.set_exception(error)
            return
        for row_id, future in zip(starting, waiting, strict=True):
            future.set_result(row_id not in barred)

    def flush(self, starting: list[int] | None = None) -> set[int]:
        """Commit what is pending; return the rows of ``starting`` that may not leave."""
        results, self._results = self._results, []
        if starting or results:
            try:
                return self.ledger.commit(starting or [], results, self.clock())
            except Exception:
                self._results = results + self._results  # kept for the final flush
                raise
        return set()
