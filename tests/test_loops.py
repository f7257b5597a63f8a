"""``jobs.loops``: a loop goes on whatever its round raises, and no wake is ever lost."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy.exc import OperationalError

from jobs.loops import RETRY_MOST, RetryLater, Troubles, describe, keep_going

NOW = datetime(2026, 12, 2, tzinfo=UTC)


def test_a_wake_set_while_a_round_works_starts_the_next_round_at_once():
    async def scenario() -> list[float]:
        stop, wake = asyncio.Event(), asyncio.Event()
        started: list[float] = []

        async def one_round() -> float:
            started.append(asyncio.get_running_loop().time())
            if len(started) == 1:
                wake.set()  # work queued while this round delivers
            if len(started) == 2:
                stop.set()
            return 60.0  # nothing due for a minute, as far as this round knows

        await asyncio.wait_for(keep_going("queue", one_round, Troubles(lambda: NOW), stop, wake), 5)
        return started

    first, second = asyncio.run(scenario())
    assert second - first < 0.5


def test_a_failing_round_is_logged_once_retried_sooner_and_its_recovery_logged(caplog):
    caplog.set_level(logging.INFO, logger="rebook")
    clock = iter(range(10**6))
    troubles = Troubles(lambda: datetime.fromtimestamp(next(clock), UTC))
    outage = OperationalError("SELECT 1", {}, Exception("connection refused\nDETAIL: more"))
    waits = [troubles.failed("queue", outage) for _ in range(9)]
    assert waits[:4] == [1.0, 2.0, 4.0, 8.0] and waits[-1] == RETRY_MOST
    assert troubles.now() == {"queue": "the database: connection refused"}
    troubles.recovered("queue")
    assert troubles.now() == {}
    events = [record.getMessage() for record in caplog.records if record.name == "rebook"]
    assert events == ["queue failing: retrying until it works", "queue working again"]
    assert all(record.exc_info is None for record in caplog.records)  # an outage is no bug


def test_a_bug_in_a_round_keeps_its_traceback_once_and_the_loop_goes_on(caplog):
    async def scenario() -> int:
        stop, calls = asyncio.Event(), []

        async def one_round() -> float:
            calls.append(1)
            if len(calls) == 3:
                stop.set()
            raise KeyError("a bug")

        troubles = Troubles(lambda: NOW)
        await asyncio.wait_for(keep_going("sync", one_round, troubles, stop), 10)
        return len(calls)

    caplog.set_level(logging.ERROR, logger="rebook")
    assert asyncio.run(scenario()) == 3
    [record] = [record for record in caplog.records if record.name == "rebook"]
    assert record.exc_info is not None and "KeyError" in describe(record.exc_info[1])


def test_retry_later_waits_what_the_remote_service_asks():
    troubles = Troubles(lambda: NOW)

    async def scenario() -> float:
        stop = asyncio.Event()

        async def one_round() -> float:
            asyncio.get_running_loop().call_later(0.2, stop.set)
            raise RetryLater(RuntimeError("429"), 900.0)

        started = asyncio.get_running_loop().time()
        await keep_going("cliniko", one_round, troubles, stop)
        return asyncio.get_running_loop().time() - started

    assert asyncio.run(scenario()) < 1.0  # the stop ended the 900 s wait
    assert troubles.now() == {"cliniko": "RuntimeError: 429"}


def test_a_drivers_own_error_is_an_outage_said_in_its_words_without_a_traceback():
    import sqlite3

    import psycopg

    from jobs.loops import foreseen

    lost = psycopg.OperationalError("the connection is lost")
    assert foreseen(lost) and describe(lost) == "the database: the connection is lost"
    assert foreseen(sqlite3.OperationalError("database or disk is full"))
    assert not foreseen(KeyError("a bug"))
