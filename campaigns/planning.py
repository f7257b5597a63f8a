"""What ``rebook status`` and ``rebook plan`` compute: where each campaign stands, what comes next.

Both read and never write. ``plan`` asks the very questions a run asks (the
``Audience`` query, ``campaigns.timing`` for the schedule and quiet hours),
so what it shows is what the service would do, not a second opinion. The
clock is an argument: every answer is "as of ``now``".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.engine import Connection

from campaigns import timing
from campaigns.config import Campaign, Settings
from campaigns.delivery.quiet import clinic_quiet_until
from campaigns.delivery.runs import RunRecord, last_runs
from campaigns.errors import UserError
from campaigns.store.forgotten import count_forgotten
from campaigns.store.tables import client_suppressions, sends, suppressions

SCHEDULED, BY_HAND, DISABLED = "scheduled", "by hand only", "disabled"
COUNTED = (
    "sent", "deferred", "failed", "held", "queued", "sending", "skipped", "error", "held_out",
)  # fmt: skip
SAMPLE = 5  # members shown by ``plan`` for each campaign
_JUST_BEFORE = timedelta(microseconds=1)


def state_of(campaign: Campaign) -> str:
    if not campaign.enabled:
        return DISABLED
    return BY_HAND if campaign.schedule is None else SCHEDULED


def upcoming(campaign: Campaign, zone: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    """The campaign's next ``count`` scheduled times strictly after ``after`` (none by hand).

    Raises ``ValueError`` for a cron line that matches no date (``0 9 30 2 *``).
    """
    schedule = campaign.schedule
    if state_of(campaign) != SCHEDULED:
        return []
    if schedule.cron is not None:
        return timing.cron_runs(schedule.cron, zone, after, count)
    times: list[datetime] = []
    try:
        for _ in range(count):
            after = timing.next_run(schedule, zone, after)
            times.append(after)
    except OverflowError:
        pass  # "every 36500d", a thousand times: past 9999-12-31, where the calendar ends
    return times


def scheduled_times(
    name: str, campaign: Campaign, zone: ZoneInfo, after: datetime, count: int
) -> tuple[list[datetime], str | None]:
    """:func:`upcoming`, or no times and why: one such campaign must not hide the others."""
    try:
        return upcoming(campaign, zone, after, count), None
    except ValueError as error:
        return [], f"campaigns.{name}.schedule: {error}: it never runs"


# -- status -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignStatus:
    name: str
    kind: str
    state: str
    schedule: str | None
    next_run: datetime | None
    last_run: RunRecord | None
    last_sent: datetime | None  # also by hand, which leaves no run behind
    counts: dict[str, int]
    problem: str | None = None  # a schedule that never runs


@dataclass(frozen=True)
class Status:
    now: datetime
    campaigns: list[CampaignStatus]
    suppressed: dict[str, int]  # addresses by reason
    suppressed_clients: int  # client ids (an unsubscribe follows the client to a new address)


def status(connection: Connection, settings: Settings, now: datetime) -> Status:
    """Each campaign's schedule, last run and ledger counts, and the suppression list's size."""
    zone = settings.clinic.timezone
    last = last_runs(connection)
    counts, last_sent = ledger_counts(connection, now)
    rows = []
    for name, campaign in settings.campaigns.items():
        times, problem = scheduled_times(name, campaign, zone, now, 1)
        names = [name, *campaign.previous_names]  # its history under earlier names too
        sent_at = [last_sent[n] for n in names if n in last_sent]
        rows.append(CampaignStatus(
            name, campaign.kind, state_of(campaign),
            str(campaign.schedule) if campaign.schedule else None,
            times[0] if times else None, last.get(name), max(sent_at, default=None),
            {status: sum(counts.get((n, status), 0) for n in names) for status in COUNTED},
            problem,
        ))  # fmt: skip
    return Status(now, rows, *suppression_counts(connection))


def suppression_counts(connection: Connection) -> tuple[dict[str, int], int]:
    """Suppressed addresses by reason, and suppressed client ids."""
    reason = suppressions.c.reason
    query = select(reason, func.count()).group_by(reason).order_by(reason)
    by_reason = {row[0]: row[1] for row in connection.execute(query)}
    if forgotten := count_forgotten(connection):  # kept apart, as keyed hashes
        by_reason["forgotten"] = by_reason.get("forgotten", 0) + forgotten
    return by_reason, connection.execute(
        select(func.count()).select_from(client_suppressions)
    ).scalar()


def ledger_counts(
    connection: Connection, now: datetime
) -> tuple[dict[tuple[str, str], int], dict[str, datetime]]:
    """Ledger rows per (campaign, status), and each campaign's latest delivery.

    A ``queued`` row whose ``next_attempt_at`` is still ahead waits for quiet
    hours to end: it counts as ``held``. ``claimed`` and ``sending`` are one
    thing to an owner: a worker has them in hand.
    """
    shown = case(
        (and_(sends.c.status == "queued", sends.c.next_attempt_at > now), "held"),
        (sends.c.status.in_(("claimed", "sending")), "sending"),
        else_=sends.c.status,
    ).label("shown")
    query = select(sends.c.campaign, shown, func.count(), func.max(sends.c.sent_at)).group_by(
        sends.c.campaign, shown
    )
    counts: dict[tuple[str, str], int] = {}
    latest: dict[str, datetime] = {}
    for campaign, status_, number, sent_at in connection.execute(query):
        counts[campaign, status_] = counts.get((campaign, status_), 0) + number
        if sent_at is not None and (campaign not in latest or sent_at > latest[campaign]):
            latest[campaign] = sent_at
    return counts, latest


# -- plan -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedRun:
    at: datetime
    held_until: datetime | None = None  # marketing inside quiet hours, on the clinic's clock


@dataclass(frozen=True)
class Reach:
    """Whom a run would send to now, after every rule a real run applies."""

    members: int  # in the segment
    left_out: dict[str, int]  # by the first rule that leaves each member out
    count: int  # who would get it
    held: int = 0  # of them, waiting for quiet hours (their own clock, or the clinic's)
    held_until: datetime | None = None  # the earliest end among those
    held_out: int = 0  # of them, the control group (holdout): recorded, not sent
    sample: list[tuple[str, str]] = field(default_factory=list)  # (email, ledger key)


@dataclass(frozen=True)
class CampaignPlan:
    name: str
    kind: str
    state: str
    schedule: str | None
    runs: list[PlannedRun]
    reach: Reach | None = None  # None: disabled, or only the schedule was asked for
    problem: str | None = None  # why a run would fail before sending anything


def plan(
    connection: Connection,
    settings: Settings,
    now: datetime,
    *,
    start: datetime | None = None,
    runs: int = 1,
) -> list[CampaignPlan]:
    """Every campaign's next ``runs`` times, and whom it would reach ``now``.

    ``start``: list the times from this instant on (inclusive) instead, for a
    look across a holiday or a clock change; whom a run reaches then cannot
    be known now, so the audience is left out.
    """
    after = now if start is None else start - _JUST_BEFORE
    plans = []
    for name, campaign in settings.campaigns.items():
        times, problem = scheduled_times(name, campaign, settings.clinic.timezone, after, runs)
        planned = [PlannedRun(at, clinic_quiet_until(settings, campaign, at)) for at in times]
        reach = None
        if start is None and campaign.enabled and problem is None:
            moment = times[0] if times else now  # by hand: as if sent now
            reach, problem = _reach_or_problem(connection, settings, name, now, moment)
        schedule = str(campaign.schedule) if campaign.schedule else None
        plans.append(
            CampaignPlan(name, campaign.kind, state_of(campaign), schedule, planned, reach, problem)
        )
    return plans


def _reach_or_problem(connection, settings, name, now, moment) -> tuple[Reach | None, str | None]:
    """The reach, or the message a run would fail with (a template, an article that is gone)."""
    try:
        return reach(connection, settings, name, now, moment), None
    except UserError as error:
        return None, str(error)


def reach(
    connection: Connection, settings: Settings, name: str, now: datetime, moment: datetime
) -> Reach:
    """Whom campaign ``name`` would send to ``now``, held for quiet hours as they are at ``moment``.

    Built as ``CampaignRun`` builds its audience; the holds are the ones a run
    starting at ``moment`` would stamp, client time zones included.
    """
    from campaigns.content.render import CampaignRenderer
    from campaigns.delivery.audience import Audience
    from campaigns.delivery.quiet import holds_for, no_hold

    campaign = settings.campaigns[name]
    series = [article.name for article in CampaignRenderer(settings, name).articles]
    segment = settings.segments[campaign.segment]
    audience = Audience(name, campaign, segment, now, series, settings.policy.max_marketing)
    members, left_out = audience.explain(connection)
    hold = no_hold()
    if campaign.marketing and settings.policy.quiet_hours is not None:
        window, zone = settings.policy.quiet_hours, settings.clinic.timezone
        hold = holds_for(connection, window, zone, moment).column()
    status = audience.status_column().label("status")
    rows = audience.select(hold.label("held_until"), status).subquery()
    held_out = func.coalesce(func.sum(case((rows.c.status == "held_out", 1), else_=0)), 0)
    count, held, until, out = connection.execute(
        select(func.count(), func.count(rows.c.held_until), func.min(rows.c.held_until), held_out)
    ).one()
    sample = connection.execute(audience.select().limit(SAMPLE)).all()
    return Reach(members, left_out, count, held, until, int(out),
                 [(row.email, row.key) for row in sample])  # fmt: skip
