"""Limits on the endpoint's connections themselves, which no ASGI middleware sees.

A slowloris client opens connections and sends a request a byte at a time,
or nothing at all. uvicorn waits for headers without end (its keep-alive
timeout starts only after a response), and counts every open connection
against ``limit_concurrency``: 505 idle connections from one address made
every other request a 503, one-click unsubscribes lost with them. A request
that never finishes its headers never reaches the app, so the limits live in
the connection's protocol (``guarded``, a subclass of uvicorn's httptools
protocol):

- a request's headers must arrive within ``HEADERS_WITHIN`` of its first
  byte (of the connection's opening, for its first request), its body within
  ``BODY_WITHIN`` of its headers; a connection too slow is closed (408 when it
  was half-way through its headers). Headers longer than ``MOST_HEAD`` bytes
  are refused (431): httptools sets no bound, uvicorn would keep them all;
- one address holds at most ``PER_ADDRESS`` connections at once (an IPv6
  /64 counts as one address, as for the rate limit); another one is answered
  503 and closed. Not the trusted proxies: every client behind them shares
  their address, and the proxy waits for a whole request before passing it on.

A deadline is kept to within ``SWEEP_EVERY``. Honest clients never meet
these limits: a mail provider's one-click POST or a browser's form is a few
hundred bytes, sent at once, on a connection or two. What was cut is logged
at most once a minute (``Tally``), with counts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from jobs.iplimit import client_key
from jobs.logs import LOGGER, event

HEADERS_WITHIN = 10.0  # seconds for a request's headers, from its first byte
BODY_WITHIN = 10.0  # seconds for its body, from its headers (ours are a few hundred bytes)
PER_ADDRESS = 32  # connections open at once from one client address
MOST_HEAD = 16_384  # bytes of request line and headers (ours need a few hundred)
TALLY_EVERY = 60.0  # seconds between two log lines about cut connections
SWEEP_EVERY = 1.0  # seconds between two looks for connections past their deadline

BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n"
    b"connection: close\r\ncontent-length: 0\r\n\r\n"
)
TOO_SLOW = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
TOO_LONG = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"connection: close\r\ncontent-length: 0\r\n\r\n"
)

log = logging.getLogger(LOGGER)


class Tally:
    """Counts what was cut, and logs the counts at most every ``TALLY_EVERY`` seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self.addresses: Counter[str] = Counter()
        self.logged = -TALLY_EVERY

    def note(self, what: str, address: str) -> None:
        self.counts[what] += 1
        self.addresses[address] += 1
        now = self.clock()
        if now - self.logged >= TALLY_EVERY:
            busiest, times = self.addresses.most_common(1)[0]
            event(log, "web connections cut", level=logging.WARNING, **self.counts,
                  busiest=busiest, busiest_cut=times)  # fmt: skip
            self.logged = now
            self.counts.clear()
            self.addresses.clear()


class Guard:
    """What every connection of one server shares: open ones per address, and one sweep.

    A connection only notes its deadline (a float) as a request moves on; one
    timer per server, every ``sweep_every`` seconds, cuts those past theirs.
    A timer per request, armed and cancelled three times each, cost ~6% of
    the one-click POSTs a second (bench/web.py).
    """

    def __init__(
        self,
        exempt: Callable[[str], bool],
        per_address: int = PER_ADDRESS,
        headers_within: float = HEADERS_WITHIN,
        body_within: float = BODY_WITHIN,
    ) -> None:
        self.exempt, self.per_address = exempt, per_address
        self.headers_within, self.body_within = headers_within, body_within
        self.sweep_every = min(SWEEP_EVERY, headers_within / 5, body_within / 5)
        self.open: Counter[str] = Counter()
        self.watched: set = set()  # the connections of this server that are open
        self.sweeping: asyncio.TimerHandle | None = None
        self.tally = Tally()

    def admit(self, address: str) -> str | None:
        """The key this connection counts against, or None when the address has too many."""
        if self.exempt(address):
            return ""
        key = client_key(address)
        if self.open[key] >= self.per_address:
            self.tally.note("refused", key)
            return None
        self.open[key] += 1
        return key

    def release(self, key: str) -> None:
        if key:
            self.open[key] -= 1
            if self.open[key] <= 0:
                del self.open[key]

    def watch(self, connection, loop: asyncio.AbstractEventLoop) -> None:
        self.watched.add(connection)
        if self.sweeping is None:
            self.sweeping = loop.call_later(self.sweep_every, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for connection in [c for c in self.watched if c.deadline is not None and c.deadline <= now]:
            connection.too_slow()
        self.sweeping = (
            loop.call_later(self.sweep_every, self._sweep, loop) if self.watched else None
        )


def guarded(guard: Guard) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, held to ``guard``'s limits (``Config(http=...)`` takes it)."""

    class Guarded(HttpToolsProtocol):
        deadline: float | None = None  # when this request is too slow (guard.sweep looks)
        _key: str | None = None
        _headers_done = True  # between requests uvicorn's keep-alive timeout applies
        _begun = False  # a byte of the request came: a 408 tells the client why
        _head = 0  # bytes received while its headers were not complete

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._key = guard.admit(self.client[0] if self.client else "")
            if self._key is None:
                transport.write(BUSY)
                transport.close()
                return
            self._headers_done = False
            self.deadline = self.loop.time() + guard.headers_within
            guard.watch(self, self.loop)

        def connection_lost(self, exc: Exception | None) -> None:
            self.deadline = None
            guard.watched.discard(self)
            if self._key is not None:
                guard.release(self._key)
                self._key = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if not self._headers_done:  # counted before parsing: one write may hold them all
                end = data.find(b"\r\n\r\n")
                if self._head + (len(data) if end < 0 else end) > MOST_HEAD:
                    self._cut(TOO_LONG, "too long")
                    return
            super().data_received(data)
            if not self._headers_done:  # this chunk did not finish them: count it
                self._head += len(data)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._begun = True
            if self._headers_done:  # a later request on a kept-alive connection: its clock starts
                self._headers_done = False
                self.deadline = self.loop.time() + guard.headers_within

        def on_headers_complete(self) -> None:
            self._headers_done, self._begun, self._head = True, False, 0
            self.deadline = self.loop.time() + guard.body_within
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self.deadline = None
            super().on_message_complete()

        def too_slow(self) -> None:
            # half-way through its headers, the app never saw it: say why; mid-body, the
            # app's receive() says the client left
            self._cut(TOO_SLOW if self._begun else b"", "too slow")

        def _cut(self, answer: bytes, why: str) -> None:
            self.deadline = None
            if self.transport.is_closing():
                return
            if answer:
                self.transport.write(answer)
            guard.tally.note(why, self._key or (self.client[0] if self.client else ""))
            self.transport.close()

    return Guarded
