"""The campaign runs and deliveries one ``rebook run`` process is doing, through any trouble.

A scheduled run claims its ``runs`` row, runs, and records how it went; a
delivery sends what is queued or due for a campaign (retries, held mail,
another worker's run). Each has a stop of its own: the service's stop sets
them all, and a config reload that disables or removes a campaign sets its
own, so that run claims nothing more (what it had not sent stays queued).

A database outage does not lose a scheduled run: its claim is tried again,
with a growing wait, until it works or the run is older than ``[service]
catch_up``; a run that fails midway is run again the same way (its enqueue
adds nothing twice, and the ledger sends nobody anything twice). The trouble
is logged once, and ``Troubles`` tells ``/healthz`` and ``status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from campaigns.config import Settings
from campaigns.durations import format_duration
from campaigns.errors import UserError
from jobs.logs import LOGGER, event
from jobs.loops import Troubles, describe, foreseen, sleep_until

STOP_TIMEOUT = 30.0  # seconds in-flight SMTP transactions get to finish after SIGTERM
STOPPED_SHORT = (
    "stopped before it finished: the service was stopped at once; "
    "what it had not sent goes when rebook run starts again"
)
DISABLED = "stopped early: the campaign was disabled or removed; what it had not sent stays queued"
HELP_WAIT = 30.0  # seconds a worker that lost a run looks for what the winner enqueues
HELP_POLL = 0.5  # seconds between those looks
ANOTHER = -1  # a claim another worker won

log = logging.getLogger(LOGGER)


class Runs:
    """What this process is delivering now, one task per campaign at most."""

    def __init__(self, engine, settings: Callable[[], Settings],
                 clock: Callable[[], datetime], troubles: Troubles) -> None:  # fmt: skip
        self.engine, self.settings, self.clock, self.troubles = engine, settings, clock, troubles
        self.stopping = False
        self.stops: dict[str, asyncio.Event] = {}  # campaign → the stop of its run here
        self.tasks: set[asyncio.Task] = set()

    def active(self, name: str) -> bool:
        return name in self.stops

    # -- starting and stopping ------------------------------------------------------

    async def track(self, name: str, work: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        """Run ``work(stop)`` for campaign ``name`` as a task the shutdown waits for.

        Shielded: when the scheduler's job that awaits it is cancelled (as its
        executor does on shutdown), the run itself goes on to a clean stop.
        """
        stop = asyncio.Event()
        if self.stopping:
            stop.set()
        task = asyncio.create_task(work(stop))
        self.tasks.add(task)
        self.stops[name] = stop

        def forget(_: asyncio.Task) -> None:
            self.tasks.discard(task)
            if self.stops.get(name) is stop:
                del self.stops[name]

        task.add_done_callback(forget)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not self.stopping:
                raise
            # Stopping, and the run was cut short (a second signal, or STOP_TIMEOUT): it has
            # said so itself; the scheduler's job ends quietly rather than with a traceback.

    def stop_all(self) -> None:
        self.stopping = True
        for stop in self.stops.values():
            stop.set()

    def stop_unwanted(self, settings: Settings) -> None:
        """A reload disabled or removed campaigns: their runs here claim nothing more."""
        for name, stop in self.stops.items():
            campaign = settings.campaigns.get(name)
            if (campaign is None or not campaign.enabled) and not stop.is_set():
                event(log, "stopping a run: its campaign was disabled or removed",
                      level=logging.WARNING, campaign=name)  # fmt: skip
                stop.set()

    def cancel_all(self) -> None:
        for task in self.tasks:
            task.cancel()

    async def finish(self) -> None:
        """Wait for the runs going to stop cleanly, at most ``STOP_TIMEOUT``."""
        if not self.tasks:
            return
        _, pending = await asyncio.wait(self.tasks, timeout=STOP_TIMEOUT)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
            event(log, "stopped runs that did not finish in time", level=logging.WARNING,
                  runs=len(pending), timeout_s=STOP_TIMEOUT)  # fmt: skip

    # -- a scheduled run ------------------------------------------------------------

    async def scheduled(self, name: str, scheduled_for: datetime, stop: asyncio.Event) -> None:
        """The run of ``name`` due at ``scheduled_for``, if this worker wins it."""
        run_id = await self._claim(name, scheduled_for, stop)
        if run_id == ANOTHER:  # another worker runs it: help deliver once it has enqueued
            if await self._queued_by_another(name, stop):
                try:
                    await self.deliver(name, stop)
                except Exception as error:  # the queue's loop tries again, and says when it works
                    self.troubles.failed(f"delivery of {name}", error)  # see Service
        elif run_id is not None:
            event(log, "run started", campaign=name, scheduled_for=self._local(scheduled_for))
            await self._run(name, scheduled_for, run_id, stop)

    async def _claim(self, name: str, scheduled_for: datetime, stop: asyncio.Event) -> int | None:
        """The run's id, ``ANOTHER``, or None when it is too late (recorded as skipped)."""
        from campaigns.delivery.runs import claim_run

        trouble = f"run of {name}"
        while not stop.is_set():
            now = self.clock()
            if now - scheduled_for > self.settings().service.catch_up:
                await asyncio.to_thread(self.skip, name, scheduled_for)
                return None
            try:
                run_id = await asyncio.to_thread(claim_run, self.engine, name, scheduled_for, now)
            except Exception as error:
                await sleep_until(self.troubles.failed(trouble, error), stop, None)
                continue
            self.troubles.recovered(trouble)
            return ANOTHER if run_id is None else run_id
        return None

    async def _run(self, name: str, scheduled_for: datetime, run_id: int,
                   stop: asyncio.Event) -> None:  # fmt: skip
        from campaigns.delivery.run import run_campaign
        from campaigns.delivery.runs import finish_run

        trouble = f"run of {name}"
        while True:
            try:
                report = await run_campaign(
                    self.engine, self.settings(), name, stop=stop, clock=self.clock
                )
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):  # else the next start closes it
                    finish_run(self.engine, run_id, self.clock(), "failed", STOPPED_SHORT)
                event(log, "run stopped before it finished", level=logging.WARNING, campaign=name)
                raise
            except Exception as error:
                late = self.clock() - scheduled_for > self.settings().service.catch_up
                if isinstance(error, UserError) or late or stop.is_set():
                    await self._fail(name, run_id, error)
                    return
                await sleep_until(self.troubles.failed(trouble, error), stop, None)
                continue
            self.troubles.recovered(trouble)
            break
        counts = counts_of(report)
        detail = report.unreachable or (DISABLED if stop.is_set() and not self.stopping else "")
        await self._close(run_id, "done", detail, **counts)
        event(log, "run finished", campaign=name, **counts,
              **({"unreachable": report.unreachable} if report.unreachable else {}))  # fmt: skip

    async def _fail(self, name: str, run_id: int, error: Exception) -> None:
        self.troubles.recovered(f"run of {name}")  # given up: nothing is failing any more
        log.error("run failed", exc_info=None if foreseen(error) else error,
                  extra={"fields": {"campaign": name, "reason": describe(error)}})  # fmt: skip
        await self._close(run_id, "failed", describe(error))

    async def _close(self, run_id: int, outcome: str, detail: str, **counts: int) -> None:
        """Record how the run ended; through an outage, until it is written or we stop.

        Given up when the service stops: the next start closes it as failed
        (``recover_orphans``: the process that ran it is gone).
        """
        from campaigns.delivery.runs import finish_run

        trouble = "recording a run"
        while True:
            try:
                await asyncio.to_thread(
                    finish_run, self.engine, run_id, self.clock(), outcome, detail, **counts
                )
            except Exception as error:
                wait = self.troubles.failed(trouble, error)
                if self.stopping:
                    return
                await asyncio.sleep(wait)
                continue
            self.troubles.recovered(trouble)
            return

    def skip(self, name: str, scheduled_for: datetime) -> None:
        """Record that a run too old to catch up will not happen, and log it."""
        from campaigns.delivery.runs import skip_run

        catch_up = format_duration(self.settings().service.catch_up)
        reason = f"missed while rebook was stopped, more than catch_up = {catch_up} ago"
        try:
            skipped = skip_run(self.engine, name, scheduled_for, self.clock(), reason)
        except Exception:  # the log says it; the runs table cannot now
            skipped = True
        if skipped:
            event(log, "missed run skipped", level=logging.WARNING, campaign=name,
                  scheduled_for=self._local(scheduled_for),
                  reason="older than [service] catch_up")  # fmt: skip

    async def _queued_by_another(self, name: str, stop: asyncio.Event) -> bool:
        """Wait (bounded) until the winner's enqueue is committed: then there is work to share."""
        from campaigns.delivery.ledger import due_campaigns

        def queued() -> bool:
            with self.engine.connect() as connection:
                return name in due_campaigns(connection, self.clock())

        deadline = asyncio.get_running_loop().time() + HELP_WAIT
        while not stop.is_set() and asyncio.get_running_loop().time() < deadline:
            try:
                if await asyncio.to_thread(queued):
                    return True
            except Exception:  # the queue's own loop reports an outage; it delivers later
                return False
            await asyncio.sleep(HELP_POLL)
        return False

    # -- delivering what waits ----------------------------------------------------------

    async def deliver(self, name: str, stop: asyncio.Event) -> None:
        """Send what is queued or due for ``name``; raise what keeps it from being sent.

        A relay that cannot be reached raises too: the queue's loop then logs
        it once and tries again, rather than finding the same messages due
        every minute in silence.
        """
        from campaigns.delivery.run import run_campaign
        from campaigns.delivery.transports import TransportUnavailable

        report = await run_campaign(
            self.engine, self.settings(), name, enqueue=False, stop=stop, clock=self.clock
        )
        if report.unreachable:
            raise TransportUnavailable(report.unreachable)
        counts = counts_of(report)
        if any(counts.values()):
            event(log, "delivered", campaign=name, **counts)

    def _local(self, moment: datetime) -> str:
        """A time as the clinic reads it, for the log."""
        zone = self.settings().clinic.timezone
        return moment.astimezone(zone).isoformat(timespec="seconds")


def counts_of(report) -> dict[str, int]:
    outcomes = report.outcomes
    return {"members": report.members, "enqueued": report.enqueued, "sent": outcomes["sent"],
            "deferred": outcomes["deferred"], "failed": outcomes["failed"],
            "bounced": report.bounced, "skipped": outcomes["skipped"], "error": outcomes["error"],
            "held": report.held, "held_out": report.held_out}  # fmt: skip
