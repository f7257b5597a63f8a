"""One process's part of a campaign run: enqueue, then claim, render, send and record.

A single message's trouble never raises: it ends up in the ledger and in the
report. Inside a run, one producer claims rows in batches and has them rendered
(in a helper process when the run is big, see ``campaigns.content.composing``),
and one consumer per transport slot (an SMTP connection) sends them, each
message's start committed before it leaves (``campaigns.delivery.committer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine

from campaigns.clients.lookup import appointments_by_id, visit_views_for
from campaigns.config import Settings
from campaigns.content.calendar import CalendarMaker
from campaigns.content.composing import Composer, Job
from campaigns.content.context import ClientView, client_view
from campaigns.content.message import dkim_signer, sender_from
from campaigns.content.render import CampaignRenderer
from campaigns.content.tokens import make_token, tagged, unsubscribe_url, verp_token
from campaigns.delivery.audience import VISIT_KEY, Audience
from campaigns.delivery.committer import Committer
from campaigns.delivery.ledger import HEARTBEAT_EVERY, Claimed, Ledger, Result
from campaigns.delivery.quiet import clinic_quiet_until, holds_for
from campaigns.delivery.renames import hand_over
from campaigns.delivery.transports import Outcome, Outgoing, Transport
from campaigns.store.database import REFRESH_STATISTICS_FROM, refresh_statistics
from campaigns.store.secrets import web_secret
from campaigns.store.tables import clients

CLAIM_BATCH = 200  # rows claimed and rendered at a time
# Rendered between turns of the event loop: 25 messages are ~7 ms of CPU, so the
# unsubscribe endpoint served by the same loop never waits for a whole batch (~60 ms).
COMPOSE_SLICE = 25
RATE_SHARE_EVERY = 0.25  # seconds between counts of the workers sharing rate_limit
Clock = Callable[[], datetime]
Progress = Callable[[int, int], None]  # (messages done, messages to do)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class RunReport:
    """What a run did (or, dry, would do)."""

    campaign: str
    dry_run: bool = False
    members: int = 0
    left_out: dict[str, int] = field(default_factory=dict)
    enqueued: int = 0
    recovered: int = 0
    outcomes: Counter = field(default_factory=Counter)  # sent, deferred, failed, skipped, error
    bounced: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (address, reply)
    errors: list[tuple[str, str]] = field(default_factory=list)  # rebook's own: retried next run
    would_send: list[tuple[str, str]] = field(default_factory=list)  # dry run: (address, key)
    unreachable: str | None = None
    quiet_hours: str | None = None  # set when marketing ran inside [policy] quiet_hours
    held: int = 0  # marketing waiting for quiet hours to end
    held_until: datetime | None = None  # the earliest end among them
    held_out: int = 0  # the control group of a campaign with holdout: recorded, not sent


def quiet_hours_now(settings: Settings, campaign, now: datetime) -> str | None:
    """The quiet hours, if ``now`` is inside them and the campaign is marketing."""
    held = clinic_quiet_until(settings, campaign, now) is not None
    return str(settings.policy.quiet_hours) if held else None


def retry_at(settings: Settings, attempts: int, now: datetime) -> datetime | None:
    """When to try again after ``attempts`` tries: ``retry_backoff`` doubling, ±20% jitter."""
    if attempts >= settings.smtp.max_attempts:
        return None
    delay = settings.smtp.retry_backoff * (2 ** (attempts - 1))
    return now + delay * random.uniform(0.8, 1.2)


class CampaignRun:
    """One run of one campaign by this process."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        name: str,
        clock: Clock,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.engine, self.settings, self.name, self.clock = engine, settings, name, clock
        self.stop = stop
        self.campaign = settings.campaigns[name]
        self.segment = settings.segments[self.campaign.segment]
        self.renderer = CampaignRenderer(
            settings, name
        )  # template errors before anything is queued
        self.series = [article.name for article in self.renderer.articles]
        cap = settings.policy.max_marketing
        self.audience = Audience(name, self.campaign, self.segment, clock(), self.series, cap)
        self.sender = sender_from(settings.mail, settings.bounces)
        self.ledger = Ledger(engine, name, self.sender.domain)
        self.report = RunReport(name)
        self._secret: bytes | None = None  # signs unsubscribe links
        self._verp: bytes | None = None  # signs VERP envelope senders

    def explain(self, dry_run: bool) -> RunReport:
        """Count the segment and whom each rule leaves out; dry, also list who would get what."""
        report = self.report
        report.dry_run = dry_run
        with self.engine.connect() as connection:
            report.members, report.left_out = self.audience.explain(connection)
            if dry_run:
                status = self.audience.status_column().label("status")
                selected = connection.execute(self.audience.select(status)).all()
                report.would_send = [(r.email, r.key) for r in selected if r.status == "queued"]
                report.held_out = len(selected) - len(report.would_send)
        return report

    def enqueue(self, *, quiet_hours: bool = True) -> None:
        """Queue a ledger row for everyone in the audience who has none yet.

        Marketing inside quiet hours is queued held until the window ends
        on each client's clock (``quiet_hours=False``: sent now).
        """
        self.load_secret()
        holds = None
        with self.ledger.writing() as connection, connection.begin():
            if quiet_hours and self.campaign.marketing:
                window, zone = self.settings.policy.quiet_hours, self.settings.clinic.timezone
                holds = holds_for(connection, window, zone, self.clock())
            before = self.audience.held_out(connection) if self.campaign.holdout else 0
            self.report.enqueued = self.audience.enqueue(connection, holds)
            if self.campaign.holdout:  # counted in the enqueue's own transaction
                self.report.held_out = self.audience.held_out(connection) - before
            if not quiet_hours:  # the owner means it: what an earlier run held goes now too
                self.ledger.release_held(connection, self.clock())
        if self.report.enqueued >= REFRESH_STATISTICS_FROM:
            refresh_statistics(self.engine, "sends")
        if holds is not None and holds.any:
            self.report.held, self.report.held_until = self.ledger.held(self.clock())

    def waiting(self) -> int:
        return self.ledger.waiting(self.clock())

    def load_secret(self) -> None:
        """The web secret: it signs unsubscribe links (marketing) and VERP senders ([bounces])."""
        bounces = self.settings.bounces
        if self.campaign.marketing or (bounces is not None and bounces.verp):
            with self.engine.connect() as connection:
                secret = web_secret(connection, self.settings.web.secret)
            self._secret = secret if self.campaign.marketing else None
            self._verp = secret if bounces is not None and bounces.verp else None

    def envelope_sender(self, row_id: int) -> str:
        """Where a bounce of this message goes: ``bounces+TOKEN@…`` naming its ledger row with
        ``[bounces]`` (a fixed ``[bounces] address`` with ``verp = false``), else the From."""
        bounces = self.settings.bounces
        if bounces is None:
            return self.sender.address
        if self._verp is None:
            return bounces.mailbox_address
        return tagged(bounces.mailbox_address, verp_token(self._verp, row_id))

    # -- delivering -------------------------------------------------------------

    async def deliver(self, transport: Transport, progress: Progress | None) -> None:
        await transport.open()  # TransportUnavailable before anything is claimed
        signer = dkim_signer(self.settings.dkim)  # the key parsed once per run and process
        calendar = (
            CalendarMaker(self.settings.clinic, self.sender, self.settings.services)
            if self.audience.per_visit
            else None
        )
        composer = Composer(self.renderer, self.sender, signer, calendar)
        await self._deliver(transport, composer, progress)

    async def _deliver(self, transport: Transport, composer, progress: Progress | None) -> None:
        hand_over(self.engine, self.name, self.campaign.previous_names, self.clock())
        self.ledger.register(self.clock())
        self._share_rate(transport)
        committer = Committer(self.ledger, self.clock)
        held: dict[int, Claimed] = {}  # claimed, not yet started: released if the run stops
        try:
            self.report.recovered = self.ledger.recover(self.clock())
            total = self.ledger.waiting(self.clock())
            await self._pump(transport, composer, committer, held, total, progress)
        finally:
            committer.flush()
            self.ledger.release(held, self.clock())
            self.ledger.retire()
            await transport.close()

    async def _pump(self, transport, composer, committer, held, total, progress) -> None:
        queue: asyncio.Queue[tuple[Claimed, Outgoing] | None] = asyncio.Queue(maxsize=CLAIM_BATCH)
        done = Counter()

        async def consume(slot: int) -> None:
            while not self._stopping() and (item := await queue.get()) is not None:
                claimed, outgoing = item
                may_go = await committer.start(claimed.id)
                held.pop(claimed.id, None)
                if may_go:
                    outcome = await self._send(transport, outgoing, slot)
                    committer.finish(self._result(claimed, outcome))
                else:  # unsubscribed, bounced or withdrew consent since it was queued
                    self.report.outcomes["skipped"] += 1
                done[outcome.status if may_go else "skipped"] += 1
                if progress:
                    progress(sum(done.values()), total)

        consumers = [asyncio.create_task(consume(slot)) for slot in range(transport.slots)]
        producer = asyncio.create_task(
            self._produce(queue, composer, committer, held, transport.slots)
        )
        helpers = [
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self._rate(transport)),
        ]
        if self.stop is not None:
            helpers.append(asyncio.create_task(self._stop_when_asked(producer, queue)))
        try:
            try:
                await producer
            except asyncio.CancelledError:
                if not self._stopping():
                    raise
            await asyncio.gather(*consumers)
        finally:
            for task in (producer, *consumers, *helpers):
                task.cancel()
            await asyncio.gather(producer, *consumers, *helpers, return_exceptions=True)

    async def _stop_when_asked(self, producer: asyncio.Task, queue: asyncio.Queue) -> None:
        """Stop claiming; drop what waits in the queue (released later); let sends finish."""
        await self.stop.wait()
        producer.cancel()
        while not queue.empty():
            queue.get_nowait()
        for _ in range(queue.maxsize):
            queue.put_nowait(None)

    @staticmethod
    async def _send(transport: Transport, outgoing: Outgoing, slot: int) -> Outcome:
        """The transport's outcome; a transport that raises fails this message alone."""
        try:
            return await transport.send(outgoing, slot)
        except Exception as error:
            return Outcome("error", f"not sent: {type(error).__name__}: {error}")

    async def _produce(self, queue, composer, committer, held, slots: int) -> None:
        while not self._stopping() and (batch := self.ledger.claim(CLAIM_BATCH, self.clock())):
            held.update((claimed.id, claimed) for claimed in batch)
            jobs, made = self._jobs(batch), []
            for start in range(0, len(jobs), COMPOSE_SLICE):
                made += composer(jobs[start : start + COMPOSE_SLICE])
                await asyncio.sleep(0)  # replies, commits and the web endpoint get their turn
            for claimed, built in zip(batch, made, strict=True):
                if isinstance(built, str):  # could not be built: fails alone, never leaves
                    held.pop(claimed.id)
                    committer.finish(self._result(claimed, Outcome("error", built)))
                else:
                    sender = self.envelope_sender(claimed.id)
                    outgoing = Outgoing(claimed.id, sender, built.recipient, built.data)
                    await queue.put((claimed, outgoing))
        for _ in range(slots):
            await queue.put(None)

    def _stopping(self) -> bool:
        """Asked to stop: claim nothing more; what was claimed goes back to the queue."""
        return self.stop is not None and self.stop.is_set()

    async def _heartbeat(self) -> None:
        """Say this worker is alive; through a database outage, keep trying.

        A heartbeat that stopped at the first error would leave a live worker
        looking dead once the database is back: its claimed rows would be given
        to others (the ledger's start refuses them to it then, so nothing is
        sent twice, but the run would have done its work for nothing).
        """
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY.total_seconds())
            with contextlib.suppress(Exception):  # the run's own writes say what is wrong
                self.ledger.heartbeat(self.clock())

    async def _rate(self, transport: Transport) -> None:
        """Workers come and go: look again every ``RATE_SHARE_EVERY`` seconds."""
        if self.settings.smtp.rate_limit is None:
            return
        while True:
            await asyncio.sleep(RATE_SHARE_EVERY)
            self._share_rate(transport)

    def _share_rate(self, transport: Transport) -> None:
        """``rate_limit`` is the clinic's total: an equal share for each worker delivering."""
        transport.share(1 / max(1, self.ledger.live_workers(self.clock())))

    def _result(self, claimed: Claimed, outcome: Outcome) -> Result:
        attempts = claimed.attempts + 1
        status, retry, reply = outcome.status, None, outcome.reply
        if status == "deferred":
            retry = retry_at(self.settings, attempts, self.clock())
            if retry is None and outcome.ours:  # rebook's trouble: the next run tries again
                status, reply = "error", f"not sent after {attempts} attempts: {reply}"
            elif retry is None:
                status, reply = "failed", f"gave up after {attempts} attempts: {reply}"
        self.report.outcomes[status] += 1
        if status == "failed":
            self.report.failures.append((claimed.email, reply))
        elif status == "error":
            self.report.errors.append((claimed.email, reply))
        if outcome.hard_bounce:
            self.report.bounced += 1
        bounced = claimed.email if outcome.hard_bounce else None
        return Result(claimed.id, status, reply, retry, bounced)

    # -- what to render -----------------------------------------------------------

    def _jobs(self, batch: list[Claimed]) -> list[Job]:
        """The data each message of a batch is rendered from, read in three queries."""
        now, ids = self.clock(), [claimed.client_id for claimed in batch]
        zone = self.settings.clinic.timezone
        booked = [c.key.removeprefix(VISIT_KEY) for c in batch if c.key.startswith(VISIT_KEY)]
        with self.engine.connect() as connection:
            found = connection.execute(select(clients).where(clients.c.id.in_(ids)))
            rows = {row.id: row for row in found}
            visits = visit_views_for(connection, ids, self.segment, now, zone)
            appointments = appointments_by_id(connection, booked)
        jobs = []
        for claimed in batch:
            last, upcoming = visits[claimed.client_id]
            appointment = None
            if claimed.key.startswith(VISIT_KEY):  # a reminder: of its own appointment
                appointment = appointments.get(claimed.key.removeprefix(VISIT_KEY))
                upcoming = appointment.view(zone) if appointment else upcoming
            row = rows.get(claimed.client_id)
            jobs.append(self._job(claimed, row, (last, upcoming), now, appointment))
        return jobs

    def _job(self, claimed: Claimed, row, visits, now: datetime, appointment=None) -> Job:
        if row is None:  # the client was removed since the row was queued: address only
            client = ClientView(claimed.client_id, "", "", claimed.email, ())
        else:
            client = client_view(row)
        link = None
        if self._secret is not None:
            link = unsubscribe_url(
                self.settings.web.public_url, make_token(self._secret, client.id)
            )
        article = claimed.key if claimed.key in self.series else None
        return Job(
            claimed.id,
            client,
            *visits,
            link,
            article,
            claimed.email,
            claimed.message_id,
            now,
            appointment,
        )
