"""``[sync]``: where the clinic's data come from, export files or Cliniko's API."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from campaigns.config.sections import Section, ServiceText
from campaigns.config.values import Duration, FilePath, RateValue
from campaigns.durations import Rate

_SHARD = re.compile(r"[a-z]{2}\d{1,2}")  # au1, uk1, ca1: Cliniko's readme, "Base URL & shards"


class Cliniko(Section):
    """``[sync.cliniko]``: pulling patients and appointments from Cliniko's API (campaigns/cliniko).

    The API key is never in the file (``load_settings`` refuses it there): it
    comes from REBOOK_SYNC__CLINIKO__API_KEY, as a systemd credential or an
    EnvironmentFile readable by rebook alone.
    """

    shard: str | None = None  # au1, uk1…: the end of the API key, unless written here
    base_url: str | None = None  # instead of the shard's https://api.SHARD.cliniko.com/v1
    api_key: SecretStr | None = None
    every: Duration = timedelta(minutes=15)
    full_every: Duration = timedelta(days=7)  # a full pull catches what updated_at never showed
    user_agent: str | None = None  # "App name (contact@address)"; made from [clinic] when unset
    rate_limit: RateValue = Rate(200, timedelta(minutes=1), "200/1m")  # Cliniko's limit per user
    consent: Literal["accepted", "unless-refused"] = "accepted"
    services: dict[str, ServiceText] = Field(default_factory=dict)  # type name -> service

    @field_validator("shard")
    @classmethod
    def _shard(cls, shard: str | None) -> str | None:
        if shard is not None and not _SHARD.fullmatch(shard.lower()):
            raise ValueError(
                f"expected a Cliniko shard like 'au1' or 'uk1' (the end of the API key), "
                f"got {shard!r}"
            )
        return None if shard is None else shard.lower()

    @field_validator("base_url")
    @classmethod
    def _api_address(cls, value: str | None) -> str | None:
        """The key goes with every request: only over HTTPS, except to this machine (a test)."""
        if value is None:
            return None
        parts = urlsplit(value)
        local = parts.hostname in ("localhost", "127.0.0.1", "::1")
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.query:
            example = "'https://api.au1.cliniko.com/v1'"
            raise ValueError(f"expected Cliniko's API address like {example}, got {value!r}")
        if parts.scheme != "https" and not local:
            raise ValueError(f"{value!r}: the API key would cross the network in clear; use https")
        if parts.username or parts.password:
            raise ValueError("the key comes from REBOOK_SYNC__CLINIKO__API_KEY, not the address")
        return value

    @field_validator("api_key")
    @classmethod
    def _key(cls, key: SecretStr | None) -> SecretStr | None:
        """Spaces or quotes around it (an env file's habit) would be sent and refused."""
        if key is None:
            return None
        text = key.get_secret_value().strip().strip("'\"").strip()
        if not text:
            raise ValueError("is empty: paste the key made in Cliniko (My Info, Manage API keys)")
        return SecretStr(text)

    @field_validator("user_agent")
    @classmethod
    def _contact(cls, value: str | None) -> str | None:
        """Cliniko blocks clients that give no name and contact address."""
        if value is not None and not re.fullmatch(r"[^()\r\n]+ \([^()\s]+@[^()\s]+\)", value):
            raise ValueError(
                f"expected 'App name (contact@address)', as Cliniko asks, got {value!r}"
            )
        return value

    @property
    def api_url(self) -> str:
        """The base URL: written, or the shard's (written, else the key's suffix, else au1)."""
        if self.base_url is not None:
            return self.base_url.rstrip("/")
        return f"https://api.{self.shard or self.key_shard or 'au1'}.cliniko.com/v1"

    @property
    def key_shard(self) -> str | None:
        """Cliniko's keys end in ``-au2``, the shard to call (readme, guides/sharding.md)."""
        if self.api_key is None:
            return None
        _, dash, suffix = self.api_key.get_secret_value().rpartition("-")
        return suffix.lower() if dash and _SHARD.fullmatch(suffix.lower()) else None


class Sync(Section):
    clients: FilePath | None = None
    visits: FilePath | None = None
    every: Duration = timedelta(minutes=15)
    cliniko: Cliniko | None = None
