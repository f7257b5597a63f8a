"""``rebook run``: the service that runs every campaign on its schedule, for years.

The scheduler proposes, the database decides. Every worker computes each
campaign's next time (``campaigns.timing``: once per local date and time,
whatever the clocks do) and keeps one APScheduler job per campaign for it;
when it fires, the worker whose ``runs`` row is inserted first runs the
campaign, and the others help deliver what it enqueued (``jobs.running``).
Between runs the service wakes when the earliest deferred or held message is
due, and at least every ``PICKUP_EVERY`` to help with work other workers
queued.

Every background loop (the queue, ``[sync]`` files, Cliniko, presence) goes
on through any trouble (``jobs.loops``): a database outage is logged once,
retried with a growing wait, and its end logged; ``/healthz`` and ``status``
say what is failing meanwhile.

Stopping is a designed state: SIGTERM or Ctrl-C sets ``stop``; running
campaigns claim nothing more, messages already leaving finish within
``STOP_TIMEOUT``, an import of ``[sync]`` files under way finishes and is
logged, and the process exits 0. A second Ctrl-C stops at once (the ledger
makes that safe). SIGHUP re-reads the config; a bad one is logged and the
old one kept; a campaign it disables or removes stops claiming at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from campaigns.config import Settings, load_settings
from campaigns.errors import UserError
from campaigns.store import presence as presence_of
from jobs.logs import LOGGER, event
from jobs.loops import Troubles, keep_going, sleep_until
from jobs.returning import bounces_round, require_mailbox_password
from jobs.running import Runs
from jobs.syncing import cliniko_round, files_round, require_cliniko_key
from jobs.systemd import notify
from jobs.web import site_of
from jobs.webserver import start_web

PICKUP_EVERY = timedelta(minutes=1)  # the longest the service sleeps between looks at the queue
DELIVERY = "delivery of "  # + a campaign: the name of its trouble, should its delivery fail

log = logging.getLogger(LOGGER)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Service:
    """One ``rebook run`` process."""

    def __init__(self, config_path: Path, clock: Clock = utc_now) -> None:
        self.config_path, self.clock = config_path, clock
        self.settings: Settings = load_settings(config_path)
        require_cliniko_key(self.settings)
        require_mailbox_password(self.settings)
        self.engine = None  # opened by serve(), which waits for a database that is down
        self.stop = asyncio.Event()
        self.wake = asyncio.Event()  # something was queued or deferred: look again now
        self.troubles_changed = asyncio.Event()  # status should hear of it now, not in 15 s
        self.troubles = Troubles(clock, self._troubles_changed)
        self.runs = Runs(None, lambda: self.settings, clock, self.troubles)  # engine: serve()
        self.loops: dict[str, asyncio.Task] = {}
        self.importing = False  # a round of the [sync] files is under way
        self.abandoned = False  # a second stop signal left that round behind
        self.scheduler = None
        self.web = None  # the endpoint's server, when this worker serves it

    # -- the process ---------------------------------------------------------------

    async def serve(self) -> int:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self._catch_signals(asyncio.get_running_loop())
        if not await self._reach_database():
            event(log, "stopped")
            return 0
        # Before anything starts: no marketing goes out while its unsubscribe links reach nothing
        self.web, serving = await start_web(
            self.engine, self.settings, self.clock, self.config_path, troubles=self.troubles.now
        )
        self.scheduler = AsyncIOScheduler(timezone=self.settings.clinic.timezone)
        self.scheduler.start()
        self._schedule_all(starting=True)
        self._start_loops()
        notify("READY=1")
        event(log, "service started", campaigns=len(self._scheduled()), worker=_worker())
        await self.stop.wait()
        notify("STOPPING=1")
        event(log, "stopping", running=len(self.runs.tasks))
        self.scheduler.pause()  # no new runs; the ones going finish their messages
        self.runs.stop_all()
        await self._stop_loops()
        await self.runs.finish()
        if self.web is not None:
            self.web.should_exit = True
            await serving
        self.scheduler.shutdown(wait=False)
        if not self.abandoned:  # else the import's write lock would keep us until it commits
            await asyncio.to_thread(self._withdraw)
            self.engine.dispose()
        event(log, "stopped")
        return 0

    async def _reach_database(self) -> bool:
        """Open the database, waiting while it is down; False when stopped meanwhile.

        A box that boots before its PostgreSQL, or a database restarting as
        the service starts, is an outage like any other: waited out, logged
        once. A wrong name or password is a mistake: exit 2 at once.
        """
        from campaigns.errors import DatabaseUnavailable
        from campaigns.store.database import open_database

        while not self.stop.is_set():
            try:
                self.engine = await asyncio.to_thread(open_database, self.settings.database)
            except DatabaseUnavailable as error:
                await sleep_until(self.troubles.failed("database", error), self.stop, None)
                continue
            self.troubles.recovered("database")
            self.runs.engine = self.engine
            return True
        return False

    def _catch_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_stop_signal)
        loop.add_signal_handler(signal.SIGHUP, self.reload)

    def _on_stop_signal(self) -> None:
        if self.stop.is_set():  # the second one: stop at once
            event(log, "stopping now", level=logging.WARNING)
            self.runs.cancel_all()
            if self.importing and "sync" in self.loops:  # all or nothing: most likely nothing
                event(log, "the import of [sync] files under way is abandoned: it is written "
                      "whole or not at all; the next sync reads the files again",
                      level=logging.WARNING)  # fmt: skip
                self.abandoned = True
                self.loops["sync"].cancel()
            return
        self.stop.set()

    def _withdraw(self) -> None:
        try:
            presence_of.withdraw(self.engine, presence_of.this_service())
        except Exception:  # unreachable: status will say "stopped without saying so"
            event(log, "could not record that the service stopped", level=logging.WARNING)

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
        moved = [
            key
            for key in ("listen", "serve")
            if not problems and getattr(settings.web, key) != getattr(self.settings.web, key)
        ]
        if moved:
            problems = [f"[web] {' and '.join(moved)} changed: restart rebook run to serve the "
                        "links elsewhere (the rest of [web] and the clinic's details apply on "
                        "reload)"]  # fmt: skip
        if problems:
            reason = "; ".join(str(problem) for problem in problems)
            event(log, "config not reloaded", level=logging.ERROR, reason=reason)
            return
        self.settings = settings
        if self.scheduler is None:  # still waiting for the database: nothing more runs yet
            event(log, "config reloaded", campaigns=len(self._scheduled()))
            return
        if self.web is not None:  # pages, limits and proxies from the next request on
            self.web.endpoint.configure(site_of(settings, self.web.endpoint.site.secret))
        self.runs.stop_unwanted(settings)
        self._start_loops()  # [sync] or [sync.cliniko] may be new
        self._schedule_all(starting=False)
        event(log, "config reloaded", campaigns=len(self._scheduled()))

    # -- the loops -------------------------------------------------------------------

    def _start_loops(self) -> None:
        """Start each loop not running: a loop whose section is removed ends on its own."""
        rounds = {
            "queue": (self._pickup_round, self.wake),
            "presence": (self._presence_round(), self.troubles_changed),
            "sync": (self._files_round(), None),
            "cliniko": (cliniko_round(self.engine, lambda: self.settings, self.clock, self.wake),
                        None),
            "bounces": (bounces_round(self.engine, lambda: self.settings, self.clock), None),
        }  # fmt: skip
        for name, (one_round, wake) in rounds.items():
            if name not in self.loops or self.loops[name].done():
                self.loops[name] = asyncio.create_task(
                    keep_going(name, one_round, self.troubles, self.stop, wake)
                )

    async def _stop_loops(self) -> None:
        """The loops see ``stop`` and end after their round; Cliniko's reading is cut short.

        An import of ``[sync]`` files under way runs in a thread that nothing
        can stop: the service waits for it, so it is logged (it commits
        whole, or not at all). A Cliniko pull cut short while reading writes
        nothing; one already writing finishes and is logged the same way.
        """
        cliniko = self.loops.get("cliniko")
        if cliniko is not None:
            cliniko.cancel()
        for name in ("queue", "presence"):
            if name in self.loops:
                self.loops[name].cancel()
        if self.importing:
            event(log, "stopping: waiting for the import of [sync] files under way to finish")
        await asyncio.gather(*self.loops.values(), return_exceptions=True)

    def _files_round(self):
        """The ``[sync]`` files' round, noting while it works (a stop then waits for it)."""
        one_round = files_round(self.engine, lambda: self.settings, self.clock, self.wake)

        async def noted() -> float | None:
            self.importing = True
            try:
                return await one_round()
            finally:
                self.importing = False

        return noted

    async def _pickup_round(self) -> float:
        """Retries when due, and work other workers queued: wake at the earliest due time.

        The earliest time is read *after* delivering, since delivering defers
        messages again (a retry answered 451 once more), and ``keep_going``
        clears ``wake`` before this round reads the queue, so a wake set while
        it delivers is never lost.
        """
        from campaigns.delivery.ledger import due_campaigns, next_due
        from campaigns.delivery.recovery import recover_orphans

        recovered = await asyncio.to_thread(recover_orphans, self.engine, self.clock())
        if recovered:
            event(log, "recovered messages a stopped worker left", messages=recovered)
        due = await asyncio.to_thread(self._read, due_campaigns)
        for name in self.troubles.now():  # sent meanwhile by a run: nothing is failing now
            if name.startswith(DELIVERY) and name.removeprefix(DELIVERY) not in due:
                self.troubles.recovered(name)
        for name in due:
            campaign = self.settings.campaigns.get(name)
            wanted = campaign is not None and campaign.enabled and not self.runs.active(name)
            if wanted and not self.stop.is_set():
                await self._deliver(name)
        upcoming = await asyncio.to_thread(self._read, next_due)
        wait = PICKUP_EVERY.total_seconds()
        if upcoming is not None:
            wait = min(wait, max(0.0, (upcoming - self.clock()).total_seconds()))
        return wait

    async def _deliver(self, name: str) -> None:
        """One campaign's waiting messages; its trouble is its own, the others go on."""
        trouble = f"{DELIVERY}{name}"
        try:
            await self.runs.track(name, lambda stop: self.runs.deliver(name, stop))
        except Exception as error:
            self.troubles.failed(trouble, error)
        else:
            self.troubles.recovered(trouble)

    def _troubles_changed(self, loop: str) -> None:
        if loop != "presence":  # its own trouble would only wake it to fail again
            self.troubles_changed.set()

    def _read(self, query):
        with self.engine.connect() as connection:
            return query(connection, self.clock())

    def _presence_round(self):
        """Tell ``rebook status`` this service is up, and what is failing, every ``SEEN_EVERY``."""
        name, started = presence_of.this_service(), self.clock()
        cleared = False

        async def one_round() -> float:
            nonlocal cleared
            if not cleared:
                await asyncio.to_thread(presence_of.clear_the_dead, self.engine)
                cleared = True
            troubles = self.troubles.now()
            troubles.pop("presence", None)  # written now: it works
            await asyncio.to_thread(
                presence_of.announce, self.engine, name, started, self.clock(), troubles
            )
            return presence_of.SEEN_EVERY.total_seconds()

        return one_round

    # -- scheduling ------------------------------------------------------------------

    def _scheduled(self) -> dict:
        return {
            name: campaign
            for name, campaign in self.settings.campaigns.items()
            if campaign.enabled and campaign.schedule is not None
        }

    def _schedule_all(self, *, starting: bool) -> None:
        """One job per scheduled campaign; at start, the runs missed while stopped too."""
        from campaigns.delivery.runs import last_runs

        self.scheduler.remove_all_jobs()
        last = {}
        if starting:  # a reload needs no database: it may come during an outage
            with self.engine.connect() as connection:
                last = last_runs(connection)
        now = self.clock()
        for name, campaign in self._scheduled().items():
            if starting:
                self._catch_up(name, campaign.schedule, last.get(name), now)
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
            self.runs.skip(name, result.skipped)

    def _next_time(self, schedule, now: datetime) -> datetime:
        from campaigns import timing

        return timing.next_run(schedule, self.settings.clinic.timezone, now)

    def _plan(self, name: str, scheduled_for: datetime, now: datetime | None = None) -> None:
        """One APScheduler job for this campaign's next time, carrying that time.

        ``misfire_grace_time=None``: a job late for any reason (a busy loop,
        a suspended machine) still fires; whether it is too late is rebook's
        rule (``[service] catch_up``), decided by the run with the runs
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
        if self.runs.active(name):  # runs longer than its schedule: one at a time per worker
            event(log, "run skipped: the previous run is still going", level=logging.WARNING,
                  campaign=name, scheduled_for=self._local(scheduled_for))  # fmt: skip
            return
        await self.runs.track(name, lambda stop: self._scheduled_run(name, scheduled_for, stop))

    async def _scheduled_run(self, name: str, scheduled_for: datetime, stop) -> None:
        await self.runs.scheduled(name, scheduled_for, stop)
        self.wake.set()  # deferred messages may now be due sooner than planned


def _worker() -> str:
    from campaigns.delivery.runs import this_worker

    return this_worker()
