"""``run_campaign``: a campaign run, from audience to the last message recorded.

It is a plain async function: ``rebook send`` calls it, the scheduler will,
and tests do. It decides how many processes deliver, so it sits above both
the one-process pipeline (``pipeline``) and the helper processes
(``workers``), which know nothing of each other's caller.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Engine

from campaigns.config import Settings
from campaigns.delivery.pipeline import (
    CampaignRun,
    Clock,
    Progress,
    RunReport,
    quiet_hours_now,
    utc_now,
)
from campaigns.delivery.transports import Transport, TransportUnavailable, make_transport
from campaigns.delivery.workers import Helpers, worker_count


async def run_campaign(
    engine: Engine,
    settings: Settings,
    name: str,
    *,
    dry_run: bool = False,
    clock: Clock = utc_now,
    transport: Transport | None = None,
    progress: Progress | None = None,
    processes: int | None = None,
    enqueue: bool = True,
    stop: asyncio.Event | None = None,
    ignore_quiet_hours: bool = False,
) -> RunReport:
    """Run campaign ``name`` once.

    ``processes``: how many worker processes deliver (default: one per core
    for a big run, see ``campaigns.delivery.workers``); a given ``transport`` means one.
    ``enqueue=False`` only delivers what is already queued or due (a worker
    helping another's run, or retries). ``stop``, once set, ends the run
    early: nothing more is claimed, messages already leaving finish.
    Marketing inside quiet hours is queued to leave when they end, unless
    ``ignore_quiet_hours``.
    """

    run = CampaignRun(engine, settings, name, clock, stop)
    report = run.explain(dry_run) if enqueue else run.report
    report.quiet_hours = quiet_hours_now(settings, run.campaign, clock())
    if dry_run:
        return report
    expected = run.waiting() + report.members - sum(report.left_out.values())
    count = 1 if transport is not None else worker_count(settings, expected, processes)
    helpers = Helpers(settings, name, count) if count > 1 else None  # they start while we enqueue
    if enqueue:
        run.enqueue(quiet_hours=not ignore_quiet_hours)
    else:
        run.load_secret()
    try:
        if helpers is not None:
            await helpers.deliver(run, progress)
        else:
            await run.deliver(transport or make_transport(settings), progress)
    except TransportUnavailable as error:
        report.unreachable = str(error)
    return report
