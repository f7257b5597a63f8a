"""What followed each campaign: bookings, unsubscribes, and what a control group measured.

A booking *follows* an email when it is a visit of the recipient, not
cancelled, first seen by an import after the email went and within
``[report] window`` of it. That says "followed by", never "caused by": only
a campaign with a control group (``holdout``) compares its recipients'
booking rate with that of clients picked alike and not sent it, whose clock
starts when their email would have gone.

Everything is counted in one SQL query, grouped by campaign, group
(recipients or control) and week; Python only adds those rows up into
totals and weeks, so the cost does not grow with the clients in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import case, exists, func, literal_column, select
from sqlalchemy.engine import Connection

from campaigns.config import Settings
from campaigns.errors import UserError
from campaigns.stats import Interval, newcombe, verdict, wilson
from campaigns.store.expressions import after, weeks_since
from campaigns.store.tables import client_suppressions, returns, sends, suppressions, visits

SENT, HELD_OUT = "sent", "held_out"
ORIGIN = date(2000, 1, 3)  # a Monday before any email: weeks are counted from it


@dataclass(frozen=True)
class Group:
    """Clients counted in one group, and how many of them booked within the window."""

    clients: int = 0
    booked: int = 0  # clients with at least one booking that followed
    bookings: int = 0  # the bookings themselves

    @property
    def rate(self) -> Interval | None:
        """The booking rate with its interval; None with no clients: no data is no rate."""
        return wilson(self.booked, self.clients) if self.clients else None

    def __add__(self, other: Group) -> Group:
        return Group(self.clients + other.clients, self.booked + other.booked,
                     self.bookings + other.bookings)  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    """Recipients against the control group: the difference and the bookings it won."""

    difference: Interval  # of booking rates, recipients minus control
    won: Interval  # the difference times the recipients: bookings the campaign won
    verdict: str  # campaigns.stats: not enough data yet, no measurable difference yet, measured


@dataclass
class Week:
    start: date  # a Monday, on the clinic's clock
    recipients: Group = Group()
    control: Group = Group()


@dataclass
class CampaignOutcome:
    name: str
    recipients: Group = Group()
    control: Group = Group()
    failed: int = 0
    bounced: int = 0  # of the failed: hard bounces, the address now suppressed
    unsubscribed: int = 0  # recipients who unsubscribed within the window after it
    undated: int = 0  # recipients' later visits imported before rebook dated them
    weeks: list[Week] = field(default_factory=list)
    returned: Returned = field(default_factory=lambda: Returned())  # what came back later

    @property
    def comparison(self) -> Comparison | None:
        """Recipients against the control group; None unless both groups have clients."""
        if not self.control.clients or not self.recipients.clients:
            return None
        difference = newcombe(self.recipients.booked, self.recipients.clients,
                              self.control.booked, self.control.clients)  # fmt: skip
        return Comparison(
            difference,
            difference.scaled(self.recipients.clients),
            verdict(self.recipients.clients, self.control.clients, difference),
        )


COMPLAINT_LIMIT = 0.003  # Gmail's and Yahoo's bulk-sender rules (2024): complaints under 0.3%


@dataclass
class Returned:
    """What came back of the messages sent: bounces and complaints, each message once."""

    sent: int = 0
    hard: int = 0
    soft: int = 0
    complaint: int = 0
    clinic_problem: int = 0  # refused for the clinic's policy, reputation or authentication
    unsubscribe: int = 0

    def rate(self, kind: str) -> float | None:
        """Messages of this kind per message sent; None with nothing sent: no data, no rate."""
        return getattr(self, kind) / self.sent if self.sent else None

    def __add__(self, other: Returned) -> Returned:
        names = ("sent", "hard", "soft", "complaint", "clinic_problem", "unsubscribe")
        return Returned(*(getattr(self, n) + getattr(other, n) for n in names))


@dataclass(frozen=True)
class Report:
    now: datetime
    since: datetime | None
    window: timedelta
    campaigns: list[CampaignOutcome]

    @property
    def returned(self) -> Returned:
        """Every campaign's together: the rates a mailbox provider judges the clinic by."""
        total = Returned()
        for campaign in self.campaigns:
            total = total + campaign.returned
        return total


def report(
    connection: Connection,
    settings: Settings,
    now: datetime,
    *,
    since: timedelta | None = None,
    campaign: str | None = None,
) -> Report:
    """Per campaign, emails since ``now - since`` (all, without) and what followed them."""
    window = settings.report.window
    start_from = now - since if since is not None else None
    renamed = renames(settings)  # a previous name's emails are its campaign's
    known = set(settings.campaigns) | _ledger_campaigns(connection)
    if campaign is not None and campaign not in known | set(renamed):
        raise UserError(
            f"no campaign named {campaign!r} in the config or the ledger "
            f"(known: {', '.join(sorted(known)) or 'none'})"
        )
    # no longer configured, still in the ledger
    others = sorted(known - set(settings.campaigns) - set(renamed))
    campaign = renamed.get(campaign, campaign)
    names = [campaign] if campaign is not None else [*settings.campaigns, *others]
    found = Found({name: CampaignOutcome(name) for name in names}, renamed)
    if connection.dialect.name == "postgresql":
        # The planner's cost for a subquery per ledger row turns JIT on, whose compiling
        # took 2 s of a 3.7 s report at 10,000 clients: this query gains nothing from it.
        connection.exec_driver_sql("SET LOCAL jit = off")
    zone, only = settings.clinic.timezone, found.ledger_names(campaign)
    _add_exposures(connection, found, window, zone, start_from, only)
    _add_failures(connection, found, start_from, only)
    _add_returns(connection, found, start_from, only)
    return Report(now, start_from, window, list(found.values()))


def renames(settings: Settings) -> dict[str, str]:
    """Each previous name in the config, and the campaign that carries its history now."""
    return {old: name for name, c in settings.campaigns.items() for old in c.previous_names}


class Found(dict):
    """The outcomes by campaign; a row under a previous name counts for its new one."""

    def __init__(self, outcomes: dict[str, CampaignOutcome], renamed: dict[str, str]) -> None:
        super().__init__(outcomes)
        self.renamed = renamed

    def of(self, ledger_name: str) -> CampaignOutcome | None:
        return self.get(self.renamed.get(ledger_name, ledger_name))

    def ledger_names(self, campaign: str | None) -> list[str] | None:
        """The names ``campaign``'s rows are under in the ledger; None: every campaign."""
        if campaign is None:
            return None
        return [campaign, *(old for old, new in self.renamed.items() if new == campaign)]


def _ledger_campaigns(connection: Connection) -> set[str]:
    return set(connection.execute(select(sends.c.campaign).distinct()).scalars())


def _add_exposures(connection, found, window, zone, start_from, only) -> None:
    """Recipients and control clients, by campaign and week, with what followed."""
    start = case(
        (sends.c.status == SENT, sends.c.sent_at),
        else_=func.coalesce(sends.c.next_attempt_at, sends.c.created_at),  # when it would have gone
    )
    rows = select(sends.c.campaign, sends.c.status, sends.c.client_id, start.label("start")).where(
        sends.c.status.in_((SENT, HELD_OUT))
    )
    if only is not None:
        rows = rows.where(sends.c.campaign.in_(only))
    if start_from is not None:
        rows = rows.where(start >= start_from)
    # Weeks start on Monday at midnight on the clinic's clock (the offset of that first
    # Monday: a clock change moves the boundary by an hour, no more).
    origin = datetime.combine(ORIGIN, time(0), tzinfo=zone)
    # Materialized, so that each row's start, end and week are worked out once: inlined,
    # SQLite would parse the times again in every subquery that names them.
    inner = rows.subquery("inner")
    exposed = (
        select(inner, after(inner.c.start, window).label("end"),
               weeks_since(inner.c.start, origin).label("week"))
        .cte("exposed")
        .prefix_with("MATERIALIZED")
    )  # fmt: skip
    kept = visits.c.status != literal_column("'cancelled'")
    followed = (
        select(func.count())
        .where(visits.c.client_id == exposed.c.client_id, kept,
               visits.c.first_seen_at > exposed.c.start, visits.c.first_seen_at <= exposed.c.end)
        .scalar_subquery()
    )  # fmt: skip
    undated = (
        select(func.count())
        .where(visits.c.client_id == exposed.c.client_id, kept,
               visits.c.first_seen_at.is_(None), visits.c.starts_at > exposed.c.start)
        .scalar_subquery()
    )  # fmt: skip
    unsubscribed = exists().where(
        client_suppressions.c.client_id == exposed.c.client_id,
        client_suppressions.c.reason == literal_column("'unsubscribed'"),
        client_suppressions.c.created_at >= exposed.c.start,
        client_suppressions.c.created_at <= exposed.c.end,
    )
    per_client = (
        select(exposed.c.campaign, exposed.c.status, exposed.c.week,
               followed.label("bookings"), undated.label("undated"),
               case((unsubscribed, 1), else_=0).label("unsubscribed"))
        .cte("per_client")
        .prefix_with("MATERIALIZED")  # each count once, though the sums read it twice
    )  # fmt: skip
    query = select(
        per_client.c.campaign, per_client.c.status, per_client.c.week, func.count(),
        func.sum(case((per_client.c.bookings > 0, 1), else_=0)), func.sum(per_client.c.bookings),
        func.sum(per_client.c.undated), func.sum(per_client.c.unsubscribed),
    ).group_by(per_client.c.campaign, per_client.c.status, per_client.c.week)  # fmt: skip
    weeks: dict[tuple[str, date], Week] = {}
    found_rows = connection.execute(query)
    for name, status, number, clients, booked, bookings, undated_, unsubscribed_ in found_rows:
        outcome = found.of(name)
        if outcome is None or number is None:
            continue
        # PostgreSQL sums counts as numeric: int() keeps JSON numbers numbers
        group = Group(clients, int(booked or 0), int(bookings or 0))
        monday = ORIGIN + timedelta(weeks=number)
        week = weeks.setdefault((outcome.name, monday), Week(monday))
        if status == SENT:
            outcome.recipients += group
            outcome.undated += int(undated_ or 0)
            outcome.unsubscribed += int(unsubscribed_ or 0)
            week.recipients += group
        else:
            outcome.control += group
            week.control += group
    for (name, _), week in sorted(weeks.items(), key=lambda item: item[0]):
        found[name].weeks.append(week)


def _add_failures(connection, found, start_from, only) -> None:
    """Refused messages by campaign, and of them the hard bounces (the address suppressed)."""
    bounced = exists().where(
        suppressions.c.address == sends.c.email,
        suppressions.c.reason == literal_column("'bounced'"),
    )
    query = (
        select(sends.c.campaign, func.count(), func.sum(case((bounced, 1), else_=0)))
        .where(sends.c.status == "failed")
        .group_by(sends.c.campaign)
    )
    if only is not None:
        query = query.where(sends.c.campaign.in_(only))
    if start_from is not None:
        query = query.where(sends.c.updated_at >= start_from)
    for name, failed, bounced_ in connection.execute(query):
        if (outcome := found.of(name)) is not None:
            outcome.failed += failed
            outcome.bounced += int(bounced_ or 0)


def _add_returns(connection, found, start_from, only) -> None:
    """Messages sent, and of them those a later bounce or complaint came back about.

    Each message counts once per kind, however many returns name it (a
    server that reports a delay and then the failure).
    """
    came_back = {
        kind: func.count(returns.c.send_id.distinct()).filter(returns.c.kind == kind)
        for kind in ("hard", "soft", "complaint", "clinic-problem", "unsubscribe")
    }
    query = (
        select(sends.c.campaign, func.count(sends.c.id.distinct()), *came_back.values())
        .select_from(sends.outerjoin(returns, returns.c.send_id == sends.c.id))
        .where(sends.c.status == SENT)
        .group_by(sends.c.campaign)
    )
    if only is not None:
        query = query.where(sends.c.campaign.in_(only))
    if start_from is not None:
        query = query.where(sends.c.sent_at >= start_from)
    for name, sent, hard, soft, complaint, problem, unsubscribe in connection.execute(query):
        if (outcome := found.of(name)) is not None:
            outcome.returned = outcome.returned + Returned(
                sent, hard, soft, complaint, problem, unsubscribe
            )


__all__ = ["CampaignOutcome", "Comparison", "Group", "Report", "Returned", "Week", "report"]
