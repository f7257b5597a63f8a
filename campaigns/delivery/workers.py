"""Using every core: a big run is delivered by several worker processes at once.

Talking SMTP and rendering each take a core's worth of Python at a few
thousand messages a second. Each helper is what a second ``rebook send``
would be: its own event loop, its share of the SMTP connections (and of the
rate limit), its own ledger connection, its own worker id. The ledger splits
the rows between them exactly as it splits them between workers on several
machines, so the guarantees do not change: at most one message per
connection in doubt after a crash.

Helpers die with the process that started them (Linux ``PR_SET_PDEATHSIG``),
so a ``kill -9`` stops the whole run and the next run recovers what was left.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor

from campaigns.config import Settings
from campaigns.delivery.pipeline import CampaignRun, Progress, RunReport, utc_now
from campaigns.delivery.transports import TransportUnavailable, make_transport

PARALLEL_FROM = 2_000  # messages: below this, one process is enough
PROGRESS_EVERY = 0.5  # seconds between progress polls of the ledger


def worker_count(settings: Settings, waiting: int, asked: int | None) -> int:
    """Processes for a run: as asked, else one per core for a big SMTP run."""
    if asked is not None:
        return max(1, min(asked, settings.smtp.connections))
    if settings.mail.transport != "smtp" or waiting < PARALLEL_FROM:
        return 1
    return max(1, min(os.cpu_count() or 1, settings.smtp.connections))


def share_settings(settings: Settings, connections: int) -> Settings:
    """The settings of a worker that has ``connections`` of the run's connections.

    The rate limit stays the clinic's total: each worker, helpers included,
    takes its share of it from the number of workers delivering (the ledger's
    ``workers`` table), wherever they run.
    """
    update = {"connections": connections}
    return settings.model_copy(update={"smtp": settings.smtp.model_copy(update=update)})


def _shares(connections: int, count: int) -> list[int]:
    return [connections // count + (1 if n < connections % count else 0) for n in range(count)]


class Helpers:
    """``count - 1`` helper processes for one run."""

    def __init__(self, settings: Settings, name: str, count: int) -> None:
        self.settings, self.name = settings, name
        self.own, *theirs = _shares(settings.smtp.connections, count)
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(
            len(theirs), mp_context=context, initializer=_die_with_parent
        )
        self._futures = [
            self._pool.submit(_helper, share_settings(settings, share), name) for share in theirs
        ]

    async def deliver(self, run: CampaignRun, progress: Progress | None) -> None:
        """Deliver with this process and the helpers; merge their reports into ``run.report``."""
        watcher = asyncio.create_task(_poll_progress(run, progress)) if progress else None
        relay = asyncio.create_task(self._pass_on_stop(run.stop)) if run.stop else None
        try:
            mine = run.deliver(make_transport(share_settings(self.settings, self.own)), None)
            theirs = [asyncio.wrap_future(future) for future in self._futures]
            outcomes = await asyncio.gather(mine, *theirs, return_exceptions=True)
        finally:
            for task in (watcher, relay):
                if task is not None:
                    task.cancel()
            await asyncio.to_thread(self._pool.shutdown, True)  # never block the event loop
        for outcome in outcomes[1:]:
            if isinstance(outcome, RunReport):
                _merge(run.report, outcome)
        if isinstance(outcomes[0], BaseException):
            raise outcomes[0]

    async def _pass_on_stop(self, stop: asyncio.Event) -> None:
        """The service was asked to stop: so are the helpers (as systemd would tell them)."""
        await stop.wait()
        for process in list(self._pool._processes.values()):  # the executor keeps no other list
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)


def _merge(report: RunReport, helper: RunReport) -> None:
    report.outcomes.update(helper.outcomes)
    report.bounced += helper.bounced
    report.failures += helper.failures
    report.errors += helper.errors
    report.recovered += helper.recovered


async def _poll_progress(run: CampaignRun, progress: Progress) -> None:
    """Several processes send: read how far they got from the ledger."""
    started, total = run.clock(), run.waiting()
    while True:
        await asyncio.sleep(PROGRESS_EVERY)
        progress(run.ledger.finished_since(started), total)


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before the line above ran
            os._exit(1)


def _helper(settings: Settings, name: str) -> RunReport:
    from campaigns.store.database import open_database

    engine = open_database(settings.database)
    try:
        run = CampaignRun(engine, settings, name, utc_now)
        run.load_secret()
        try:
            asyncio.run(_deliver_until_stopped(run, settings))
        except TransportUnavailable as error:
            run.report.unreachable = str(error)
        return run.report
    finally:
        engine.dispose()


async def _deliver_until_stopped(run: CampaignRun, settings: Settings) -> None:
    """A helper stops as the service does: SIGTERM or Ctrl-C ends its part cleanly.

    systemd signals every process of the service, and a terminal's Ctrl-C
    reaches the whole process group: each helper then claims nothing more,
    lets its messages in flight finish, and returns its report.
    """
    run.stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, run.stop.set)
    await run.deliver(make_transport(settings), None)
