"""Turning one CSV row of a practice-software export into a clean record.

Pure functions: each takes the row as a dict of strings and returns the
record to store, or raises ``ValueError`` with the reason a person can act on.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from campaigns.tables import VISIT_STATUSES

CLIENT_COLUMNS = ("id", "email", "first_name", "last_name", "marketing_consent", "tags", "timezone")
VISIT_COLUMNS = ("id", "client_id", "starts_at", "service", "status", "therapist")
REQUIRED_CLIENT_COLUMNS = ("id", "email")
REQUIRED_VISIT_COLUMNS = ("id", "client_id", "starts_at", "service", "status")

_CONSENT = {
    "true": True, "yes": True, "y": True, "1": True,
    "false": False, "no": False, "n": False, "0": False,
    "": False,  # left blank: no consent given
}  # fmt: skip


def _text(row: dict[str, str | None], key: str, limit: int = 200) -> str:
    value = (row.get(key) or "").strip()
    if "\r" in value or "\n" in value:
        raise ValueError(f"{key} contains a line break")
    if len(value) > limit:
        raise ValueError(f"{key} is longer than {limit} characters")
    return value


def _required(row: dict[str, str | None], key: str, limit: int = 64) -> str:
    value = _text(row, key, limit)
    if not value:
        raise ValueError(f"{key} is empty")
    return value


def parse_email(text: str) -> str:
    """A syntactically valid address, lower-cased so that suppression matches any spelling."""
    if not text:
        raise ValueError("email is empty")
    try:
        valid = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        raise ValueError(f"email {text!r} is not a valid address: {error}") from None
    return valid.normalized.lower()


def parse_consent(text: str) -> bool:
    try:
        return _CONSENT[text.strip().lower()]
    except KeyError:
        raise ValueError(
            f"marketing_consent {text!r} is not one of true/false, yes/no, 1/0"
        ) from None


def parse_tags(text: str) -> list[str]:
    """``"back-pain; VIP"`` → ``["back-pain", "vip"]``: trimmed, lower case, sorted, unique."""
    tags = sorted({tag.strip().lower() for tag in text.split(";") if tag.strip()})
    for tag in tags:
        if len(tag) > 100:
            raise ValueError(f"tag {tag[:20]!r}… is longer than 100 characters")
    return tags


def parse_zone(text: str) -> str | None:
    if not text:
        return None
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone {text!r} is not an IANA name like 'Australia/Perth'") from None
    return text


def parse_client(row: dict[str, str | None]) -> dict:
    tags = parse_tags(_text(row, "tags", 2000))
    return {
        "id": _required(row, "id"),
        "email": parse_email(_text(row, "email", 320)),
        "first_name": _text(row, "first_name"),
        "last_name": _text(row, "last_name"),
        "marketing_consent": parse_consent(row.get("marketing_consent") or ""),
        "tags": ";".join(tags),
        "timezone": parse_zone(_text(row, "timezone", 64)),
    }


def parse_starts_at(text: str, clinic_zone: tzinfo) -> datetime:
    """ISO 8601; a time without an offset is the clinic's local time. Returned in UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"starts_at {text!r} is not an ISO 8601 time like 2026-03-14T09:30 "
            "or 2026-03-14T09:30+08:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=clinic_zone)
    return moment.astimezone(UTC)


def parse_status(text: str) -> str:
    status = text.strip().lower().replace("_", "-").replace(" ", "-")
    if status == "noshow":
        status = "no-show"
    if status not in VISIT_STATUSES:
        raise ValueError(f"status {text!r} is not one of {', '.join(VISIT_STATUSES)}")
    return status


def parse_visit(row: dict[str, str | None], clinic_zone: tzinfo) -> dict:
    return {
        "id": _required(row, "id"),
        "client_id": _required(row, "client_id"),
        "starts_at": parse_starts_at(_required(row, "starts_at"), clinic_zone),
        "service": _required(row, "service", 200),
        "status": parse_status(_required(row, "status", 16)),
        "therapist": _text(row, "therapist"),
    }
