"""Turning one CSV row of a practice-software export into a clean record.

Pure functions: each takes the row as a dict of strings and returns the
record to store, or raises ``ValueError`` with the reason a person can act on.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from functools import cache
from zoneinfo import available_timezones

from email_validator import EmailNotValidError, validate_email

from campaigns.store.tables import VISIT_STATUSES

CLIENT_COLUMNS = ("id", "email", "first_name", "last_name", "marketing_consent", "tags", "timezone")
VISIT_COLUMNS = ("id", "client_id", "starts_at", "service", "status", "therapist")
REQUIRED_CLIENT_COLUMNS = ("id", "email")
REQUIRED_VISIT_COLUMNS = ("id", "client_id", "starts_at", "service", "status")

_CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")
EXCERPT = 40  # characters of a cell shown in an error: enough to find it, never a screenful
FIRST_YEAR, LAST_YEAR = 1900, 2200  # a visit outside this is a typo, and years 1 and 9999
# overflow when converted to UTC or stored
_CONSENT = {
    "true": True, "yes": True, "y": True, "1": True,
    "false": False, "no": False, "n": False, "0": False,
    "": False,  # left blank: no consent given
}  # fmt: skip


def excerpt(text: str) -> str:
    """A cell as an error shows it: quoted, escaped (NULs, line breaks) and cut short."""
    keep = EXCERPT
    while len(repr(text[:keep])) > 2 * EXCERPT:  # an escape is up to 10 characters long
        keep //= 2
    if keep >= len(text):
        return repr(text)
    return f"{text[:keep]!r}… ({len(text)} characters)"


def _fields(row: dict[str, str | None], limits: dict[str, int], required: tuple[str, ...]):
    """The row's text fields, checked in one pass (this runs a million times).

    Values arrive trimmed; a column the file lacks reads as empty.
    """
    values = {key: row.get(key) or "" for key in limits}
    if _CONTROL.search("".join(values.values())):
        bad = next(key for key, value in values.items() if _CONTROL.search(value))
        raise ValueError(f"{bad} contains a line break or a control character")
    for key, limit in limits.items():
        if len(values[key]) > limit:
            raise ValueError(f"{key} is longer than {limit} characters")
    for key in required:
        if not values[key]:
            raise ValueError(f"{key} is empty")
    return values


def _check_id(key: str, text: str) -> None:
    """An id that looks like another (a space, an invisible character) would match nothing."""
    if not text.isprintable() or " " in text:
        raise ValueError(
            f"{key} {excerpt(text)} contains a space or an invisible character; "
            "ids are copied from the practice software as they are"
        )


def parse_email(text: str) -> str:
    """A syntactically valid address, lower-cased so that suppression matches any spelling."""
    if not text:
        raise ValueError("email is empty")
    try:
        valid = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        raise ValueError(
            f"email {excerpt(text)} is not a valid address: {str(error)[:200]}"
        ) from None
    return valid.normalized.lower()


def parse_consent(text: str) -> bool:
    try:
        return _CONSENT[text.strip().lower()]
    except KeyError:
        raise ValueError(
            f"marketing_consent {excerpt(text)} is not one of true/false, yes/no, 1/0"
        ) from None


def parse_tags(text: str) -> list[str]:
    """``"back-pain; VIP"`` → ``["back-pain", "vip"]``: trimmed, lower case, sorted, unique."""
    tags = sorted({tag.strip().lower() for tag in text.split(";") if tag.strip()})
    for tag in tags:
        if len(tag) > 100:
            raise ValueError(f"tag {tag[:20]!r}… is longer than 100 characters")
    return tags


@cache
def zone_names() -> frozenset[str]:
    """The IANA zones, minus names that exist on disk but mean "this machine" or "unset"."""
    return frozenset(available_timezones() - {"localtime", "Factory"})


def parse_zone(text: str) -> str | None:
    """An IANA name, spelled exactly (a folder like ``Australia`` or a path is not a zone)."""
    if not text:
        return None
    if text not in zone_names():
        raise ValueError(f"timezone {excerpt(text)} is not an IANA name like 'Australia/Perth'")
    return text


_CLIENT_LIMITS = {"id": 64, "email": 320, "first_name": 200, "last_name": 200,
                  "marketing_consent": 16, "tags": 2000, "timezone": 64}  # fmt: skip
_VISIT_LIMITS = {"id": 64, "client_id": 64, "starts_at": 40, "service": 200, "status": 16,
                 "therapist": 200}  # fmt: skip


def parse_client(row: dict[str, str | None]) -> dict:
    values = _fields(row, _CLIENT_LIMITS, ("id",))
    _check_id("id", values["id"])
    return {
        "id": values["id"],
        "email": parse_email(values["email"]),
        "first_name": values["first_name"],
        "last_name": values["last_name"],
        "marketing_consent": parse_consent(values["marketing_consent"]),
        "tags": ";".join(parse_tags(values["tags"])),
        "timezone": parse_zone(values["timezone"]),
    }


def parse_starts_at(text: str, clinic_zone: tzinfo) -> datetime:
    """ISO 8601; a time without an offset is the clinic's local time. Returned in UTC.

    A bare date is refused rather than read as midnight: a visit at midnight
    is almost surely an export that lost its times, and segments would
    misplace it by up to a day.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"starts_at {excerpt(text)} is not an ISO 8601 time like 2026-03-14T09:30 "
            "or 2026-03-14T09:30+08:00"
        ) from None
    if len(text) <= 10:  # YYYY-MM-DD, YYYYMMDD, YYYY-Www-D: a date and no time
        raise ValueError(
            f"starts_at {excerpt(text)} is a date without a time; write it like 2026-03-14T09:30"
        )
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise ValueError(
            f"starts_at {excerpt(text)} is not between the years {FIRST_YEAR} and {LAST_YEAR}"
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=clinic_zone)
    return moment.astimezone(UTC)


_STATUS_SPELLINGS = {status: status for status in VISIT_STATUSES} | {
    "no show": "no-show", "no_show": "no-show", "noshow": "no-show",
}  # fmt: skip


def parse_status(text: str) -> str:
    status = _STATUS_SPELLINGS.get(text) or _STATUS_SPELLINGS.get(text.lower())
    if status is None:
        raise ValueError(f"status {excerpt(text)} is not one of {', '.join(VISIT_STATUSES)}")
    return status


def parse_visit(row: dict[str, str | None], clinic_zone: tzinfo) -> dict:
    values = _fields(row, _VISIT_LIMITS, REQUIRED_VISIT_COLUMNS)
    _check_id("id", values["id"])
    _check_id("client_id", values["client_id"])
    values["starts_at"] = parse_starts_at(values["starts_at"], clinic_zone)
    values["status"] = parse_status(values["status"])
    return values
