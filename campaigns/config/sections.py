"""The tables of config.toml: one model per section, each refusing unknown keys."""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from campaigns.config.report import (
    mask_secrets,
)
from campaigns.config.values import (
    MIN_SECRET_BYTES,
    MOST_VISITS,
    Address,
    Age,
    Duration,
    PublicUrl,
    RateValue,
    ScheduleValue,
    TimeZone,
    Url,
    Window,
)
from campaigns.durations import LONGEST, Rate, format_duration


class Section(BaseModel):
    """Every table of the config: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Clinic(Section):
    name: str
    address: str
    timezone: TimeZone
    booking_url: Url
    website: Url | None = None
    # The exports give a visit's start only: its calendar entry ends this much later.
    appointment_length: Duration = timedelta(hours=1)


class Database(Section):
    url: str = "sqlite:///rebook.db"

    @field_validator("url")
    @classmethod
    def _known_backend(cls, url: str) -> str:
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        if url.startswith("postgresql+psycopg://"):
            return _postgresql_database(url)
        if _SQLITE_ANY.match(url):
            return _sqlite_file(url)
        raise ValueError(
            "expected 'sqlite:///FILE' or 'postgresql+psycopg://user@host/db', "
            f"got {mask_secrets(url)!r}"
        )

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


_SQLITE_ANY = re.compile(r"^sqlite(?:\+\w+)?://")


def _sqlite_file(url: str) -> str:
    """A file, never an in-memory database, which would lose every import when rebook exits."""
    parts = urlsplit(url)
    path = parts.path.removeprefix("/")
    if parts.netloc or not path or ":memory:" in path or "mode=memory" in parts.query:
        raise ValueError(
            f"{url!r} is not a database file (an in-memory database forgets every import "
            "when rebook exits): expected 'sqlite:///rebook.db' or 'sqlite:////abs/path.db'"
        )
    return url


def _postgresql_database(url: str) -> str:
    """Name the database: libpq would otherwise pick one after the user, silently."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - reading it is the check
    except ValueError:
        raise ValueError(f"the port in {mask_secrets(url)!r} is not a number") from None
    if not parts.path.strip("/") and "dbname=" not in parts.query:
        raise ValueError(
            f"{mask_secrets(url)!r} names no database: expected "
            "'postgresql+psycopg://user@host/DATABASE'"
        )
    return url


class Mail(Section):
    from_: Address = Field(alias="from")
    reply_to: Address | None = None
    transport: Literal["smtp", "maildir"] = "maildir"
    maildir: Path = Path("sent-mail")
    unsubscribe_mailto: Address | None = None


class Smtp(Section):
    host: str = "localhost"
    port: int = Field(587, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    timeout: Duration = timedelta(seconds=30)
    connections: int = Field(4, ge=1, le=64)
    rate_limit: RateValue | None = None
    max_attempts: int = Field(5, ge=1, le=100)
    retry_backoff: Duration = timedelta(minutes=1)

    @model_validator(mode="after")
    def _retries_end(self) -> Smtp:
        """The last retry waits retry_backoff doubled max_attempts - 2 times, +20% jitter."""
        longest = self.retry_backoff.total_seconds() * 2 ** max(self.max_attempts - 2, 0) * 1.2
        if longest > LONGEST.total_seconds():
            raise ValueError(
                f"retry_backoff {format_duration(self.retry_backoff)} doubling over "
                f"max_attempts = {self.max_attempts} tries would wait more than "
                f"{format_duration(LONGEST)} (100 years): lower max_attempts or retry_backoff"
            )
        return self


class Web(Section):
    public_url: PublicUrl = "http://127.0.0.1:8080"
    listen: str = "127.0.0.1:8080"
    secret: SecretStr | None = None
    # Requests per client address (jobs/iplimit.py says why these numbers).
    rate_limit_per_ip: RateValue = Rate(20, timedelta(seconds=1))
    burst_per_ip: int = Field(40, ge=1)
    # Peers whose X-Forwarded-For names the real client: the HTTPS proxy in front.
    trusted_proxies: list[str] = ["127.0.0.1", "::1"]

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, proxies: list[str]) -> list[str]:
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    f"expected IP addresses or networks like '127.0.0.1' or '10.0.0.0/8', "
                    f"got {proxy!r}"
                ) from None
        return proxies

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        """An empty or short key would let anyone sign unsubscribe links for anyone."""
        if secret is not None and len(secret.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"too short: the web secret signs unsubscribe links and needs at least "
                f"{MIN_SECRET_BYTES} bytes (make one with: python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'), or leave it unset for rebook to keep one "
                "in the database"
            )
        return secret

    @field_validator("listen")
    @classmethod
    def _host_port(cls, listen: str) -> str:
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected HOST:PORT like '127.0.0.1:8080', got {listen!r}")
        return listen


class Policy(Section):
    quiet_hours: Window | None = None
    max_marketing: RateValue | None = None


class ServiceSection(Section):
    """``[service]``: how ``rebook run`` behaves across downtime."""

    catch_up: Duration = timedelta(hours=24)  # a run missed while stopped runs once if this recent


class Sync(Section):
    clients: Path | None = None
    visits: Path | None = None
    every: Duration = timedelta(minutes=15)


class Segment(Section):
    """The rules of one segment; a client belongs when every rule given holds."""

    description: str = ""
    services: list[str] | None = Field(None, min_length=1)
    last_visit_older_than: Age | None = None
    last_visit_newer_than: Duration | None = None
    first_visit_newer_than: Duration | None = None
    visits_at_least: int | None = Field(None, ge=0, le=MOST_VISITS)
    visits_at_most: int | None = Field(None, ge=0, le=MOST_VISITS)
    booked: bool | None = None
    next_visit_within: Duration | None = None
    tags_any: list[str] | None = Field(None, min_length=1)
    tags_none: list[str] | None = Field(None, min_length=1)


class Campaign(Section):
    segment: str
    kind: Literal["marketing", "transactional"] = "marketing"
    template: str | None = None
    articles: list[str] | str | None = None
    subject: str | None = None
    schedule: ScheduleValue | None = None
    repeat_after: Duration | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _content(self) -> Campaign:
        if (self.template is None) == (self.articles is None):
            raise ValueError("give exactly one of 'template' or 'articles'")
        if self.template is not None and not self.subject:
            raise ValueError("a campaign with a 'template' needs a 'subject'")
        return self

    @property
    def marketing(self) -> bool:
        return self.kind == "marketing"
