"""What ``rebook check`` verifies beyond the config's own validation."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from campaigns.clients.segments import count_members
from campaigns.config import Settings
from campaigns.config.report import environment
from campaigns.store.tables import UNSPENT_STATUSES, client_tags, sends, visits


@dataclass
class SegmentCheck:
    name: str
    members: int
    campaigns: list[str]
    warnings: list[str] = field(default_factory=list)


def check_segments(connection: Connection, settings: Settings, now: datetime) -> list[SegmentCheck]:
    """Run every segment's query, and flag services and tags that no data has (likely typos)."""
    services = set(connection.execute(select(visits.c.service).distinct()).scalars())
    tags = set(connection.execute(select(client_tags.c.tag).distinct()).scalars())
    results = []
    for name, segment in settings.segments.items():
        result = SegmentCheck(
            name,
            count_members(connection, segment, now),
            [key for key, campaign in settings.campaigns.items() if campaign.segment == name],
        )
        if services:
            for service in sorted(set(segment.services or ()) - services):
                result.warnings.append(f"service {service!r} appears in no imported visit")
        if tags:
            for tag in sorted(set((segment.tags_any or []) + (segment.tags_none or [])) - tags):
                result.warnings.append(f"tag {tag!r} is on no imported client")
        results.append(result)
    return results


def check_ledger_names(connection: Connection, settings: Settings) -> list[str]:
    """Campaigns the ledger sent that the config no longer has: renamed ones send again.

    The ledger knows a campaign by its name; renamed, its clients are new to
    it. A name kept in some campaign's ``previous_names`` is accounted for.
    """
    known = set(settings.campaigns) | {
        old for campaign in settings.campaigns.values() for old in campaign.previous_names
    }
    query = (
        select(sends.c.campaign, func.count(sends.c.client_id.distinct()))
        .where(sends.c.status.not_in(UNSPENT_STATUSES))
        .group_by(sends.c.campaign)
        .order_by(sends.c.campaign)
    )
    return [
        f"the ledger holds campaign {name!r}, which {clients} client(s) had, and the config "
        f"no longer has it: if a campaign was renamed from it, add previous_names = "
        f'["{name}"] to that campaign, or its clients get it again under the new name '
        "(a campaign retired for good needs nothing)"
        for name, clients in connection.execute(query)
        if name not in known
    ]


def check_maildir(settings: Settings, config_path: Path) -> list[str]:
    """A maildir that cannot be made or written in defers every message: say so before a send."""
    if settings.mail.transport != "maildir":
        return []
    folder = settings.mail.maildir
    where = environment().get(("mail", "maildir"), str(config_path))
    nearest = next(path for path in (folder, *folder.parents) if path.exists())
    if not nearest.is_dir():
        what = "is" if nearest == folder else f"cannot be made: {nearest} is"
        return [f"{where}: mail.maildir: {folder} {what} a file, not a folder"]
    if not os.access(nearest, os.W_OK | os.X_OK):
        return [f"{where}: mail.maildir: {folder}: no permission to write in {nearest}"]
    return []


def check_public_url(settings: Settings) -> list[str]:
    """Warnings about the unsubscribe links' address when mail really leaves (SMTP).

    RFC 8058 one-click and Gmail want an https link that a mail provider can
    reach; a loopback or plain-http address works only for trying rebook out.
    """
    if settings.mail.transport != "smtp":
        return []
    url = urlsplit(settings.web.public_url)
    warnings = []
    if url.scheme != "https":
        warnings.append(
            f"web.public_url {settings.web.public_url!r} is not https: mail providers "
            "(Gmail, Yahoo) expect one-click unsubscribe links over https; put a TLS proxy "
            "in front of [web] listen (see the README) and set its address here"
        )
    host = (url.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost") or _loopback(host):
        warnings.append(
            f"web.public_url points at {host}, this machine: nobody who receives the "
            "mail can open its unsubscribe link"
        )
    return warnings


def check_relay_security(settings: Settings) -> list[str]:
    """Warnings when mail, or the relay's password, would cross a network unencrypted."""
    smtp = settings.smtp
    if settings.mail.transport != "smtp" or smtp.security != "none":
        return []
    if smtp.ca_file is not None:
        return [
            f"smtp.ca_file is set but smtp.security = 'none': the relay's certificate is "
            f"never checked; set security = 'starttls' or 'tls' to use {smtp.ca_file.name}"
        ]
    host = smtp.host.lower()
    if host == "localhost" or _loopback(host):
        return []
    sent = "the login and every message" if smtp.username else "every message"
    return [
        f"smtp.security = 'none' to {smtp.host}: {sent} crosses the network unencrypted; "
        "use 'starttls' (port 587) or 'tls' (port 465)"
    ]


def check_sync_sources(settings: Settings) -> list[str]:
    """Warnings about where the clinic's data come from: Cliniko without its key, or two sources."""
    sync = settings.sync
    if sync is None or sync.cliniko is None:
        return []
    warnings = []
    if sync.cliniko.api_key is None:
        warnings.append(
            "sync.cliniko: REBOOK_SYNC__CLINIKO__API_KEY is not set here: rebook sync and "
            "rebook run will refuse to start until it is"
        )
    if sync.clients is not None or sync.visits is not None:
        warnings.append(
            "sync.cliniko and sync.clients/visits are both set: Cliniko's ids and an export's "
            "may differ, and the same client would be two; use one source"
        )
    return warnings


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class DkimCheck:
    """The TXT record to publish for ``[dkim]``, and what would keep receivers from trusting it."""

    name: str
    value: str
    warnings: list[str]


def check_dkim(settings: Settings) -> DkimCheck | None:
    """Load the key as a run would; the record comes from it, so it matches what signs."""
    if settings.dkim is None:
        return None
    from campaigns.content.message import sender_from
    from campaigns.content.signing import DkimSigner

    name, value = DkimSigner(settings.dkim).dns_record()
    domain, sender = settings.dkim.domain, sender_from(settings.mail).domain.lower()
    warnings = []
    if sender != domain and not sender.endswith("." + domain):
        warnings.append(
            f"dkim.domain {domain!r} is not the From address's domain {sender!r}: DMARC "
            "(which Gmail and Yahoo require of bulk senders) wants the signing domain to "
            "match the From domain or be a parent of it"
        )
    return DkimCheck(name, value, warnings)
