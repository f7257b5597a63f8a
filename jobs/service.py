"""``rebook run``: the service that runs every campaign on its schedule, for years.

The scheduler proposes, the database decides. Every worker computes each
campaign's next time (``campaigns.timing``: once per local date and time,
whatever the clocks do) and keeps one APScheduler job per campaign for it;
when it fires, the worker whose ``runs`` row is inserted first runs the
campaign, and the others help deliver what it enqueued. Between runs the
service wakes when the earliest deferred message is due, and at least every
``PICKUP_EVERY`` to help with work other workers queued.

Stopping is a designed state: SIGTERM or Ctrl-C sets ``stop``; running
campaigns claim nothing more, messages already leaving finish within
``STOP_TIMEOUT``, and the process exits 0. A second Ctrl-C stops at once
(the ledger makes that safe). SIGHUP re-reads the config; a bad one is
logged and the old one kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from campaigns.config import Settings, load_settings
from campaigns.durations import format_duration
from campaigns.errors import UserError
from campaigns.store import presence as presence_of
from jobs.logs import LOGGER, event
from jobs.syncing import keep_cliniko_in_sync, keep_in_sync, require_cliniko_key
from jobs.systemd import notify
from jobs.webserver import start_web

STOP_TIMEOUT = 30.0  # seconds in-flight SMTP transactions get to finish after SIGTERM
PICKUP_EVERY = timedelta(minutes=1)  # the longest the service sleeps between looks at the queue
STOPPED_SHORT = (
    "stopped before it finished: the service was stopped at once; "
    "what it had not sent goes when rebook run starts again"
)
HELP_WAIT = 30.0  # seconds a worker that lost a run looks for what the winner enqueues
HELP_POLL = 0.5  # seconds between those looks

log = logging.getLogger(LOGGER)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Service:
    """One ``rebook run`` process."""

    def __init__(self, config_path: Path, clock: Clock = utc_now) -> None:
        from campaigns.store.database import open_database

        self.config_path, self.clock = config_path, clock
        self.settings: Settings = load_settings(config_path)
        require_cliniko_key(self.settings)
        self.engine = open_database(self.settings.database)
        self.stop = asyncio.Event()
        self.wake = asyncio.Event()  # something was queued or deferred: look again now
        self.tasks: set[asyncio.Task] = set()
        self.active: set[str] = set()  # campaigns this process is delivering now
        self.syncing: asyncio.Task | None = None
        self.cliniko: asyncio.Task | None = None
        self.scheduler = None

    # -- the process ---------------------------------------------------------------

    async def serve(self) -> int:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self._catch_signals(asyncio.get_running_loop())
        # Before anything starts: no marketing goes out while its unsubscribe links reach nothing
        web, serving = await start_web(self.engine, self.settings, self.clock, self.config_path)
        self.scheduler = AsyncIOScheduler(timezone=self.settings.clinic.timezone)
        self.scheduler.start()
        self._schedule_all(starting=True)
        pickup = asyncio.create_task(self._pickup())
        presence = asyncio.create_task(self._stay_present())
        self.syncing = asyncio.create_task(self._keep_in_sync())
        self.cliniko = asyncio.create_task(self._keep_cliniko_in_sync())
        notify("READY=1")
        event(log, "service started", campaigns=len(self._scheduled()), worker=_worker())
        await self.stop.wait()
        notify("STOPPING=1")
        event(log, "stopping", running=len(self.tasks))
        self.scheduler.pause()  # no new runs; the ones going finish their messages
        pickup.cancel()
        presence.cancel()
        self.syncing.cancel()
        self.cliniko.cancel()  # a pull cut short writes nothing
        await self._finish_running()
        if web is not None:
            web.should_exit = True
            await serving
        self.scheduler.shutdown(wait=False)
        await asyncio.to_thread(presence_of.withdraw, self.engine, presence_of.this_service())
        self.engine.dispose()
        event(log, "stopped")
        return 0

    def _catch_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_stop_signal)
        loop.add_signal_handler(signal.SIGHUP, self.reload)

    def _on_stop_signal(self) -> None:
        if self.stop.is_set():  # the second one: stop at once
            event(log, "stopping now", level=logging.WARNING)
            for task in self.tasks:
                task.cancel()
            return
        self.stop.set()

    async def _finish_running(self) -> None:
        if not self.tasks:
            return
        _, pending = await asyncio.wait(self.tasks, timeout=STOP_TIMEOUT)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
            event(log, "stopped runs that did not finish in time", level=logging.WARNING,
                  runs=len(pending), timeout_s=STOP_TIMEOUT)  # fmt: skip

    def reload(self) -> None:
        """SIGHUP: the new config if it is valid, else the old one and the reason in the log.

        Valid as ``rebook check`` means it: the file, and every template rendered
        for a sample client (a broken template would otherwise fail every run).
        """
        from campaigns.preview import check_templates

        try:
            settings = load_settings(self.config_path)
            problems = check_templates(settings, self.clock())
        except UserError as error:
            problems = [error]
        if not problems and settings.database.url != self.settings.database.url:
            problems = ["database.url changed: restart rebook run to use another database"]
        if problems:
            reason = "; ".join(str(problem) for problem in problems)
            event(log, "config not reloaded", level=logging.ERROR, reason=reason)
            return
        self.settings = settings
        if self.syncing is None or self.syncing.done():  # [sync] may be new
            self.syncing = asyncio.create_task(self._keep_in_sync())
        if self.cliniko is None or self.cliniko.done():
            self.cliniko = asyncio.create_task(self._keep_cliniko_in_sync())
        self._schedule_all(starting=False)
        event(log, "config reloaded", campaigns=len(self._scheduled()))

    # -- scheduling ------------------------------------------------------------------

    def _scheduled(self) -> dict:
        return {
            name: campaign
            for name, campaign in self.settings.campaigns.items()
            if campaign.enabled and campaign.schedule is not None
        }

    def _schedule_all(self, *, starting: bool) -> None:
        from campaigns.delivery.runs import last_runs

        self.scheduler.remove_all_jobs()
        with self.engine.connect() as connection:
            last = last_runs(connection)
        now = self.clock()
        for name, campaign in self._scheduled().items():
            previous = last.get(name)
            if starting:
                self._catch_up(name, campaign.schedule, previous, now)
            self._plan(name, self._next_time(campaign.schedule, now))

    def _catch_up(self, name: str, schedule, previous, now: datetime) -> None:
        from campaigns import timing

        if schedule.every is not None:
            last = previous.scheduled_for if previous else None
            if timing.interval_due_at_start(schedule.every, last, now):
                self._plan(name, timing.interval_slot(schedule.every, now), now=now)
            return
        result = timing.catch_up(
            schedule.cron, self.settings.clinic.timezone,
            previous.scheduled_for if previous else None, now, self.settings.service.catch_up,
        )  # fmt: skip
        if result.run is not None:
            event(log, "catching up a missed run", campaign=name,
                  scheduled_for=self._local(result.run), missed=result.missed)  # fmt: skip
            self._plan(name, result.run, now=now)
        elif result.skipped is not None:
            self._skip(name, result.skipped, now)

    def _skip(self, name: str, scheduled_for: datetime, now: datetime) -> None:
        from campaigns.delivery.runs import skip_run

        catch_up = format_duration(self.settings.service.catch_up)
        reason = f"missed while rebook was stopped, more than catch_up = {catch_up} ago"
        if skip_run(self.engine, name, scheduled_for, now, reason):
            event(log, "missed run skipped", level=logging.WARNING, campaign=name,
                  scheduled_for=self._local(scheduled_for),
                  reason="older than [service] catch_up")  # fmt: skip

    def _next_time(self, schedule, now: datetime) -> datetime:
        from campaigns import timing

        return timing.next_run(schedule, self.settings.clinic.timezone, now)

    def _plan(self, name: str, scheduled_for: datetime, now: datetime | None = None) -> None:
        """One APScheduler job for this campaign's next time, carrying that time.

        ``misfire_grace_time=None``: a job late for any reason (a busy loop,
        a suspended machine) still fires; whether it is too late is rebook's
        rule (``[service] catch_up``), decided in ``_fire`` with the runs
        table, not the scheduler's silent default of one second.
        ``coalesce=True``: should the scheduler ever find several due times
        of one job, it runs it once.
        """
        from apscheduler.triggers.date import DateTrigger

        event(log, "next run", campaign=name, at=self._local(now or scheduled_for))
        self.scheduler.add_job(
            self._fire, DateTrigger(run_date=now or scheduled_for), args=[name, scheduled_for],
            id=f"{name}@{scheduled_for.isoformat()}", replace_existing=True,
            misfire_grace_time=None, coalesce=True, max_instances=1,
        )  # fmt: skip

    def _local(self, moment: datetime) -> str:
        """A time as the clinic reads it, for the log."""
        return moment.astimezone(self.settings.clinic.timezone).isoformat(timespec="seconds")

    async def _fire(self, name: str, scheduled_for: datetime) -> None:
        campaign = self._scheduled().get(name)
        if campaign is None or self.stop.is_set():
            return
        if scheduled_for > self.clock():  # fired before its time: keep it planned
            self._plan(name, scheduled_for)
            return
        self._plan(name, self._next_time(campaign.schedule, scheduled_for))
        if name in self.active:  # runs longer than its schedule: one at a time per worker
            event(log, "run skipped: the previous run is still going", level=logging.WARNING,
                  campaign=name, scheduled_for=self._local(scheduled_for))  # fmt: skip
            return
        await self._track(self._run(name, scheduled_for), name)

    async def _track(self, work, name: str) -> None:
        """Run ``work`` for campaign ``name`` as a task the shutdown waits for.

        Shielded: when the scheduler's job that awaits it is cancelled (as its
        executor does on shutdown), the run itself goes on to a clean stop.
        """
        task = asyncio.create_task(work)
        self.tasks.add(task)
        self.active.add(name)

        def forget(_: asyncio.Task) -> None:
            self.tasks.discard(task)
            self.active.discard(name)

        task.add_done_callback(forget)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not self.stop.is_set():
                raise
            # Stopping, and the run was cut short (a second signal, or STOP_TIMEOUT): it has
            # said so itself; the scheduler's job ends quietly rather than with a traceback.

    # -- running ------------------------------------------------------------------------

    async def _run(self, name: str, scheduled_for: datetime) -> None:
        from campaigns.delivery.run import run_campaign
        from campaigns.delivery.runs import claim_run, finish_run

        now = self.clock()
        if now - scheduled_for > self.settings.service.catch_up:
            self._skip(name, scheduled_for, now)
            return
        run_id = claim_run(self.engine, name, scheduled_for, now)
        if run_id is None:  # another worker runs it: help deliver once it has enqueued
            if await self._queued_by_another(name):
                await self._deliver(name)
            return
        event(log, "run started", campaign=name, scheduled_for=self._local(scheduled_for))
        try:
            report = await run_campaign(self.engine, self.settings, name, stop=self.stop)
        except asyncio.CancelledError:
            finish_run(self.engine, run_id, self.clock(), "failed", STOPPED_SHORT)
            event(log, "run stopped before it finished", level=logging.WARNING, campaign=name)
            raise
        except Exception as error:
            log.exception("run failed", extra={"fields": {"campaign": name}})
            reason = f"{type(error).__name__}: {error}"
            finish_run(self.engine, run_id, self.clock(), "failed", reason)
            return
        counts = _counts(report)
        finish_run(self.engine, run_id, self.clock(), "done", report.unreachable or "", **counts)
        event(log, "run finished", campaign=name, **counts,
              **({"unreachable": report.unreachable} if report.unreachable else {}))  # fmt: skip
        self.wake.set()  # deferred messages may now be due sooner than planned

    async def _queued_by_another(self, name: str) -> bool:
        """Wait (bounded) until the winner's enqueue is committed: then there is work to share."""
        from campaigns.delivery.ledger import due_campaigns

        deadline = asyncio.get_running_loop().time() + HELP_WAIT
        while not self.stop.is_set() and asyncio.get_running_loop().time() < deadline:
            with self.engine.connect() as connection:
                if name in due_campaigns(connection, self.clock()):
                    return True
            await asyncio.sleep(HELP_POLL)
        return False

    async def _deliver(self, name: str) -> None:
        """Send what is queued or due for ``name`` (retries, another worker's run)."""
        from campaigns.delivery.run import run_campaign

        try:
            report = await run_campaign(
                self.engine, self.settings, name, enqueue=False, stop=self.stop
            )
        except Exception:
            log.exception("delivery failed", extra={"fields": {"campaign": name}})
            return
        counts = _counts(report)
        if any(counts.values()):
            event(log, "delivered", campaign=name, **counts)

    async def _pickup(self) -> None:
        """Retries when due, and work other workers queued: wake at the earliest due time."""
        from campaigns.delivery.ledger import due_campaigns, next_due
        from campaigns.delivery.recovery import recover_orphans

        while not self.stop.is_set():
            now = self.clock()
            recovered = await asyncio.to_thread(recover_orphans, self.engine, now)
            if recovered:
                event(log, "recovered messages a stopped worker left", messages=recovered)
            with self.engine.connect() as connection:
                due = due_campaigns(connection, now)
                upcoming = next_due(connection, now)
            for name in due:
                campaign = self.settings.campaigns.get(name)
                wanted = campaign is not None and campaign.enabled and name not in self.active
                if wanted and not self.stop.is_set():
                    await self._track(self._deliver(name), name)
            wait = PICKUP_EVERY.total_seconds()
            if upcoming is not None:
                wait = min(wait, max(0.0, (upcoming - self.clock()).total_seconds()))
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=wait)

    async def _stay_present(self) -> None:
        """Tell ``rebook status`` this service is up, every ``SEEN_EVERY``."""
        name, started = presence_of.this_service(), self.clock()
        await asyncio.to_thread(presence_of.clear_the_dead, self.engine)
        while True:
            try:
                await asyncio.to_thread(
                    presence_of.announce, self.engine, name, started, self.clock()
                )
            except Exception:  # a busy or unreachable database: say so, try again next time
                log.warning("could not record that the service is up", exc_info=True)
            await asyncio.sleep(presence_of.SEEN_EVERY.total_seconds())

    def _keep_in_sync(self):
        return keep_in_sync(self.engine, lambda: self.settings, self.clock, self.stop, self.wake)

    def _keep_cliniko_in_sync(self):
        return keep_cliniko_in_sync(
            self.engine, lambda: self.settings, self.clock, self.stop, self.wake
        )


def _counts(report) -> dict[str, int]:
    outcomes = report.outcomes
    return {"members": report.members, "enqueued": report.enqueued, "sent": outcomes["sent"],
            "deferred": outcomes["deferred"], "failed": outcomes["failed"],
            "bounced": report.bounced, "skipped": outcomes["skipped"], "error": outcomes["error"],
            "held": report.held, "held_out": report.held_out}  # fmt: skip


def _worker() -> str:
    from campaigns.delivery.runs import this_worker

    return this_worker()
