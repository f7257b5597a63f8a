"""What a campaign would send one client, and template checks for ``rebook check``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine

from campaigns.clients.lookup import load_client, next_appointment, visit_views_for
from campaigns.clients.segments import member_ids
from campaigns.config import Segment, Settings
from campaigns.content.addresses import envelope_address
from campaigns.content.calendar import CalendarMaker
from campaigns.content.context import Appointment, ClientView, client_view, sample_client
from campaigns.content.message import MessageComposer, new_message_id, sender_from
from campaigns.content.render import CampaignRenderer, Rendered
from campaigns.content.tokens import make_token, unsubscribe_url
from campaigns.delivery.audience import reminds_visits
from campaigns.errors import RebookError, TemplateError, UserError
from campaigns.store.secrets import web_secret
from campaigns.store.tables import sends


@dataclass(frozen=True)
class Preview:
    client: ClientView
    rendered: Rendered
    message: bytes  # exactly as it would be sent
    note: str | None = None


def preview_campaign(
    engine: Engine, settings: Settings, name: str, now: datetime, email: str | None = None
) -> Preview:
    """Render campaign ``name`` for the client with ``email`` or the segment's first member."""
    campaign = settings.campaigns[name]
    segment = settings.segments[campaign.segment]
    zone = settings.clinic.timezone
    renderer = CampaignRenderer(settings, name)
    reminder = reminds_visits(campaign, segment)
    appointment = None
    note = None
    with engine.connect() as connection:
        if email is not None:
            row = load_client(connection, email=email)
            if row is None:
                raise UserError(f"no client has the email address {email!r}")
        else:
            first = connection.execute(member_ids(segment, now).limit(1)).scalar()
            row = load_client(connection, client_id=first) if first is not None else None
        if row is None:
            client, last_visit, next_visit = sample_client(now, zone)
            note = f"segment {campaign.segment!r} has no members now: showing a made-up client"
            if reminder:
                appointment = Appointment(
                    "sample", next_visit.starts_at, next_visit.service, next_visit.therapist, now
                )
        else:
            client = client_view(row)
            [(last_visit, next_visit)] = visit_views_for(
                connection, [client.id], segment, now, zone
            ).values()
            if reminder:  # the visit a run would remind them of first
                appointment = next_appointment(connection, client.id, now)
        secret = web_secret(connection, settings.web.secret) if campaign.marketing else None
        article = next_article(connection, name, client.id, renderer.articles)
    link = (
        unsubscribe_url(settings.web.public_url, make_token(secret, client.id)) if secret else None
    )
    rendered = renderer.render(client, last_visit, next_visit, link, article)
    sender = sender_from(settings.mail)
    attachment = None
    if appointment is not None:
        attachment = CalendarMaker(settings.clinic, sender).attachment(appointment, now)
    try:
        message = MessageComposer(sender).compose(
            rendered, to_name=client.full_name, to_email=envelope_address(client.email),
            message_id=new_message_id(sender), date=now, unsubscribe_url=link,
            attachment=attachment,
        )  # fmt: skip
    except RebookError as error:  # this client's data: a run fails their message alone
        problem = f"no message can be built for {client.email!r}: {error}"
        raise UserError(f"campaigns.{name}: {problem}") from None
    return Preview(client, rendered, message, note)


def next_article(connection, campaign: str, client_id: str, articles: list):
    """The first article of a series this client has not had (the last one if they had all)."""
    if not articles:
        return None
    had = set(
        connection.execute(
            select(sends.c.key).where(sends.c.campaign == campaign, sends.c.client_id == client_id)
        ).scalars()
    )
    return next((article for article in articles if article.name not in had), articles[-1])


def guaranteed_visits(segment: Segment) -> tuple[bool, bool]:
    """Whether every member has a last attended visit, and a booked next one."""
    has_last = bool(
        segment.last_visit_older_than
        or segment.last_visit_newer_than
        or segment.first_visit_newer_than
        or segment.visits_at_least
    )
    has_next = bool(segment.booked or segment.next_visit_within)
    return has_last, has_next


def check_templates(settings: Settings, now: datetime) -> list[TemplateError]:
    """Render every campaign for a sample client, also without the visits it may lack."""
    problems: list[TemplateError] = []
    client, last_visit, next_visit = sample_client(now, settings.clinic.timezone)
    link = unsubscribe_url(settings.web.public_url, "sample-token")
    for name, campaign in settings.campaigns.items():
        has_last, has_next = guaranteed_visits(settings.segments[campaign.segment])
        variants = {
            (last_visit, next_visit),
            (last_visit if has_last else None, next_visit if has_next else None),
        }
        try:
            renderer = CampaignRenderer(settings, name)
            for article in renderer.articles or [None]:
                for last, upcoming in variants:
                    renderer.render(client, last, upcoming, link, article)
        except TemplateError as error:
            problems.append(error)
    return problems
