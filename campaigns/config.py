"""The configuration: one validated object built from config.toml and REBOOK_ variables.

This module is the only one that reads the config file and the environment
(``config_report`` looks at the environment only to name the variable behind
a mistake).
Every model forbids unknown keys, so a typo such as ``max_atempts`` is an
error that names ``smtp.max_atempts`` instead of a setting silently ignored.
"""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from email.utils import getaddresses
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from campaigns.config_report import (
    ENV_PREFIX,
    Problem,
    Sources,
    environment,
    mask_secrets,
    problems_of,
)
from campaigns.durations import LONGEST, DailyWindow, Rate, format_duration, parse_duration
from campaigns.errors import ConfigError
from campaigns.schedules import Schedule

MOST_VISITS = 1_000_000  # a visit count rule beyond this fits no database integer sensibly
MIN_SECRET_BYTES = 16  # an HMAC key shorter than this can be guessed
_ADDR_SPEC = re.compile(r"^[^\s@<>()\[\],;:\\\"]+@[^\s@<>()\[\],;:\\\"]+$")
_CONTROL_OR_SPACE = re.compile(r"[\s\x00-\x1f\x7f]")


def _parsed(parser):
    """A validator that accepts an already-parsed value or the string form."""

    def validate(value: Any) -> Any:
        if isinstance(value, str):
            return parser(value)
        raise ValueError(f"expected a string, got {value!r}")

    return validate


def _zone(value: Any) -> ZoneInfo:
    if isinstance(value, ZoneInfo):
        return value
    try:
        return ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}: expected an IANA name like 'Australia/Perth'"
        ) from None


def _url(value: Any) -> str:
    """An absolute http(s) link that can go into an email as written."""
    text = str(value)
    parts = urlsplit(text)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or _CONTROL_OR_SPACE.search(text)
    ):
        example = "'https://clinic.example/book'"
        raise ValueError(f"expected an http(s) URL like {example}, got {mask_secrets(text)!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a link sent to clients cannot carry a user name or password")
    try:
        parts.port  # noqa: B018 - reading it is the check
    except ValueError:
        raise ValueError(f"the port of {text!r} is not a number up to 65535") from None
    return text


def _public_url(value: Any) -> str:
    """The base of unsubscribe links: it goes into a header, and a path is appended to it."""
    text = _url(value)
    parts = urlsplit(text)
    if not text.isascii():
        raise ValueError(
            f"{text!r} is not plain ASCII: write the domain in its IDNA form "
            f"('{_idna(parts.hostname or '')}') and percent-encode the path"
        )
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValueError(f"expected a base URL without '?' or '#', got {text!r}")
    return text


def _idna(domain: str) -> str:
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "xn--…"


def _address(value: Any) -> str:
    """One address, ASCII, as the sender side of every message needs it."""
    text = str(value)
    if "\r" in text or "\n" in text:
        raise ValueError("an address cannot contain a line break")
    found = [pair for pair in getaddresses([text]) if any(pair)]
    if len(found) != 1:
        raise ValueError(f"expected one address like 'Clinic <hello@clinic.example>', got {text!r}")
    _, address = found[0]
    if not _ADDR_SPEC.match(address):
        raise ValueError(f"expected an address like 'Clinic <hello@clinic.example>', got {text!r}")
    if not address.isascii():
        raise ValueError(_not_ascii(address))
    return text


def _not_ascii(address: str) -> str:
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        return (
            f"{address!r}: rebook's own addresses must be plain ASCII "
            "(a non-ASCII local part needs SMTPUTF8, which many servers lack)"
        )
    return (
        f"{address!r}: rebook's own addresses must be plain ASCII: "
        f"write the domain in its IDNA form, '{local}@{_idna(domain)}'"
    )


def _duration(value: Any) -> timedelta:
    return value if isinstance(value, timedelta) else _parsed(parse_duration)(value)


def _positive_duration(value: Any) -> timedelta:
    duration = _duration(value)
    if duration <= timedelta(0):
        raise ValueError(f"expected a duration longer than zero, got {value!r}")
    return duration


Duration = Annotated[
    timedelta,
    PlainValidator(_positive_duration),
    PlainSerializer(format_duration, return_type=str),
]
# A duration where zero means something: "last visit older than 0s" is any past visit.
Age = Annotated[
    timedelta, PlainValidator(_duration), PlainSerializer(format_duration, return_type=str)
]
RateValue = Annotated[
    Rate,
    PlainValidator(lambda v: v if isinstance(v, Rate) else _parsed(Rate.parse)(v)),
    PlainSerializer(str, return_type=str),
]
Window = Annotated[
    DailyWindow,
    PlainValidator(lambda v: v if isinstance(v, DailyWindow) else _parsed(DailyWindow.parse)(v)),
    PlainSerializer(str, return_type=str),
]
ScheduleValue = Annotated[
    Schedule,
    PlainValidator(lambda v: v if isinstance(v, Schedule) else _parsed(Schedule.parse)(v)),
    PlainSerializer(str, return_type=str),
]
TimeZone = Annotated[ZoneInfo, PlainValidator(_zone), PlainSerializer(str, return_type=str)]
Url = Annotated[str, PlainValidator(_url)]
PublicUrl = Annotated[str, PlainValidator(_public_url)]
Address = Annotated[str, PlainValidator(_address)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class Section(BaseModel):
    """Every table of the config: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Clinic(Section):
    name: str
    address: str
    timezone: TimeZone
    booking_url: Url
    website: Url | None = None


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


class Settings(BaseSettings):
    """All of config.toml, with REBOOK_SECTION__KEY environment variables winning."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    templates: Path = Path("templates")
    clinic: Clinic
    database: Database = Database()
    mail: Mail
    smtp: Smtp = Smtp()
    web: Web = Web()
    policy: Policy = Policy()
    service: ServiceSection = ServiceSection()
    sync: Sync | None = None
    segments: dict[Name, Segment] = {}
    campaigns: dict[Name, Campaign] = {}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)  # the first wins: environment over file


def load_settings(path: Path) -> Settings:
    """Read, validate and resolve the config at ``path``; raise ConfigError for any mistake."""
    data = read_toml(path)
    sources = Sources(path, environment())
    try:
        settings = Settings(**data)
    except ValidationError as error:
        raise ConfigError(sources.report(problems_of(error, sources))) from None
    except SettingsError as error:  # a REBOOK_ variable that should hold JSON does not
        raise ConfigError(sources.undecodable(error)) from None
    _check_references(sources, settings)
    return resolve_paths(settings, path.resolve().parent)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such config file (create one with 'rebook init DIR', "
            "or pass --config PATH or set REBOOK_CONFIG)"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read: {error}") from None


def _check_references(sources: Sources, settings: Settings) -> None:
    problems = [
        Problem(
            ("campaigns", name, "segment"),
            f"no segment named {campaign.segment!r} "
            f"(defined: {', '.join(sorted(settings.segments)) or 'none'})",
        )
        for name, campaign in settings.campaigns.items()
        if campaign.segment not in settings.segments
    ]
    if problems:
        raise ConfigError(sources.report(problems))


def resolve_paths(settings: Settings, base: Path) -> Settings:
    """Make every relative path relative to the config file's folder, not the working directory."""

    def resolved(value: Path) -> Path:
        return value if value.is_absolute() else base / value

    mail = settings.mail.model_copy(update={"maildir": resolved(settings.mail.maildir)})
    database = settings.database.model_copy(
        update={"url": _resolve_sqlite(settings.database.url, base)}
    )
    update: dict[str, Any] = {
        "templates": resolved(settings.templates),
        "mail": mail,
        "database": database,
    }
    if settings.sync is not None:
        update["sync"] = settings.sync.model_copy(
            update={
                key: resolved(getattr(settings.sync, key))
                for key in ("clients", "visits")
                if getattr(settings.sync, key) is not None
            }
        )
    return settings.model_copy(update=update)


_SQLITE_FILE = re.compile(r"^(sqlite(?:\+\w+)?:///)([^/?][^?]*)(\?.*)?$")


def _resolve_sqlite(url: str, base: Path) -> str:
    match = _SQLITE_FILE.match(url)
    if not match or match[2] == ":memory:":
        return url
    return f"{match[1]}{base / match[2]}{match[3] or ''}"
