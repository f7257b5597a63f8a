"""Cliniko's records as rebook's rows: pure functions, each mapping cited to Cliniko's docs.

"sections/X.md" below is a page of github.com/redguava/cliniko-api (the
documented shapes); "portal" is docs.api.cliniko.com, which replaced it in
2022. A record is first written as the strings a CSV row would hold and
then checked by ``csv_rows``, so a patient from the API and a line of an
export meet the same rules (lengths, control characters, address syntax).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from campaigns.clients import csv_rows
from campaigns.config.sections import SERVICE_TEXT


@dataclass(frozen=True)
class Names:
    """Appointment types and practitioners by id: appointments only link to them."""

    services: Mapping[str, str]  # appointment type id -> the service rebook calls it
    therapists: Mapping[str, str]  # practitioner id -> the name shown


def as_record(row: object) -> dict:
    """A row of a listing: a JSON object, or a row to reject (a null, a number, a list)."""
    if not isinstance(row, dict):
        raise ValueError(f"is not a JSON object but {csv_rows.excerpt(repr(row))}")
    return row


def linked_id(record: dict, key: str | None = None) -> str:
    """The id at the end of ``record[key].links.self`` (or ``record.links.self``).

    sections/individual_appointments.md: an appointment names its patient,
    type and practitioner only as ``{"links": {"self": ".../patients/82"}}``;
    sections/patients.md "Get Deleted Patients": a deleted patient is only
    ``deleted_at`` and its ``links.self``.
    """
    try:
        link = (record[key] if key else record)["links"]["self"]
        found = link.rpartition("/")[2]
    except (KeyError, TypeError, AttributeError):
        raise ValueError(f"has no {key or 'self'} link") from None
    if not found:
        raise ValueError(f"{key or 'self'} link {csv_rows.excerpt(link)} names no id")
    return found


def _set(value: object) -> bool:
    """sections/patients.md writes unset times as ``""``; the portal says ``null``."""
    return value not in (None, "")


def _text(value: object) -> str:
    """A text field; anything else (a list, a number, true) is no text at all, not its repr."""
    return value.strip() if isinstance(value, str) else ""


def consents(patient: dict, rule: str) -> bool:
    """Marketing email is allowed for this patient now.

    ``accepted_email_marketing`` (sections/patients.md "Get Patients"; the
    portal types it boolean or null): with the rule ``accepted``, only
    ``true`` consents; with ``unless-refused`` (an account that never asked),
    only ``false`` refuses. An archived, merged or deleted patient never
    consents (sections/patients.md "Get Archived Patients": ``archived_at``,
    ``merged_at``; "Get Deleted Patients": ``deleted_at``).
    """
    if any(_set(patient.get(key)) for key in ("archived_at", "merged_at", "deleted_at")):
        return False
    answer = patient.get("accepted_email_marketing")
    return answer is True if rule == "accepted" else answer is not False


def client_record(patient: dict, rule: str) -> dict | None:
    """The client row of a patient; None when it has no email address (nothing to send to).

    Fields: ``id``, ``email``, ``first_name``, ``last_name``, ``time_zone``
    (sections/patients.md "Get Patients"; the portal types ``id`` as a
    string of an int64, the old docs as a number: both are read as text).
    ``preferred_first_name`` wins for the greeting when set. Tags are left
    out: Cliniko has none, and tags from an earlier CSV import stay.
    """
    if not _text(patient.get("email")):
        return None
    zone = _text(patient.get("time_zone"))
    row = {
        "id": cliniko_id(patient.get("id"), "id"),
        "email": _text(patient.get("email")),
        "first_name": _text(patient.get("preferred_first_name") or patient.get("first_name")),
        "last_name": _text(patient.get("last_name")),
        "marketing_consent": "true" if consents(patient, rule) else "false",
        # the portal: "a valid IANA time zone identifier … or null"; anything else is ignored
        "timezone": zone if zone in csv_rows.zone_names() else "",
    }
    record = csv_rows.parse_client(row)
    del record["tags"]
    return record


def visit_status(appointment: dict, starts_at: datetime, now: datetime) -> str:
    """sections/individual_appointments.md: ``deleted_at`` or ``cancelled_at`` set → cancelled
    (a deleted booking must not get a reminder, and is no visit); ``did_not_arrive`` → no-show;
    ``patient_arrived``, or a start already past → attended; else booked.
    """
    if _set(appointment.get("deleted_at")) or _set(appointment.get("cancelled_at")):
        return "cancelled"
    if appointment.get("did_not_arrive") is True:
        return "no-show"
    if appointment.get("patient_arrived") is True or starts_at <= now:
        return "attended"
    return "booked"


def visit_record(appointment: dict, names: Names, now: datetime) -> dict:
    """The visit row of an individual appointment (sections/individual_appointments.md).

    ``id``; the patient from ``patient.links.self`` (there is no
    ``patient_id`` field); ``starts_at``, in UTC like every Cliniko time
    (readme, "Dates and Times"); the service from the appointment type's
    ``name`` (sections/appointment_types.md), the therapist from the
    practitioner's ``label`` (sections/practitioners.md). This runs a
    million times in a first pull: the names were checked once, in ``Names``,
    and the ids need only be Cliniko's digits.
    """
    type_id = linked_id(appointment, "appointment_type")
    service = names.services.get(type_id)
    if service is None:
        raise ValueError(f"appointment type {type_id} is in neither of Cliniko's type lists")
    therapist = ""  # the practitioner is optional, as in an export
    if appointment.get("practitioner"):
        therapist = names.therapists.get(linked_id(appointment, "practitioner"), "")
    starts_at = appointment.get("starts_at")
    if not isinstance(starts_at, str) or not starts_at:
        raise ValueError("starts_at is missing")
    starts_at = csv_rows.parse_starts_at(starts_at, UTC)
    return {
        "id": cliniko_id(appointment.get("id"), "id"),
        "client_id": cliniko_id(linked_id(appointment, "patient"), "patient link"),
        "starts_at": starts_at,
        "service": service,
        "status": visit_status(appointment, starts_at, now),
        "therapist": therapist,
    }


_CLINIKO_ID = re.compile(r"[0-9]{1,19}")  # the portal: ids are strings of an int64


def cliniko_id(value: object, what: str) -> str:
    """An id as text: the portal sends ``"1042"``, the 2022 docs ``1042``; both are digits."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _CLINIKO_ID.fullmatch(text):
        raise ValueError(f"{what} {csv_rows.excerpt(str(value))} is not a Cliniko id")
    return text


_CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]+")


def _one_line(text: str, limit: int) -> str:
    """A name as one clean line: a line break in Cliniko must not reach a header or a row."""
    return " ".join(_CONTROL.sub(" ", text).split())[:limit]


def service_of(appointment_type: dict, renamed: Mapping[str, str]) -> str:
    """A type's name as a service: as ``[sync.cliniko.services]`` renames it, else a slug.

    "Remedial Massage (60 min)" → ``remedial-massage-60-min``, the spelling
    segments' ``services`` lists use.
    """
    name = _text(appointment_type.get("name"))
    if name in renamed:
        return renamed[name]
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:SERVICE_TEXT] or "unnamed"


def therapist_of(practitioner: dict) -> str:
    """``label``, else the names (sections/practitioners.md: inactive ones have no label)."""
    label = _text(practitioner.get("label"))
    names = [_text(practitioner.get(key)) for key in ("first_name", "last_name")]
    return _one_line(label or " ".join(name for name in names if name), 200)
