"""The configuration: one validated object built from config.toml and REBOOK_ variables.

This module is the only one that reads the config file and the environment.
Every model forbids unknown keys, so a typo such as ``max_atempts`` is an
error that names ``smtp.max_atempts`` instead of a setting silently ignored.
"""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from email.utils import parseaddr
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
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from campaigns.durations import DailyWindow, Rate, format_duration, parse_duration
from campaigns.errors import ConfigError
from campaigns.schedules import Schedule

ENV_PREFIX = "REBOOK_"


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
    parts = urlsplit(str(value))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"expected an http(s) URL like 'https://clinic.example/book', got {value!r}"
        )
    return str(value)


def _address(value: Any) -> str:
    text = str(value)
    if "\r" in text or "\n" in text:
        raise ValueError("an address cannot contain a line break")
    _, address = parseaddr(text)
    if "@" not in address or not address.rsplit("@", 1)[1]:
        raise ValueError(f"expected an address like 'Clinic <hello@clinic.example>', got {value!r}")
    return text


Duration = Annotated[
    timedelta,
    PlainValidator(lambda v: v if isinstance(v, timedelta) else _parsed(parse_duration)(v)),
    PlainSerializer(format_duration, return_type=str),
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
            return "postgresql+psycopg://" + url.split("://", 1)[1]
        if not (url.startswith("sqlite://") or url.startswith("postgresql+psycopg://")):
            raise ValueError(
                f"expected 'sqlite:///FILE' or 'postgresql+psycopg://user@host/db', got {url!r}"
            )
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


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


class Web(Section):
    public_url: Url = "http://127.0.0.1:8080"
    listen: str = "127.0.0.1:8080"
    secret: SecretStr | None = None

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


class Sync(Section):
    clients: Path | None = None
    visits: Path | None = None
    every: Duration = timedelta(minutes=15)


class Segment(Section):
    """The rules of one segment; a client belongs when every rule given holds."""

    description: str = ""
    services: list[str] | None = Field(None, min_length=1)
    last_visit_older_than: Duration | None = None
    last_visit_newer_than: Duration | None = None
    first_visit_newer_than: Duration | None = None
    visits_at_least: int | None = Field(None, ge=0)
    visits_at_most: int | None = Field(None, ge=0)
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
    try:
        settings = Settings(**data)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(path, error)) from None
    _check_references(path, settings)
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


def describe_validation_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: {error.error_count()} problem(s):"]
    for item in error.errors(include_url=False):
        key = ".".join(str(part) for part in item["loc"] if not str(part).startswith("function-"))
        lines.append(f"  {key or '(top level)'}: {_explain(item)}")
    return "\n".join(lines)


def _explain(item: dict[str, Any]) -> str:
    kind = item["type"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling against config.example.toml)"
    if kind == "missing":
        return "required key is missing"
    message = str(item["msg"]).removeprefix("Value error, ")
    if kind in ("literal_error", "string_pattern_mismatch"):
        return f"{message}, got {item.get('input')!r}"
    return message


def _check_references(path: Path, settings: Settings) -> None:
    problems = [
        f"  campaigns.{name}.segment: no segment named {campaign.segment!r} "
        f"(defined: {', '.join(sorted(settings.segments)) or 'none'})"
        for name, campaign in settings.campaigns.items()
        if campaign.segment not in settings.segments
    ]
    if problems:
        raise ConfigError("\n".join([f"{path}: {len(problems)} problem(s):", *problems]))


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
