"""Reading one client, or a batch's visits, into the plain views templates see.

Two queries serve a whole batch of messages: a campaign renders in batches.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from sqlalchemy import select
from sqlalchemy.engine import Connection

from campaigns.config import Segment
from campaigns.content.context import Appointment, VisitView
from campaigns.store.tables import clients, visits


def load_client(connection: Connection, *, client_id: str | None = None, email: str | None = None):
    """A client row by id or by email address (any case), or None."""
    query = select(clients)
    if client_id is not None:
        query = query.where(clients.c.id == client_id)
    else:
        query = query.where(clients.c.email == (email or "").strip().lower())
    return connection.execute(query.limit(1)).first()


def _view(row, zone: tzinfo) -> VisitView | None:
    if row is None:
        return None
    return VisitView(row.starts_at.astimezone(zone), row.service, row.therapist)


def visit_views_for(
    connection: Connection, client_ids: list[str], segment: Segment, now: datetime, zone: tzinfo
) -> dict[str, tuple[VisitView | None, VisitView | None]]:
    """Each client's last attended visit (of the segment's services) and next booked one.

    Two queries for any number of clients: a campaign renders in batches.
    """
    attended = select(visits).where(
        visits.c.client_id.in_(client_ids), visits.c.status == "attended", visits.c.starts_at <= now
    )
    if segment.services:
        attended = attended.where(visits.c.service.in_(segment.services))
    booked = select(visits).where(
        visits.c.client_id.in_(client_ids), visits.c.status == "booked", visits.c.starts_at >= now
    )
    last: dict[str, VisitView | None] = {}
    for row in connection.execute(attended.order_by(visits.c.client_id, visits.c.starts_at.desc())):
        last.setdefault(row.client_id, _view(row, zone))
    upcoming: dict[str, VisitView | None] = {}
    for row in connection.execute(booked.order_by(visits.c.client_id, visits.c.starts_at)):
        upcoming.setdefault(row.client_id, _view(row, zone))
    return {client_id: (last.get(client_id), upcoming.get(client_id)) for client_id in client_ids}


def _appointment(row) -> Appointment:
    return Appointment(row.id, row.starts_at, row.service, row.therapist, row.updated_at)


def appointments_by_id(connection: Connection, visit_ids: list[str]) -> dict[str, Appointment]:
    """Particular visits (the appointments reminders are for), by id, in one query."""
    if not visit_ids:
        return {}
    found = connection.execute(select(visits).where(visits.c.id.in_(visit_ids)))
    return {row.id: _appointment(row) for row in found}


def next_appointment(connection: Connection, client_id: str, now: datetime) -> Appointment | None:
    """The client's next booked visit, the one a reminder run would remind them of first."""
    row = connection.execute(
        select(visits)
        .where(visits.c.client_id == client_id, visits.c.status == "booked")
        .where(visits.c.starts_at >= now)
        .order_by(visits.c.starts_at)
        .limit(1)
    ).first()
    return _appointment(row) if row is not None else None
