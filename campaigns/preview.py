"""What a campaign would send one client, and template checks for ``rebook check``."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine

from campaigns.clients.lookup import (
    appointments_by_id,
    load_client,
    next_appointment,
    visit_views_for,
)
from campaigns.clients.segments import member_ids
from campaigns.config import Segment, Settings
from campaigns.content.addresses import envelope_address
from campaigns.content.calendar import CalendarMaker
from campaigns.content.context import Appointment, ClientView, client_view, sample_client
from campaigns.content.message import (
    MessageComposer,
    dkim_signer,
    new_message_id,
    sender_from,
)
from campaigns.content.plaintext import html_to_text
from campaigns.content.render import CampaignRenderer, Rendered
from campaigns.content.tokens import make_token, unsubscribe_url
from campaigns.delivery.audience import VISIT_KEY, Audience, reminds_visits
from campaigns.errors import RebookError, TemplateError, UserError
from campaigns.store.secrets import web_secret
from campaigns.store.tables import sends


@dataclass(frozen=True)
class Preview:
    client: ClientView
    rendered: Rendered
    message: bytes  # exactly as it would be sent
    note: str | None = None  # a warning: the preview is not of someone the campaign would send to
    chosen: str | None = None  # whom the preview is for, when the command chose


def preview_campaign(
    engine: Engine, settings: Settings, name: str, now: datetime, email: str | None = None
) -> Preview:
    """Render campaign ``name`` for the client with ``email``, or the first it would send to."""
    campaign = settings.campaigns[name]
    segment = settings.segments[campaign.segment]
    zone = settings.clinic.timezone
    renderer = CampaignRenderer(settings, name)
    reminder = reminds_visits(campaign, segment)
    note = chosen = key = appointment = None
    with engine.connect() as connection:
        if email is not None:
            row = load_client(connection, email=email)
            if row is None:
                raise UserError(f"no client has the email address {email!r}")
        else:
            row, key, chosen, note = first_recipient(
                connection, settings, name, renderer.articles, now
            )
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
            if key is not None and key.startswith(VISIT_KEY):  # the appointment it reminds of
                visit_id = key.removeprefix(VISIT_KEY)
                appointment = appointments_by_id(connection, [visit_id]).get(visit_id)
                next_visit = appointment.view(zone) if appointment else next_visit
            elif reminder:  # a client named by --client: their next booked visit
                appointment = next_appointment(connection, client.id, now)
        secret = web_secret(connection, settings.web.secret) if campaign.marketing else None
        article = next((a for a in renderer.articles if a.name == key), None) or next_article(
            connection, name, client.id, renderer.articles
        )
    link = (
        unsubscribe_url(settings.web.public_url, make_token(secret, client.id)) if secret else None
    )
    rendered = renderer.render(client, last_visit, next_visit, link, article)
    sender = sender_from(settings.mail, settings.bounces)
    attachment = None
    if appointment is not None:
        attachment = CalendarMaker(settings.clinic, sender, settings.services).attachment(
            appointment, now
        )
    try:
        message = MessageComposer(sender, dkim_signer(settings.dkim)).compose(
            rendered, to_name=client.full_name, to_email=envelope_address(client.email),
            message_id=new_message_id(sender), date=now, unsubscribe_url=link,
            attachment=attachment,
        )  # fmt: skip
    except RebookError as error:  # this client's data: a run fails their message alone
        problem = f"no message can be built for {client.email!r}: {error}"
        raise UserError(f"campaigns.{name}: {problem}") from None
    return Preview(client, rendered, message, note, chosen)


def first_recipient(connection, settings: Settings, name: str, articles: list, now: datetime):
    """The first client a run of ``name`` would send to now: (row, ledger key, chosen, note).

    Asks the run's own ``Audience`` (consent, suppression, the ledger, the
    marketing cap), so a preview shows what someone would really get. When
    nobody would get it, the segment's first member, and why nobody would.
    """
    campaign = settings.campaigns[name]
    segment = settings.segments[campaign.segment]
    series = [article.name for article in articles]
    audience = Audience(name, campaign, segment, now, series, settings.policy.max_marketing)
    first = connection.execute(audience.select().limit(1)).first()
    if first is not None:
        chosen = f"previewing for {first.email}, the first client this campaign would send to"
        return load_client(connection, client_id=first.id), first.key, chosen, None
    member = connection.execute(member_ids(segment, now).limit(1)).scalar()
    if member is None:
        return None, None, None, None
    row = load_client(connection, client_id=member)
    members, left_out = audience.explain(connection)
    why = "; ".join(f"{reason}: {count}" for reason, count in left_out.items())
    note = (
        f"this campaign would send to nobody now (segment {campaign.segment!r} has {members}; "
        f"{why}): previewing for {row.email}, the segment's first member"
    )
    return row, None, None, note


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
    """Render every campaign for a sample client, also without the visits it may lack.

    And once for a client the export gave no first name, the client a
    template forgets: it must render too.
    """
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
            continue
        try:
            for article in renderer.articles or [None]:
                renderer.render(nameless(client), last_visit, next_visit, link, article)
        except TemplateError as error:
            problems.append(TemplateError(f"{error} (for a client with no first name)"))
    return problems


# A line that starts with punctuation, or puts a space before it: "Hi ," or ", how is…".
STRAY_PUNCTUATION = re.compile(r"^\s*[,.;:!?]|\s[,.;:!?](?:\s|$)|,\s*,")


def nameless(client: ClientView) -> ClientView:
    return replace(client, first_name="")


def first_name_warnings(settings: Settings, now: datetime) -> list[str]:
    """Lines of each campaign that read badly for a client with no first name.

    Only what the missing name changes is looked at: the subject and the
    lines of the text and HTML parts that differ from a named client's, so a
    clinic's own punctuation elsewhere is never flagged.
    """
    warnings: list[str] = []
    client, last_visit, next_visit = sample_client(now, settings.clinic.timezone)
    link = unsubscribe_url(settings.web.public_url, "sample-token")
    for name in settings.campaigns:
        try:
            renderer = CampaignRenderer(settings, name)
            article = renderer.articles[0] if renderer.articles else None  # one template for all
            named = renderer.render(client, last_visit, next_visit, link, article)
            bare = renderer.render(nameless(client), last_visit, next_visit, link, article)
        except TemplateError:
            continue  # check_templates reports it
        found = [("the subject", bare.subject)] if bare.subject != named.subject else []
        for part, before, after in (
            ("text part", named.text, bare.text),
            ("HTML part", html_to_text(named.html), html_to_text(bare.html)),
        ):
            seen = set(before.splitlines())
            found += [
                (f"a line of the {part}", line) for line in after.splitlines() if line not in seen
            ]
        warnings += [
            f"campaigns.{name}: for a client with no first name {what} reads {text.strip()!r}: "
            "write it to read well without one, e.g. "
            "'Hi{% if client.first_name %} {{ client.first_name }}{% endif %},'"
            for what, text in found
            if STRAY_PUNCTUATION.search(text)
        ]
    return warnings
