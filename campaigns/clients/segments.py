"""Segments compiled to one SQL query.

A segment's rules become a single ``SELECT`` over clients, with the visit
rules folded into one grouped subquery over the ``visits`` index, so a
segment of 100,000 clients is counted by the database, never in Python.
``now`` is an argument: the same rules give the same members for the same
moment, which is what the tests and ``plan`` rely on.

Rules, as the SPEC's table defines them (``attended`` means status attended
and started at or before ``now``; ``services`` narrows only these):

* ``last_visit_older_than D``  the last attended visit started before now - D
* ``last_visit_newer_than D``  the last attended visit started after now - D
* ``first_visit_newer_than D`` the first attended visit started after now - D
* ``visits_at_least/at_most N`` the number of attended visits (0 when none)
* ``booked``                   has (or has not) a booked visit after now, any service
* ``next_visit_within D``      has a booked visit starting in [now, now + D], any service
* ``tags_any`` / ``tags_none`` the client has one of / none of these tags
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    exists,
    func,
    not_,
    select,
)
from sqlalchemy.engine import Connection

from campaigns.config import Segment
from campaigns.store.tables import client_tags, clients, visits


def attended_visits(segment: Segment, now: datetime) -> list[ColumnElement[bool]]:
    """The visits that count for the visit rules: attended, started, of the segment's services."""
    conditions = [visits.c.status == "attended", visits.c.starts_at <= now]
    if segment.services:
        conditions.append(visits.c.service.in_(segment.services))
    return conditions


def _visit_history_rules(segment: Segment, now: datetime) -> list[ColumnElement[bool]]:
    """HAVING conditions that a client with at least one attended visit must meet."""
    last, first, count = func.max(visits.c.starts_at), func.min(visits.c.starts_at), func.count()
    having = []
    if segment.last_visit_older_than is not None:
        having.append(last < now - segment.last_visit_older_than)
    if segment.last_visit_newer_than is not None:
        having.append(last > now - segment.last_visit_newer_than)
    if segment.first_visit_newer_than is not None:
        having.append(first > now - segment.first_visit_newer_than)
    if segment.visits_at_least:
        having.append(count >= segment.visits_at_least)
    return having


def _visit_rules(segment: Segment, now: datetime) -> list[ColumnElement[bool]]:
    having = _visit_history_rules(segment, now)
    at_most = segment.visits_at_most
    if not having and at_most is None:
        return []

    def clients_with(condition: list[ColumnElement[bool]]) -> Select:
        return (
            select(visits.c.client_id)
            .where(*attended_visits(segment, now))
            .group_by(visits.c.client_id)
            .having(and_(*condition))
        )

    if having:  # the client must have attended visits; the cap applies among them
        if at_most is not None:
            having.append(func.count() <= at_most)
        return [clients.c.id.in_(clients_with(having))]
    # only a cap: clients with no attended visit have 0, and match
    return [clients.c.id.not_in(clients_with([func.count() > at_most]))]


def _booking_rules(segment: Segment, now: datetime) -> list[ColumnElement[bool]]:
    def booked_after(*window: ColumnElement[bool]) -> ColumnElement[bool]:
        return exists().where(
            visits.c.client_id == clients.c.id, visits.c.status == "booked", *window
        )

    rules = []
    if segment.booked is not None:
        has_booking = booked_after(visits.c.starts_at > now)
        rules.append(has_booking if segment.booked else not_(has_booking))
    if segment.next_visit_within is not None:
        rules.append(
            booked_after(
                visits.c.starts_at >= now,
                visits.c.starts_at <= now + segment.next_visit_within,
            )
        )
    return rules


def _tag_rules(segment: Segment) -> list[ColumnElement[bool]]:
    def has_tag_in(tags: list[str]) -> ColumnElement[bool]:
        return exists().where(client_tags.c.client_id == clients.c.id, client_tags.c.tag.in_(tags))

    rules = []
    if segment.tags_any:
        rules.append(has_tag_in(segment.tags_any))
    if segment.tags_none:
        rules.append(not_(has_tag_in(segment.tags_none)))
    return rules


def segment_conditions(segment: Segment, now: datetime) -> list[ColumnElement[bool]]:
    """Every rule of the segment as a WHERE condition on ``clients``."""
    return [
        *_visit_rules(segment, now),
        *_booking_rules(segment, now),
        *_tag_rules(segment),
    ]


def member_ids(segment: Segment, now: datetime) -> Select:
    """``SELECT clients.id`` of the members, in id order."""
    return select(clients.c.id).where(*segment_conditions(segment, now)).order_by(clients.c.id)


def count_members(connection: Connection, segment: Segment, now: datetime) -> int:
    query = select(func.count()).select_from(clients).where(*segment_conditions(segment, now))
    return connection.execute(query).scalar_one()


@dataclass(frozen=True)
class Member:
    """One client of a segment, as ``rebook segment`` shows it."""

    id: str
    email: str
    first_name: str
    last_name: str
    marketing_consent: bool
    tags: list[str]
    last_visit: datetime | None
    next_visit: datetime | None

    def as_json(self) -> dict:
        return {
            **self.__dict__,
            "last_visit": self.last_visit.isoformat() if self.last_visit else None,
            "next_visit": self.next_visit.isoformat() if self.next_visit else None,
        }


def list_members(
    connection: Connection, segment: Segment, now: datetime, limit: int | None = None
) -> list[Member]:
    """The members with their last counted visit and next booking, in id order."""
    last_visit = (
        select(func.max(visits.c.starts_at))
        .where(visits.c.client_id == clients.c.id, *attended_visits(segment, now))
        .scalar_subquery()
    )
    next_visit = (
        select(func.min(visits.c.starts_at))
        .where(
            visits.c.client_id == clients.c.id,
            visits.c.status == "booked",
            visits.c.starts_at >= now,  # as templates see next_visit
        )
        .scalar_subquery()
    )
    query = (
        select(
            clients.c.id,
            clients.c.email,
            clients.c.first_name,
            clients.c.last_name,
            clients.c.marketing_consent,
            clients.c.tags,
            last_visit.label("last_visit"),
            next_visit.label("next_visit"),
        )
        .where(*segment_conditions(segment, now))
        .order_by(clients.c.id)
        .limit(limit)
    )
    return [
        Member(
            id=row.id,
            email=row.email,
            first_name=row.first_name,
            last_name=row.last_name,
            marketing_consent=bool(row.marketing_consent),
            tags=[tag for tag in row.tags.split(";") if tag],
            last_visit=row.last_visit,
            next_visit=row.next_visit,
        )
        for row in connection.execute(query)
    ]
