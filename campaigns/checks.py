"""What ``rebook check`` verifies beyond the config's own validation."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Connection

from campaigns.clients.segments import count_members
from campaigns.config import Settings
from campaigns.config.report import environment
from campaigns.store.tables import client_tags, visits


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
