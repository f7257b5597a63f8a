"""The configuration: one validated object built from config.toml and REBOOK_ variables.

This package is the only place that reads the config file and the
environment (``report`` looks at the environment only to name the variable
behind a mistake). ``values`` holds the value types, ``sections`` the
models of each table, this module the whole and its loading. Every model
forbids unknown keys, so a typo such as ``max_atempts`` is an error that
names ``smtp.max_atempts`` instead of a setting silently ignored.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from campaigns.config.bounces import Bounces, Imap
from campaigns.config.files import check_regular, read_regular
from campaigns.config.keys import check_ca_file, dkim_private_key, read_text
from campaigns.config.report import (
    ENV_PREFIX,
    Problem,
    Sources,
    environment,
    problems_of,
)
from campaigns.config.sections import (
    Campaign,
    Clinic,
    Database,
    Dkim,
    Mail,
    Policy,
    ReportSection,
    Segment,
    Services,
    ServiceSection,
    Smtp,
    Web,
)
from campaigns.config.sync import Cliniko, Sync
from campaigns.config.values import FilePath, Name
from campaigns.errors import ConfigError

__all__ = [
    "API_KEY_VARIABLE", "Bounces", "Campaign", "Clinic", "Cliniko", "Database", "Dkim", "Imap",
    "Mail", "Policy", "ReportSection", "Segment", "ServiceSection", "Settings", "Smtp", "Sync",
    "Web", "load_settings", "read_toml", "resolve_paths",
]  # fmt: skip


class Settings(BaseSettings):
    """All of config.toml, with REBOOK_SECTION__KEY environment variables winning."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    templates: FilePath = Path("templates")
    clinic: Clinic
    services: Services = {}
    database: Database = Database()
    mail: Mail
    smtp: Smtp = Smtp()
    web: Web = Web()
    policy: Policy = Policy()
    service: ServiceSection = ServiceSection()
    report: ReportSection = ReportSection()
    sync: Sync | None = None
    bounces: Bounces | None = None
    dkim: Dkim | None = None
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
    _check_no_secret_in_file(data, sources)
    try:
        settings = Settings(**data)
    except ValidationError as error:
        raise ConfigError(sources.report(problems_of(error, sources))) from None
    except SettingsError as error:  # a REBOOK_ variable that should hold JSON does not
        raise ConfigError(sources.undecodable(error)) from None
    _check_references(sources, settings)
    _check_cliniko_key(data, sources, settings)
    return _read_files(sources, resolve_paths(settings, path.resolve().parent))


def read_toml(path: Path) -> dict[str, Any]:
    try:
        data = read_regular(path, "a config file")
    except ValueError as error:
        if not os.path.lexists(path):
            raise ConfigError(
                f"{path}: no such config file (create one with 'rebook init DIR', "
                "or pass --config PATH or set REBOOK_CONFIG)"
            ) from None
        raise ConfigError(str(error)) from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: cannot read: not UTF-8 text ({error.reason})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None


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
    problems += _previous_names_problems(settings)
    if problems:
        raise ConfigError(sources.report(problems))


def _previous_names_problems(settings: Settings) -> list[Problem]:
    """A previous name is history no campaign of the config still writes, claimed once."""
    problems, claimed = [], {}
    for name, campaign in settings.campaigns.items():
        loc = ("campaigns", name, "previous_names")
        for old in campaign.previous_names:
            if old in settings.campaigns:
                problems.append(Problem(loc, (
                    f"{old!r} is a campaign of this config: only a name no campaign uses any "
                    "more can carry its history over"
                )))  # fmt: skip
            elif old in claimed and claimed[old] != name:
                problems.append(Problem(loc, f"{old!r} is a previous name of {claimed[old]} too"))
            claimed.setdefault(old, name)
    return problems


API_KEY_VARIABLE = f"{ENV_PREFIX}SYNC__CLINIKO__API_KEY"
# Each secret a config file could hold, and what to do when a shared file held it.
_SECRETS = {
    ("smtp", "password"): "change the password at your mail provider",
    ("web", "secret"): "make a new one too: anyone holding the old one can sign unsubscribe links",
    ("dkim", "private_key"): "make a new key under a new selector (see the README's DKIM section)",
    ("sync", "cliniko", "api_key"): "make a new key in Cliniko and delete this one",
    ("bounces", "imap", "password"): "change the bounce mailbox's password",
}


def _check_no_secret_in_file(data: dict[str, Any], sources: Sources) -> None:
    """Secrets are never written in config.toml, which gets copied, shared and committed.

    The Cliniko key opens every patient record, the SMTP password sends as the
    clinic, the DKIM key signs as it, the web secret unsubscribes anyone: each
    belongs in rebook's environment (a file only rebook's user reads).
    """
    problems = []
    for loc, rotate in _SECRETS.items():
        table: Any = data
        for part in loc[:-1]:
            table = table.get(part) if isinstance(table, dict) else None
        if isinstance(table, dict) and loc[-1] in table:
            variable = ENV_PREFIX + "__".join(loc).upper()
            problems.append(Problem(loc, (
                f"a secret is never written in the config file: remove it and set {variable} "
                f"in rebook's environment instead; if this file was shared, {rotate}"
            )))  # fmt: skip
    if problems:
        raise ConfigError(sources.report(problems))


def _check_cliniko_key(data: dict[str, Any], sources: Sources, settings: Settings) -> None:
    """A key in the environment without a ``[sync.cliniko]`` table in the file is refused.

    It would start a sync nobody wrote down.
    """
    written = data.get("sync") if isinstance(data.get("sync"), dict) else {}
    table = written.get("cliniko") if isinstance(written.get("cliniko"), dict) else None
    if table is None and settings.sync is not None and settings.sync.cliniko is not None:
        raise ConfigError(
            f"environment: {API_KEY_VARIABLE} (or another REBOOK_SYNC__CLINIKO__ variable) is "
            f"set, but {sources.path} has no [sync.cliniko] table: add one to sync from Cliniko, "
            "or unset the variable"
        )


def _read_files(sources: Sources, settings: Settings) -> Settings:
    """Check the files the config names and read the DKIM key now: a wrong one is a mistake.

    Export files and the templates folder may come later, but what is there
    must be of the right kind: a FIFO or a device would hang a read.
    """
    problems, update = _check_paths(settings), {}
    if settings.smtp.ca_file is not None:
        try:
            check_ca_file(settings.smtp.ca_file)
        except ValueError as error:
            problems.append(Problem(("smtp", "ca_file"), str(error)))
    dkim = settings.dkim
    if dkim is not None and dkim.private_key is None and dkim.private_key_file is not None:
        try:
            pem = read_text(dkim.private_key_file, "a PEM key file")
            dkim_private_key(pem)
        except ValueError as error:
            problems.append(Problem(("dkim", "private_key_file"), _in_file(error, dkim)))
        else:
            update["dkim"] = dkim.model_copy(update={"private_key": SecretStr(pem)})
    if problems:
        raise ConfigError(sources.report(problems))
    return settings.model_copy(update=update) if update else settings


def _check_paths(settings: Settings) -> list[Problem]:
    problems = []
    if settings.templates.exists() and not settings.templates.is_dir():
        problems.append(Problem(("templates",), f"{settings.templates} is not a folder"))
    for kind in ("clients", "visits"):
        path = getattr(settings.sync, kind, None) if settings.sync is not None else None
        if path is not None:
            try:
                check_regular(path, "an export file")
            except ValueError as error:
                problems.append(Problem(("sync", kind), str(error)))
    return problems


def _in_file(error: ValueError, dkim: Dkim) -> str:
    text = str(error)
    return text if str(dkim.private_key_file) in text else f"{dkim.private_key_file}: {text}"


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
    if settings.smtp.ca_file is not None:
        update["smtp"] = settings.smtp.model_copy(
            update={"ca_file": resolved(settings.smtp.ca_file)}
        )
    if settings.dkim is not None and settings.dkim.private_key_file is not None:
        update["dkim"] = settings.dkim.model_copy(
            update={"private_key_file": resolved(settings.dkim.private_key_file)}
        )
    if settings.sync is not None:
        update["sync"] = settings.sync.model_copy(
            update={
                key: resolved(getattr(settings.sync, key))
                for key in ("clients", "visits")
                if getattr(settings.sync, key) is not None
            }
        )
    if settings.bounces is not None:
        update["bounces"] = _resolve_bounces(settings.bounces, resolved)
    return settings.model_copy(update=update)


def _resolve_bounces(bounces: Bounces, resolved) -> Bounces:
    changed: dict[str, Any] = {}
    if bounces.maildir is not None:
        changed["maildir"] = resolved(bounces.maildir)
    if bounces.imap is not None and bounces.imap.ca_file is not None:
        changed["imap"] = bounces.imap.model_copy(
            update={"ca_file": resolved(bounces.imap.ca_file)}
        )
    return bounces.model_copy(update=changed)


_SQLITE_FILE = re.compile(r"^(sqlite(?:\+\w+)?:///)([^/?][^?]*)(\?.*)?$")


def _resolve_sqlite(url: str, base: Path) -> str:
    match = _SQLITE_FILE.match(url)
    if not match or match[2] == ":memory:":
        return url
    return f"{match[1]}{base / match[2]}{match[3] or ''}"
