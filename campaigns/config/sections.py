"""The tables of config.toml: one model per section, each refusing unknown keys."""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from campaigns.config.keys import GENERATE, dkim_private_key
from campaigns.config.report import mask_url
from campaigns.config.values import (
    MIN_SECRET_BYTES,
    MOST_VISITS,
    Address,
    Age,
    DnsName,
    Duration,
    FilePath,
    Host,
    Listen,
    Name,
    PublicUrl,
    RateValue,
    ScheduleValue,
    Text,
    TimeZone,
    Url,
    Window,
)
from campaigns.durations import LONGEST, Rate, format_duration


class Section(BaseModel):
    """Every table of the config: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _phone(value: str) -> str:
    """A number as the clinic writes it ("08 9000 0000", "+61 8 9000 0000"), callable as dialled."""
    value = " ".join(value.split())
    digits = re.sub(r"\D", "", value)
    if not re.fullmatch(r"\+?[0-9 ().-]+", value) or not 6 <= len(digits) <= 15:
        raise ValueError(
            f"expected a phone number like '08 9000 0000' or '+61 8 9000 0000', got {value!r}"
        )
    return value


Phone = Annotated[str, AfterValidator(_phone)]


class Clinic(Section):
    name: Text
    address: Text
    timezone: TimeZone
    booking_url: Url
    website: Url | None = None
    # The exports give a visit's start only: its calendar entry ends this much later.
    appointment_length: Duration = timedelta(hours=1)
    phone: Phone | None = None  # shown in the footer, a tel: link in the HTML

    @property
    def phone_uri(self) -> str | None:
        """``tel:0890000000``: a URI has no spaces or brackets, only the digits and a leading +."""
        if self.phone is None:
            return None
        return "tel:" + ("+" if self.phone.startswith("+") else "") + re.sub(r"\D", "", self.phone)


SERVICE_TEXT = 60  # a slug or a name longer than this is not a service name but a mistake


def _service_text(value: str) -> str:
    """One short line: a service's slug in the export, or how it reads in an email."""
    value = value.strip()
    if not value:
        raise ValueError("expected a non-empty name")
    if len(value) > SERVICE_TEXT or _CONTROL.search(value):
        raise ValueError(f"expected one line of at most {SERVICE_TEXT} characters, got {value!r}")
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
ServiceText = Annotated[str, AfterValidator(_service_text)]
Services = dict[ServiceText, ServiceText]  # [services]: export slug = "name shown to clients"


class Database(Section):
    url: str = "sqlite:///rebook.db"

    @field_validator("url")
    @classmethod
    def _known_backend(cls, url: str) -> str:
        if _SQLITE_ANY.match(url):
            return _sqlite_file(url)
        _plain_userinfo(url)
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        if url.startswith("postgresql+psycopg://"):
            return _postgresql_database(url)
        raise ValueError(
            "expected 'sqlite:///FILE' or 'postgresql+psycopg://user@host/db', "
            f"got {mask_url(url)!r}"
        )

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


_SQLITE_ANY = re.compile(r"^sqlite(?:\+\w+)?://")
_NEEDS_ENCODING = re.compile(r"[@/?#\s]")


def _plain_userinfo(url: str) -> None:
    """A password holding '@', '/', '?', '#' or a space is read by every parser differently.

    SQLAlchemy ends it at its first '@' and takes the rest for the host, which
    psycopg then prints in its error ("failed to resolve host 'x9Secret@…'"):
    refused here, before any of them sees it, and never echoed.
    """
    _, separator, rest = url.partition("://")
    userinfo, at, _ = rest.rpartition("@")
    if separator and at and _NEEDS_ENCODING.search(userinfo):
        raise ValueError(
            f"{mask_url(url)!r}: the user name or password (before the last '@') holds '@', "
            "'/', '?', '#' or a space, which a URL must percent-encode: '@' as %40, '/' as "
            "%2F, '?' as %3F, '#' as %23, a space as %20"
        )


def _sqlite_file(url: str) -> str:
    """A file, never an in-memory database, which would lose every import when rebook exits."""
    parts = urlsplit(url)
    path = parts.path.removeprefix("/")
    if parts.netloc or not path or ":memory:" in path or "mode=memory" in parts.query:
        raise ValueError(
            f"{mask_url(url)!r} is not a database file (an in-memory database forgets every import "
            "when rebook exits): expected 'sqlite:///rebook.db' or 'sqlite:////abs/path.db'"
        )
    return url


def _postgresql_database(url: str) -> str:
    """Name the database: libpq would otherwise pick one after the user, silently."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - reading it is the check
    except ValueError:
        raise ValueError(f"the port in {mask_url(url)!r} is not a number") from None
    if not parts.path.strip("/") and "dbname=" not in parts.query:
        raise ValueError(
            f"{mask_url(url)!r} names no database: expected "
            "'postgresql+psycopg://user@host/DATABASE'"
        )
    return url


class Mail(Section):
    from_: Address = Field(alias="from")
    reply_to: Address | None = None
    transport: Literal["smtp", "maildir"] = "maildir"
    maildir: FilePath = Path("sent-mail")
    unsubscribe_mailto: Address | None = None


class Smtp(Section):
    host: Host = "localhost"
    port: int = Field(587, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: Text | None = None
    password: SecretStr | None = None
    timeout: Duration = timedelta(seconds=30)
    connections: int = Field(4, ge=1, le=64)
    rate_limit: RateValue | None = None
    max_attempts: int = Field(5, ge=1, le=100)
    retry_backoff: Duration = timedelta(minutes=1)
    ca_file: FilePath | None = None  # a private CA's PEM to verify the relay by (starttls, tls)

    @field_validator("password")
    @classmethod
    def _not_empty(cls, password: SecretStr | None) -> SecretStr | None:
        """An empty password would be sent and refused: a relay without login wants none."""
        if password is not None and not password.get_secret_value():
            raise ValueError("is empty: unset it for a relay that takes mail without a login")
        return password

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
    listen: Listen = "127.0.0.1:8080"
    # false: this process does not serve the endpoint, another (worker) on this machine does
    serve: bool = True
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


class Dkim(Section):
    """``[dkim]``: sign every message, so providers trust its From and its one-click unsubscribe.

    The key is ``private_key_file`` (read when the config loads) or the PEM
    itself in REBOOK_DKIM__PRIVATE_KEY, which wins, as the environment does.
    """

    domain: DnsName
    selector: DnsName
    private_key_file: FilePath | None = None
    private_key: SecretStr | None = None

    @field_validator("private_key")
    @classmethod
    def _rsa_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None:
            dkim_private_key(key.get_secret_value())
        return key

    @model_validator(mode="after")
    def _has_a_key(self) -> Dkim:
        if self.private_key_file is None and self.private_key is None:
            raise ValueError(
                "no key: set private_key_file (a PEM file made with: "
                f"{GENERATE}) or put the PEM itself in REBOOK_DKIM__PRIVATE_KEY"
            )
        return self

    @property
    def record_name(self) -> str:
        """Where receivers look up the public key (RFC 6376 3.6.2.1)."""
        return f"{self.selector}._domainkey.{self.domain}"


class Policy(Section):
    quiet_hours: Window | None = None
    max_marketing: RateValue | None = None


class ServiceSection(Section):
    """``[service]``: how ``rebook run`` behaves across downtime."""

    catch_up: Duration = timedelta(hours=24)  # a run missed while stopped runs once if this recent


class ReportSection(Section):
    """``[report]``: what ``rebook report`` counts as a booking that followed an email."""

    window: Duration = timedelta(days=14)  # a booking first seen this long after an email


class Segment(Section):
    """The rules of one segment; a client belongs when every rule given holds."""

    description: str = ""
    services: list[Text] | None = Field(None, min_length=1)
    last_visit_older_than: Age | None = None
    last_visit_newer_than: Duration | None = None
    first_visit_newer_than: Duration | None = None
    visits_at_least: int | None = Field(None, ge=0, le=MOST_VISITS)
    visits_at_most: int | None = Field(None, ge=0, le=MOST_VISITS)
    booked: bool | None = None
    next_visit_within: Duration | None = None
    tags_any: list[Text] | None = Field(None, min_length=1)
    tags_none: list[Text] | None = Field(None, min_length=1)


class Campaign(Section):
    segment: str
    kind: Literal["marketing", "transactional"] = "marketing"
    template: Text | None = None
    articles: list[Text] | Text | None = None
    subject: Text | None = None
    schedule: ScheduleValue | None = None
    repeat_after: Duration | None = None
    enabled: bool = True
    # A share of each run's audience kept back, unsent, as a control group (0: none).
    holdout: float = Field(0.0, ge=0.0, le=0.5)
    # Names it had before a rename: the ledger's rows under them count as this campaign's.
    previous_names: list[Name] = Field(default_factory=list)

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
