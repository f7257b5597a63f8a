"""The service's background loops, kept going through any trouble.

Every long-lived loop of ``rebook run`` (the pickup of due messages, the
``[sync]`` files, Cliniko, the presence ``status`` reads) is a *round* that
``keep_going`` calls again and again. A round that raises, whatever the
reason (PostgreSQL restarting, a SQLite file locked or unreadable, a full
disk, Cliniko down), never ends its loop: the trouble is logged once, when
it starts, with its reason; the round is tried again after a wait that
doubles from ``RETRY_FIRST`` up to ``RETRY_MOST``; the first round that
works again logs the recovery and how long the trouble lasted. Meanwhile
``Troubles`` says which loops are failing and why: ``/healthz`` answers 503
with it, and ``rebook status`` shows it (the service records it with its
presence whenever the database takes it).

A round returns how many seconds to wait before the next one, or ``None``
when its loop has nothing left to do (its config section was removed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from jobs.logs import LOGGER, event

RETRY_FIRST = 1.0  # seconds before a failed round is tried again
RETRY_MOST = 60.0  # the longest wait between tries, however long the trouble lasts
REASON_LENGTH = 300  # characters of an error kept for the log, /healthz and status

log = logging.getLogger(LOGGER)
Round = Callable[[], Awaitable[float | None]]


def describe(error: BaseException) -> str:
    """One line that says what went wrong, for people: the driver's words, not SQLAlchemy's.

    SQLAlchemy's message repeats the SQL and adds a link to its docs; the
    database driver's own first line ("connection refused", "database or disk
    is full") is what the person running rebook needs. rebook's own errors
    are written for people already. No password of a URL reaches the line.
    """
    from campaigns.config.report import mask_secrets
    from campaigns.errors import RebookError

    cause = getattr(error, "orig", None) or error
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    if database_error(error):
        line = f"the database: {text or type(cause).__name__}"
    elif isinstance(error, RebookError) and text:
        line = text
    else:
        line = f"{type(cause).__name__}: {text}" if text else type(cause).__name__
    return mask_secrets(line)[:REASON_LENGTH]


class RetryLater(Exception):
    """A round failed for ``cause`` and should be tried again in ``seconds``, not sooner.

    For a remote service that already backed off (Cliniko): asking it again
    within a second would only add to its load.
    """

    def __init__(self, cause: BaseException, seconds: float) -> None:
        super().__init__(str(cause))
        self.cause, self.seconds = cause, seconds


def database_error(error: BaseException) -> bool:
    """From the database, through SQLAlchemy or straight from its driver (the ledger's hot
    path talks to the driver: a lost PostgreSQL connection is psycopg's own error there)."""
    import sqlite3

    from sqlalchemy.exc import SQLAlchemyError

    driver = type(error).__module__.split(".")[0] == "psycopg"
    return driver or isinstance(error, SQLAlchemyError | sqlite3.Error)


def foreseen(error: BaseException) -> bool:
    """An outage of something rebook depends on, rather than a bug: no traceback is needed."""
    from campaigns.errors import RebookError

    return database_error(error) or isinstance(error, OSError | TimeoutError | RebookError)


@dataclass
class Trouble:
    reason: str
    since: datetime
    failures: int = 1
    seen: set[str] = field(default_factory=set)  # every reason said in this trouble

    def __post_init__(self) -> None:
        self.seen.add(self.reason)


class Troubles:
    """Which loops are failing now, since when and why."""

    def __init__(self, clock: Callable[[], datetime],
                 on_change: Callable[[str], None] | None = None) -> None:  # fmt: skip
        """``on_change(loop)`` is called when a loop starts or stops failing."""
        self.clock, self.on_change = clock, on_change
        self._failing: dict[str, Trouble] = {}

    def failed(self, loop: str, error: BaseException) -> float:
        """Record a failed round of ``loop``; return the seconds to wait before the next."""
        reason = describe(error)
        trouble = self._failing.get(loop)
        if trouble is None:
            trouble = self._failing[loop] = Trouble(reason, self.clock())
            log.error(f"{loop} failing: retrying until it works",
                      exc_info=None if foreseen(error) else error,
                      extra={"fields": {"reason": reason}})  # fmt: skip
            self._changed(loop)
        else:
            trouble.failures += 1
            if reason not in trouble.seen:  # a new cause: worth a line, once
                trouble.seen.add(reason)
                trouble.reason = reason
                event(log, f"{loop} still failing, now for another reason",
                      level=logging.ERROR, reason=reason)  # fmt: skip
        return min(RETRY_MOST, RETRY_FIRST * 2 ** (trouble.failures - 1))

    def recovered(self, loop: str) -> None:
        trouble = self._failing.pop(loop, None)
        if trouble is not None:
            lasted = round((self.clock() - trouble.since).total_seconds())
            event(log, f"{loop} working again", after_s=lasted, failed_rounds=trouble.failures)
            self._changed(loop)

    def _changed(self, loop: str) -> None:
        if self.on_change is not None:
            self.on_change(loop)

    def now(self) -> dict[str, str]:
        """Each failing loop and why: what ``/healthz`` and ``status`` show."""
        return {loop: trouble.reason for loop, trouble in self._failing.items()}

    def since(self) -> dict[str, datetime]:
        return {loop: trouble.since for loop, trouble in self._failing.items()}


async def keep_going(
    name: str,
    one_round: Round,
    troubles: Troubles,
    stop: asyncio.Event,
    wake: asyncio.Event | None = None,
) -> None:
    """Call ``one_round`` until ``stop``; it waits what the round says, or less when woken.

    ``wake`` is cleared *before* each round reads its state, never after:
    something queued while the round works sets it again, and the next round
    starts at once instead of a whole wait later.
    """
    while not stop.is_set():
        if wake is not None:
            wake.clear()
        try:
            wait = await one_round()
        except RetryLater as later:
            wait = max(troubles.failed(name, later.cause), later.seconds)
        except Exception as error:  # whatever it is, the loop goes on
            wait = troubles.failed(name, error)
        else:
            troubles.recovered(name)
        if wait is None:
            return
        await sleep_until(wait, stop, wake)


async def sleep_until(seconds: float, stop: asyncio.Event, wake: asyncio.Event | None) -> None:
    """Sleep ``seconds``, or until ``stop`` or ``wake`` is set."""
    events = [stop] if wake is None else [stop, wake]
    waiters = [asyncio.create_task(each.wait()) for each in events]
    try:
        await asyncio.wait(waiters, timeout=max(0.0, seconds), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waiters, return_exceptions=True)


async def in_daemon_thread(function, *args):
    """``asyncio.to_thread``, in a thread that does not hold up the process's exit.

    For work that is all or nothing, such as an import in one transaction: a
    second Ctrl-C may then stop the process at once, and the transaction
    never committed is simply not there. (The executor's threads are waited
    for at exit, however long they take.)
    """
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(outcome, error) -> None:
        if not future.done():
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(outcome)

    def work() -> None:
        try:
            outcome, error = function(*args), None
        except BaseException as raised:  # handed to the awaiting task, whatever it is
            outcome, error = None, raised
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(settle, outcome, error)

    threading.Thread(target=work, name=getattr(function, "__name__", "work"), daemon=True).start()
    return await future
