"""Who a campaign run sends to, and under which ledger key.

The audience is the segment's members, less (for marketing) those without
consent and every suppressed address, less (for every kind) hard-bounced and
forgotten addresses, less everyone the ledger says already had this
campaign's key (or had the campaign within ``repeat_after``), under its name
or one of its ``previous_names``. It is one SQL
query, and ``enqueue`` turns it into ``queued`` ledger rows with one
``INSERT … SELECT … ON CONFLICT DO NOTHING``, so two workers enqueuing at once
still make one row per client and key.

Keys: ``once`` without ``repeat_after``; the number of the ``repeat_after``
period ``now`` falls in otherwise; the article's name for a series, where
each client gets the first article of the list they have not had yet;
``visit:ID`` for an appointment reminder, one per booked visit.

A campaign with ``holdout`` keeps that share of its audience back as a
control group: those clients get a ``held_out`` row instead of a ``queued``
one, chosen by a hash of (campaign, client) so that the same clients are
held out at every run and by every worker. The row spends the key as a sent
one does: the client is not queued again for it, and ``repeat_after`` spaces
their turns as it spaces the recipients'. It does not count against
``max_marketing``, since the client received nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection

from campaigns.clients.segments import segment_conditions
from campaigns.config import Campaign, Segment
from campaigns.delivery.quiet import Holds, no_hold
from campaigns.delivery.suppression import allowed
from campaigns.durations import Rate, format_duration
from campaigns.store.expressions import in_control_group
from campaigns.store.tables import UNSPENT_STATUSES as UNSPENT
from campaigns.store.tables import UTCDateTime, clients, sends, visits
from campaigns.store.upsert import insert_for

ONCE = "once"
VISIT_KEY = "visit:"  # + the visit's id: an appointment reminder's key
BOOKED = visits.alias("booked")  # the visit a reminder is for (segment rules use ``visits``)
WAITING = ("queued", "claimed", "sending", "deferred")
HELD_OUT = "held_out"


def period_key(campaign: Campaign, now: datetime) -> str:
    """The ledger key of this run: ``once``, or which ``repeat_after`` period ``now`` is in."""
    if campaign.repeat_after is None:
        return ONCE
    seconds = int(campaign.repeat_after.total_seconds())
    return f"every-{format_duration(campaign.repeat_after)}:{int(now.timestamp()) // seconds}"


def reminds_visits(campaign: Campaign, segment: Segment) -> bool:
    """Appointment reminders: one message per booked visit, keyed by the visit.

    A transactional campaign over a ``next_visit_within`` segment reminds
    a client of Monday's and of Thursday's appointment alike, once each,
    however often it runs; ``repeat_after`` does not apply to it.
    """
    return not campaign.marketing and segment.next_visit_within is not None


@dataclass(frozen=True)
class Audience:
    """One campaign run's audience: who, and under which key."""

    name: str
    campaign: Campaign
    segment: Segment
    now: datetime
    articles: list[str] = field(default_factory=list)  # a series, in order
    cap: Rate | None = None  # [policy] max_marketing, across every marketing campaign

    def _had(self, key: ColumnElement | str, statuses=None) -> ColumnElement[bool]:
        """A ledger row of this campaign and key that spent it (or, given, in ``statuses``)."""
        spent = sends.c.status.in_(statuses) if statuses else sends.c.status.not_in(UNSPENT)
        return exists().where(
            self._mine(),
            sends.c.client_id == clients.c.id,
            sends.c.key == key,
            spent,
        )

    def _mine(self) -> ColumnElement[bool]:
        """Ledger rows of this campaign: its own, and those of its ``previous_names``.

        A renamed campaign's clients had it under the old name: without this
        they would all get it again. New rows are written under the new name
        only, so the ledger's unique key still holds. Rows an old name left
        queued or deferred count for nothing: no campaign delivers them any
        more, and the client gets it under the new name instead.
        """
        own = sends.c.campaign == self.name
        if not self.campaign.previous_names:
            return own
        dead = sends.c.status.in_(("queued", "deferred"))
        return or_(own, and_(sends.c.campaign.in_(self.campaign.previous_names), not_(dead)))

    @property
    def per_visit(self) -> bool:
        """Appointment reminders (see ``reminds_visits``)."""
        return reminds_visits(self.campaign, self.segment)

    def _source(self):
        """The rows a run chooses from: clients, or (reminders) their upcoming bookings."""
        if not self.per_visit:
            return clients
        upcoming = and_(
            BOOKED.c.client_id == clients.c.id,
            BOOKED.c.status == "booked",
            BOOKED.c.starts_at >= self.now,
            BOOKED.c.starts_at <= self.now + self.segment.next_visit_within,
        )
        return clients.join(BOOKED, upcoming)

    def key_column(self) -> ColumnElement:
        if self.per_visit:
            return literal(VISIT_KEY) + BOOKED.c.id
        if self.articles:  # the first article of the series this client has not had
            return case(*((not_(self._had(name)), name) for name in self.articles), else_=None)
        return literal(period_key(self.campaign, self.now))

    def filters(self, *, detailed: bool = True) -> list[tuple[str, ColumnElement[bool]]]:
        """Each reason a member is left out, as (reason, condition that keeps them).

        ``detailed`` tells a ledger row's kinds apart (sent, waiting, refused)
        for ``explain``; the audience itself asks once whether the key is
        spent, a condition PostgreSQL plans well whatever its statistics say.
        """
        reasons = []
        if self.campaign.marketing:
            reasons.append(("no marketing consent", clients.c.marketing_consent.is_(True)))
        marketing = self.campaign.marketing
        reasons.append(
            ("unsubscribed or bounced", allowed(clients.c.email, clients.c.id, marketing=marketing))
        )
        if self.campaign.repeat_after is not None and not self.per_visit:
            recent = exists().where(
                self._mine(),
                sends.c.client_id == clients.c.id,
                sends.c.created_at > self.now - self.campaign.repeat_after,
                sends.c.status.not_in(UNSPENT),
            )
            reasons.append(
                (f"had it in the last {format_duration(self.campaign.repeat_after)}", not_(recent))
            )
        if self.articles:
            reasons.append(("had every article", self.key_column().is_not(None)))
        elif detailed:
            key = self.key_column()
            reasons += [
                ("already sent", not_(self._had(key, ("sent",)))),
                ("already queued or waiting for a retry", not_(self._had(key, WAITING))),
                ("refused or bounced before", not_(self._had(key, ("failed",)))),
                ("in the control group before", not_(self._had(key, (HELD_OUT,)))),
            ]
        else:
            reasons.append(("already had it", not_(self._had(self.key_column()))))
        if self.cap is not None and self.campaign.marketing:
            reasons.append((f"reached the marketing cap of {self.cap}", self._under_cap(self.cap)))
        return reasons

    def _under_cap(self, cap: Rate) -> ColumnElement[bool]:
        """Fewer than ``cap.count`` marketing emails (not failed) in the last ``cap.per``."""
        recent = (
            select(func.count())
            .select_from(sends)
            .where(
                sends.c.client_id == clients.c.id,
                sends.c.marketing.is_(True),
                sends.c.status.not_in(("failed", HELD_OUT, *UNSPENT)),
                sends.c.created_at > self.now - cap.per,
            )
            .scalar_subquery()
        )
        return recent < cap.count

    def status_column(self, client_id: ColumnElement | None = None) -> ColumnElement[str]:
        """``held_out`` for a client in the campaign's control group, else ``queued``."""
        if not self.campaign.holdout:
            return literal("queued")
        client_id = clients.c.id if client_id is None else client_id
        control = in_control_group(self.name, client_id, self.campaign.holdout)
        return case((control, literal(HELD_OUT)), else_=literal("queued"))

    def held_out(self, connection: Connection) -> int:
        """This campaign's control-group rows, counted before and after ``enqueue``."""
        mine = (sends.c.campaign == self.name) & (sends.c.status == HELD_OUT)
        query = select(func.count()).where(mine)
        return connection.execute(query).scalar_one()

    def select(self, *extra: ColumnElement) -> Select:
        """client_id, email, key (and ``extra``) of everyone this run sends to, in id order."""
        return (
            select(clients.c.id, clients.c.email, self.key_column().label("key"), *extra)
            .select_from(self._source())
            .where(
                *segment_conditions(self.segment, self.now),
                *(keep for _, keep in self.filters(detailed=False)),
            )
            .order_by(clients.c.id, self.key_column())
        )

    def explain(self, connection: Connection) -> tuple[int, dict[str, int]]:
        """How many members the segment has now, and how many each filter leaves out.

        One pass over the segment: a member counts against the first filter that
        leaves them out, as the filters apply in order.
        """
        filters = self.filters()
        passed: list[ColumnElement[bool]] = []
        counts = [func.count()]
        for _, keep in filters:
            counts.append(func.coalesce(func.sum(case((and_(*passed, not_(keep)), 1), else_=0)), 0))
            passed.append(keep)
        row = connection.execute(
            select(*counts)
            .select_from(self._source())
            .where(*segment_conditions(self.segment, self.now))
        ).one()
        members, *out = row
        return members, {reason: n for (reason, _), n in zip(filters, out, strict=True) if n}

    def enqueue(self, connection: Connection, holds: Holds | None = None) -> int:
        """Add a ``queued`` ledger row for each member of the audience; return how many.

        A member whose row did not spend its key (skipped, or an error of
        rebook's own) has that row queued again, with a fresh count of
        attempts. That is a separate UPDATE of those few rows: an upsert over
        the whole audience would lock every row another worker is sending.
        ``holds`` stamps marketing held for quiet hours with when it may go.
        """
        hold = holds.column() if holds is not None else no_hold()
        audience = self.select(hold.label("held_until"), self.status_column().label("status"))
        audience = audience.subquery()
        requeue = (
            update(sends)
            .where(
                sends.c.campaign == self.name,
                sends.c.status.in_(UNSPENT),
                tuple_(sends.c.client_id, sends.c.key).in_(select(audience.c.id, audience.c.key)),
            )
            .values(
                status=self.status_column(sends.c.client_id),
                attempts=0,
                worker=None,
                updated_at=self.now,
                next_attempt_at=holds.clinic if holds is not None else None,
            )
        )
        again = connection.execute(requeue).rowcount
        now = literal(self.now, UTCDateTime)
        rows = select(
            literal(self.name), audience.c.id, audience.c.key, literal(self.campaign.marketing),
            audience.c.email, audience.c.status, now, now, audience.c.held_until,
        ).where(true())  # SQLite reads "FROM … ON CONFLICT" as a join without a WHERE  # fmt: skip
        columns = ["campaign", "client_id", "key", "marketing", "email", "status", "created_at",
                   "updated_at", "next_attempt_at"]  # fmt: skip
        statement = (
            insert_for(connection.dialect.name, sends)
            .from_select(columns, rows)
            .on_conflict_do_nothing(index_elements=["campaign", "client_id", "key"])
        )
        inserted = connection.execution_options(preserve_rowcount=True).execute(statement)
        return again + inserted.rowcount  # SQLAlchemy counts an INSERT's rows only when asked
