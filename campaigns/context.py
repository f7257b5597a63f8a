"""What a template sees: plain, read-only views of a client, their visits, the clinic.

Templates run sandboxed; they get these small frozen objects, never database
rows or settings, so a template can read ``client.first_name`` and nothing
it should not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from sqlalchemy import select
from sqlalchemy.engine import Connection

from campaigns.config import Campaign, Clinic, Segment
from campaigns.store.tables import clients, visits


@dataclass(frozen=True)
class ClientView:
    id: str
    first_name: str
    last_name: str
    email: str
    tags: tuple[str, ...]

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


@dataclass(frozen=True)
class VisitView:
    starts_at: datetime  # in the clinic's time zone
    service: str
    therapist: str


@dataclass(frozen=True)
class ClinicView:
    name: str
    address: str
    booking_url: str
    website: str | None


@dataclass(frozen=True)
class CampaignView:
    name: str
    kind: str


def clinic_view(clinic: Clinic) -> ClinicView:
    return ClinicView(clinic.name, clinic.address, clinic.booking_url, clinic.website)


def campaign_view(name: str, campaign: Campaign) -> CampaignView:
    return CampaignView(name, campaign.kind)


def client_view(row) -> ClientView:
    tags = tuple(tag for tag in (row.tags or "").split(";") if tag)
    return ClientView(row.id, row.first_name, row.last_name, row.email, tags)


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


def sample_client(now: datetime, zone: tzinfo) -> tuple[ClientView, VisitView, VisitView]:
    """A made-up client with a past and a booked visit, for ``check`` and empty segments."""
    local = now.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    return (
        ClientView("sample", "Alex", "Sample", "alex.sample@example.com", ("back-pain",)),
        VisitView((local - timedelta(weeks=8)).replace(hour=10), "remedial-massage", "Sam Carter"),
        VisitView((local + timedelta(days=1)).replace(hour=14), "back-pain-massage", "Sam Carter"),
    )


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
