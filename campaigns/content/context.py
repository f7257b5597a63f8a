"""What a template sees: plain, read-only views of a client, their visits, the clinic.

Templates run sandboxed; they get these small frozen objects, never database
rows or settings, so a template can read ``client.first_name`` and nothing
it should not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from campaigns.config import Campaign, Clinic


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
    service: str  # the export's slug ("back-pain-massage"): for comparing, not for showing
    therapist: str
    service_name: str = ""  # how the service reads in an email: set by ``ServiceNames.visit``


class ServiceNames:
    """How the export's service slugs read in an email: ``[services]``, else dashes as spaces."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = dict(names)

    def __call__(self, slug: str) -> str:
        return self.names.get(slug) or " ".join(slug.replace("-", " ").replace("_", " ").split())

    def visit(self, visit: VisitView | None) -> VisitView | None:
        """The visit with its ``service_name`` filled in (templates show that, never the slug)."""
        if visit is None:
            return None
        name = self.names.get(visit.service)  # the constructor: a third of replace()'s cost
        if name is None:
            name = self.names[visit.service] = self(visit.service)
        return VisitView(visit.starts_at, visit.service, visit.therapist, name)


@dataclass(frozen=True)
class Appointment:
    """The booked visit an appointment reminder is for, as its calendar entry needs it.

    Not a template view: templates see it as ``next_visit``. ``revised_at``
    is the visit row's ``updated_at``, which an import moves only when a
    value of the visit changed.
    """

    visit_id: str
    starts_at: datetime  # aware
    service: str
    therapist: str
    revised_at: datetime

    def view(self, zone: tzinfo) -> VisitView:
        return VisitView(self.starts_at.astimezone(zone), self.service, self.therapist)


@dataclass(frozen=True)
class ClinicView:
    name: str
    address: str
    booking_url: str
    website: str | None
    phone: str | None = None
    phone_uri: str | None = None  # ``tel:0890000000``, for the footer's link


@dataclass(frozen=True)
class CampaignView:
    name: str
    kind: str


def clinic_view(clinic: Clinic) -> ClinicView:
    return ClinicView(
        clinic.name, clinic.address, clinic.booking_url, clinic.website,
        clinic.phone, clinic.phone_uri,
    )  # fmt: skip


def campaign_view(name: str, campaign: Campaign) -> CampaignView:
    return CampaignView(name, campaign.kind)


def client_view(row) -> ClientView:
    tags = tuple(tag for tag in (row.tags or "").split(";") if tag)
    return ClientView(row.id, row.first_name, row.last_name, row.email, tags)


def sample_client(now: datetime, zone: tzinfo) -> tuple[ClientView, VisitView, VisitView]:
    """A made-up client with a past and a booked visit, for ``check`` and empty segments."""
    local = now.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    return (
        ClientView("sample", "Alex", "Sample", "alex.sample@example.com", ("back-pain",)),
        VisitView((local - timedelta(weeks=8)).replace(hour=10), "remedial-massage", "Sam Carter"),
        VisitView((local + timedelta(days=1)).replace(hour=14), "back-pain-massage", "Sam Carter"),
    )
