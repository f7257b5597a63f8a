"""A campaign run: enqueue the audience, then claim, render, send and record, until done.

``run_campaign`` is a plain async function: ``rebook send`` calls it, the
scheduler will, and tests do. It never raises for a single message's
trouble; those end up in the ledger and the report.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine

from campaigns.audience import Audience
from campaigns.config import Settings
from campaigns.context import client_view, visit_views_for
from campaigns.errors import RebookError
from campaigns.ledger import HEARTBEAT_EVERY, Claimed, Ledger, Result
from campaigns.message import MessageComposer, sender_from
from campaigns.render import CampaignRenderer
from campaigns.tables import clients
from campaigns.tokens import make_token, unsubscribe_url, web_secret
from campaigns.transports import Outcome, Outgoing, Transport, TransportUnavailable, make_transport

CLAIM_BATCH = 200  # rows claimed and rendered at a time
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
    outcomes: Counter = field(default_factory=Counter)  # sent, deferred, failed
    bounced: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (address, reply)
    would_send: list[tuple[str, str]] = field(default_factory=list)  # dry run: (address, key)
    unreachable: str | None = None


def retry_at(settings: Settings, attempts: int, now: datetime) -> datetime | None:
    """When to try again after ``attempts`` tries: ``retry_backoff`` doubling, ±20% jitter."""
    if attempts >= settings.smtp.max_attempts:
        return None
    delay = settings.smtp.retry_backoff * (2 ** (attempts - 1))
    return now + delay * random.uniform(0.8, 1.2)


async def run_campaign(
    engine: Engine,
    settings: Settings,
    name: str,
    *,
    dry_run: bool = False,
    clock: Clock = utc_now,
    transport: Transport | None = None,
    progress: Progress | None = None,
) -> RunReport:
    run = CampaignRun(engine, settings, name, clock)
    report = run.prepare_audience(dry_run)
    if dry_run:
        return report
    try:
        await run.deliver(transport or make_transport(settings), progress)
    except TransportUnavailable as error:
        report.unreachable = str(error)
    return report


class CampaignRun:
    """One run of one campaign by this process."""

    def __init__(self, engine: Engine, settings: Settings, name: str, clock: Clock) -> None:
        self.engine, self.settings, self.name, self.clock = engine, settings, name, clock
        self.campaign = settings.campaigns[name]
        self.segment = settings.segments[self.campaign.segment]
        self.renderer = CampaignRenderer(
            settings, name
        )  # template errors surface before anything is queued
        self.articles = {article.name: article for article in self.renderer.articles}
        self.sender = sender_from(settings.mail)
        self.composer = MessageComposer(self.sender)
        self.ledger = Ledger(engine, name, self.sender.domain)
        self.report = RunReport(name)
        self._secret: bytes | None = None

    def prepare_audience(self, dry_run: bool) -> RunReport:
        now = self.clock()
        audience = Audience(self.name, self.campaign, self.segment, now, list(self.articles))
        report = self.report
        report.dry_run = dry_run
        with self.engine.connect() as connection:
            report.members, report.left_out = audience.explain(connection)
            if dry_run:
                report.would_send = [
                    (row.email, row.key) for row in connection.execute(audience.select())
                ]
                return report
            if self.campaign.marketing:
                self._secret = web_secret(connection, self.settings.web.secret)
        with self.ledger.writing() as connection, connection.begin():
            report.enqueued = audience.enqueue(connection)
        return report

    # -- delivering -------------------------------------------------------------

    async def deliver(self, transport: Transport, progress: Progress | None) -> None:
        await transport.open()  # TransportUnavailable before anything is claimed
        self.ledger.register(self.clock())
        committer = Committer(self.ledger, self.clock)
        queue: asyncio.Queue[tuple[Claimed, Outgoing] | None] = asyncio.Queue(maxsize=CLAIM_BATCH)
        held: dict[int, Claimed] = {}  # claimed, not yet started
        try:
            self.report.recovered = self.ledger.recover(self.clock())
            total = self.ledger.waiting(self.clock())
            done = Counter()
            consumers = [
                asyncio.create_task(
                    self._consume(transport, slot, queue, committer, held, done, total, progress)
                )
                for slot in range(transport.slots)
            ]
            beat = asyncio.create_task(self._heartbeat())
            try:
                await self._produce(queue, committer, held, transport.slots)
                await asyncio.gather(*consumers)
            finally:
                beat.cancel()
                for task in consumers:
                    task.cancel()
                await asyncio.gather(*consumers, beat, return_exceptions=True)
        finally:
            committer.flush()
            self.ledger.release(held, self.clock())
            self.ledger.retire()
            await transport.close()

    async def _produce(
        self, queue, committer: Committer, held: dict[int, Claimed], slots: int
    ) -> None:
        while batch := self.ledger.claim(CLAIM_BATCH, self.clock()):
            for claimed, outgoing in self._compose(batch, committer):
                held[claimed.id] = claimed
                await queue.put((claimed, outgoing))
        for _ in range(slots):
            await queue.put(None)

    async def _consume(
        self, transport, slot, queue, committer, held, done, total, progress
    ) -> None:
        while (item := await queue.get()) is not None:
            claimed, outgoing = item
            await committer.start(claimed.id)
            held.pop(claimed.id, None)
            outcome = await transport.send(outgoing, slot)
            committer.finish(self._result(claimed, outcome))
            done[outcome.status] += 1
            if progress:
                progress(sum(done.values()), total)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY.total_seconds())
            self.ledger.heartbeat(self.clock())

    def _result(self, claimed: Claimed, outcome: Outcome) -> Result:
        attempts = claimed.attempts + 1
        status, retry, reply = outcome.status, None, outcome.reply
        if status == "deferred":
            retry = retry_at(self.settings, attempts, self.clock())
            if retry is None:
                status, reply = "failed", f"gave up after {attempts} attempts: {reply}"
        self.report.outcomes[status] += 1
        if status == "failed":
            self.report.failures.append((claimed.email, reply))
        if outcome.hard_bounce:
            self.report.bounced += 1
        return Result(
            claimed.id, status, reply, retry, claimed.email if outcome.hard_bounce else None
        )

    # -- rendering --------------------------------------------------------------

    def _compose(self, batch: list[Claimed], committer: Committer):
        """Render and compose a batch; a message that cannot be built fails alone."""
        now, zone = self.clock(), self.settings.clinic.timezone
        ids = [claimed.client_id for claimed in batch]
        with self.engine.connect() as connection:
            rows = {
                row.id: row
                for row in connection.execute(select(clients).where(clients.c.id.in_(ids)))
            }
            visits = visit_views_for(connection, ids, self.segment, now, zone)
        for claimed in batch:
            try:
                yield claimed, self._outgoing(claimed, rows.get(claimed.client_id), visits, now)
            except RebookError as error:
                failed = Outcome("failed", f"not sent: {error}")
                committer.finish(self._result(claimed, failed))

    def _outgoing(self, claimed: Claimed, row, visits, now: datetime) -> Outgoing:
        if row is None:
            raise RebookError(f"client {claimed.client_id!r} no longer exists")
        client = client_view(row)
        link = None
        if self._secret is not None:
            link = unsubscribe_url(
                self.settings.web.public_url, make_token(self._secret, client.id)
            )
        last_visit, next_visit = visits[claimed.client_id]
        article = self.articles.get(claimed.key)
        content = self.renderer.render(client, last_visit, next_visit, link, article)
        data = self.composer.compose(
            content, to_name=client.full_name, to_email=claimed.email,
            message_id=claimed.message_id, date=now, unsubscribe_url=link,
        )  # fmt: skip
        return Outgoing(claimed.id, self.sender.address, claimed.email, data)


class Committer:
    """Group commit: every connection's "starting" joins one transaction with finished results.

    A connection awaits ``start`` before its SMTP transaction; starts that
    arrive in the same turn of the event loop share one commit, which also
    records every result finished since the last one.
    """

    def __init__(self, ledger: Ledger, clock: Clock) -> None:
        self.ledger, self.clock = ledger, clock
        self._starting: list[int] = []
        self._waiting: list[asyncio.Future] = []
        self._results: list[Result] = []
        self._scheduled = False

    async def start(self, row_id: int) -> None:
        future = asyncio.get_running_loop().create_future()
        self._starting.append(row_id)
        self._waiting.append(future)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._commit)
        await future

    def finish(self, result: Result) -> None:
        self._results.append(result)

    def _commit(self) -> None:
        self._scheduled = False
        starting, waiting = self._starting, self._waiting
        self._starting, self._waiting = [], []
        try:
            self.flush(starting)
        except Exception as error:
            for future in waiting:
                future.set_exception(error)
            return
        for future in waiting:
            future.set_result(None)

    def flush(self, starting: list[int] | None = None) -> None:
        results, self._results = self._results, []
        if starting or results:
            try:
                self.ledger.commit(starting or [], results, self.clock())
            except Exception:
                self._results = results + self._results  # keep them for the final flush
                raise
