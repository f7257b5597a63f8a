"""The value types of the config: durations, rates, time zones, URLs, addresses, names.

Each is a pydantic ``Annotated`` type whose validator says, in the owner's
words, what was expected; ranges are checked here, where the value is read,
so ``rebook check`` catches what would otherwise fail a run.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from email.utils import getaddresses
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
)

from campaigns.config.report import (
    mask_secrets,
)
from campaigns.durations import DailyWindow, Rate, format_duration, parse_duration
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


def _text(value: str) -> str:
    """Text that must say something: an empty clinic name or relay host is a mistake."""
    value = value.strip()
    if not value:
        raise ValueError("is empty: write a value, or leave the key out where it is optional")
    return value


def _host(value: str) -> str:
    """A name or an address, as a socket takes it: no scheme, no port, no brackets."""
    value = _text(value)
    if _CONTROL_OR_SPACE.search(value):
        raise ValueError(f"expected a host name or address like 'smtp.example.net', got {value!r}")
    if "://" in value or "/" in value:
        raise ValueError(f"expected the host alone, like 'smtp.example.net', not a URL: {value!r}")
    if value.startswith("[") or value.endswith("]"):
        raise ValueError(f"write an IPv6 address without brackets ('::1'), got {value!r}")
    if value.count(":") == 1:  # one colon: a port; an IPv6 address has two or more
        raise ValueError(f"expected the host alone, got {value!r}: put the port in the port key")
    return value


def _path(value: str) -> Path:
    """An empty path would name the config file's own folder: never what was meant."""
    return Path(_text(value))


Text = Annotated[str, AfterValidator(_text)]
Host = Annotated[str, AfterValidator(_host)]
FilePath = Annotated[Path, BeforeValidator(lambda v: _path(v) if isinstance(v, str) else v)]


def _dns_name(value: Any) -> str:
    """A DKIM domain or selector: DNS labels in ASCII, as they go into the d= and s= tags."""
    text = str(value).strip().rstrip(".").lower()
    if not text.isascii():
        raise ValueError(f"{text!r} is not plain ASCII: write its IDNA form ('{_idna(text)}')")
    if not _DNS_NAME.match(text) or len(text) > 253:
        raise ValueError(f"expected a DNS name like 'waso.example' or 'rebook1', got {text!r}")
    return text


_DNS_NAME = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")
DnsName = Annotated[str, PlainValidator(_dns_name)]


LISTEN_EXAMPLE = "like '127.0.0.1:8080', '[::1]:8080' or 'localhost:8080'"


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` as (host, port); a ValueError says what was expected.

    The host is an IP address or a DNS name; whether it is one of this
    machine's is known only by binding it (``rebook check`` and ``rebook run``).
    """
    text = str(listen).strip()
    host, colon, port = text.rpartition(":")
    if not colon or not host:
        raise ValueError(f"expected HOST:PORT {LISTEN_EXAMPLE}, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        try:
            host = str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address, in {text!r}") from None
    elif ":" in host:
        raise ValueError(f"an IPv6 address goes in brackets ('[::1]:8080'), got {text!r}")
    elif not _DNS_NAME.match(host.lower()) or len(host) > 253:  # IPv4 addresses match too
        raise ValueError(
            f"{host!r} is neither an IP address nor a host name, in {text!r}: "
            f"expected HOST:PORT {LISTEN_EXAMPLE}"
        )
    if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"the port {port!r} is not a number from 1 to 65535, in {text!r}")
    return host, int(port)


def _listen(value: Any) -> str:
    split_listen(value)
    return str(value).strip()


Listen = Annotated[str, PlainValidator(_listen)]
