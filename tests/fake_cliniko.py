"""A fake Cliniko API (the GET lists rebook syncs from), for tests and bench/sync.py.

Rows come in the shapes of docs/cliniko-api.md (redguava/cliniko-api, late 2022). Ids are
numeric strings, times UTC ``YYYY-MM-DDTHH:MM:SSZ``, unset times null. Lists are paged by
``page`` and ``per_page`` (1..100, else 400), ordered by created_at then numeric id, and
filtered by ``q[]``/``q`` (ANDed): created_at, updated_at (and starts_at on appointments)
with > >= < <=, and ``patient_id:=1,2`` on appointments. Anything else the fake does not
serve (an unknown parameter, field or operator, ``sort``) is a 400, never silently ignored.

Each request is checked in this order: Basic auth (the key, with or without its shard
suffix, and an empty password; else 401), a User-Agent holding an ``@`` (else 403), an
armed ``rate_limit`` (429), an armed ``fail``, then the list itself (400 or 404 as due).

Two data sources: rows added one by one (``FakeCliniko()``, ``add_*``, ``touch``), or a
huge account computed from row indexes (``FakeCliniko.generated``). Serve either to a
subprocess with ``serving(fake)``, or run ``python -m tests.fake_cliniko --patients N
--appointments M --port P --api-key K``, which prints "listening on <base url>" when ready.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import json
import math
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import ge, gt, le, lt
from types import EllipsisType
from typing import Any
from urllib.parse import parse_qs, parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

API_KEY = "MS0xLWFiY2RlZg-au2"
BUSINESS_ID = "1"
MAX_PER_PAGE = 100

# path -> (resource kind, which of its lists)
ENDPOINTS = {
    "/v1/patients": ("patients", "active"),
    "/v1/patients/archived": ("patients", "archived"),
    "/v1/patients/deleted": ("patients", "deleted"),
    "/v1/individual_appointments": ("individual_appointments", "active"),
    "/v1/individual_appointments/cancelled": ("individual_appointments", "cancelled"),
    "/v1/individual_appointments/deleted": ("individual_appointments", "deleted"),
    "/v1/appointment_types": ("appointment_types", "active"),
    "/v1/appointment_types/archived": ("appointment_types", "archived"),
    "/v1/practitioners": ("practitioners", "active"),
    "/v1/practitioners/inactive": ("practitioners", "inactive"),
    "/v1/businesses": ("businesses", "active"),
}
TIME_FIELDS = {"created_at", "updated_at"}
APPOINTMENT_TIME_FIELDS = {*TIME_FIELDS, "starts_at"}
TIME_OPERATORS = (">=", "<=", ">", "<")  # two-character ones first: they are prefixes
COMPARE = {">": gt, ">=": ge, "<": lt, "<=": le}
# Which list a stored row is in: the first of these times it has set, else "active".
LIST_BY_TIME = {
    "patients": [("deleted", "deleted_at"), ("archived", "archived_at")],
    "individual_appointments": [("deleted", "deleted_at"), ("cancelled", "cancelled_at")],
    "appointment_types": [("archived", "archived_at")],
}
FILTER_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z")
# Record keys that are served as links (or not at all) rather than as fields.
HIDDEN = {
    "patients": {"merged_with_patient_id"},
    "individual_appointments": {
        "patient_id", "appointment_type_id", "practitioner_id", "business_id",
    },
    "practitioners": {"active"},
    "appointment_types": set(),
    "businesses": set(),
}  # fmt: skip


# ---------------------------------------------------------------- times


def stamp(value: datetime | str | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SSZ`` from an aware datetime (a string or None is kept)."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone; the fake takes UTC times")
    return utc(math.floor(value.timestamp()))


_SECONDS = [f":{number:02d}Z" for number in range(60)]
_MINUTES = [f"{number // 60:02d}:{number % 60:02d}" for number in range(1440)]
_DAYS: dict[int, str] = {}  # days since 1970 -> "YYYY-MM-DDT", a few thousand at most


def utc(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` of a Unix time, in ~0.2 µs: the generated rows' hot path."""
    days, seconds = divmod(seconds, 86400)
    day = _DAYS.get(days)
    if day is None:
        day = _DAYS[days] = f"{date(1970, 1, 1) + timedelta(days=days)}T"
    return day + _MINUTES[seconds // 60] + _SECONDS[seconds % 60]


def epoch(value: datetime | str) -> float:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.timestamp()


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# ---------------------------------------------------------------- rendering


def render(kind: str, state: str, record: dict, base: str) -> dict:
    """The JSON object Cliniko serves for ``record``; ``base`` is ``http://host:port``."""
    v1 = base + "/v1"
    link = f"{v1}/{kind}/{record['id']}"
    if kind == "patients" and state == "deleted":
        return {"deleted_at": record["deleted_at"], "links": {"self": link}}
    hidden = HIDDEN[kind]
    row = {key: value for key, value in record.items() if key not in hidden}
    if kind == "patients":
        merged = record.get("merged_with_patient_id")
        if merged is not None:
            row["merged_with_patient"] = {"links": {"self": f"{v1}/patients/{merged}"}}
        row["appointments"] = {"links": {"self": f"{link}/appointments?page=1"}}
    elif kind == "individual_appointments":
        row["appointment_type"] = {
            "links": {"self": f"{v1}/appointment_types/{record['appointment_type_id']}"}
        }
        row["business"] = {"links": {"self": f"{v1}/businesses/{record['business_id']}"}}
        row["practitioner"] = {"links": {"self": f"{v1}/practitioners/{record['practitioner_id']}"}}
        row["patient"] = {"links": {"self": f"{v1}/patients/{record['patient_id']}"}}
        row["attendees"] = {"links": {"self": f"{link}/attendees"}}
        row["conflicts"] = {"links": {"self": f"{link}/conflicts"}}
    elif kind == "practitioners":
        if state == "inactive":  # as documented: the inactive example has no label
            row.pop("label", None)
        row["appointments"] = {"links": {"self": f"{link}/appointments?page=1"}}
    elif kind == "businesses":
        row["practitioners"] = {"links": {"self": f"{link}/practitioners"}}
    row["links"] = {"self": link}
    return row


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return stamp(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(payload: object) -> str:
    return json.dumps(payload, separators=(",", ":"), default=_json_default)


# ---------------------------------------------------------------- queries


class BadQuery(ValueError):
    """A query the fake answers with 400."""


@dataclass(frozen=True)
class Query:
    """A list request's filters: (field, operator, epoch) times, and patient ids ANDed."""

    times: tuple[tuple[str, str, float], ...] = ()
    patient_ids: frozenset[int] | None = None

    @classmethod
    def parse(cls, kind: str, filters: list[str]) -> Query:
        fields = APPOINTMENT_TIME_FIELDS if kind == "individual_appointments" else TIME_FIELDS
        times, patient_ids = [], None
        for text in filters:
            name, colon, condition = text.partition(":")
            if not colon:
                raise BadQuery(f"filter {text!r} is not FIELD:OPERATORVALUE")
            if name == "patient_id" and kind == "individual_appointments":
                if not condition.startswith("="):
                    raise BadQuery(f"filter {text!r}: the fake takes patient_id:=ID,ID only")
                try:
                    ids = frozenset(int(part) for part in condition[1:].split(","))
                except ValueError:
                    raise BadQuery(f"filter {text!r}: ids must be integers") from None
                patient_ids = ids if patient_ids is None else patient_ids & ids
                continue
            if name not in fields:
                raise BadQuery(f"the fake cannot filter {kind} by {name!r}")
            operator = next((op for op in TIME_OPERATORS if condition.startswith(op)), None)
            if operator is None:
                raise BadQuery(f"filter {text!r}: DateTime takes > >= < <=")
            value = condition[len(operator) :]
            if not FILTER_TIME.fullmatch(value):
                raise BadQuery(f"filter {text!r}: not a UTC time like 2024-01-02T03:04:05Z")
            whole, _, fraction = value[:-1].partition(".")
            try:
                moment = datetime.fromisoformat(whole + "+00:00").timestamp()
            except ValueError:
                raise BadQuery(f"filter {text!r}: {value} is not a date") from None
            times.append((name, operator, moment + float("0." + (fraction or "0"))))
        return cls(tuple(times), patient_ids)


# A selection: how many rows match, and a function of (offset, limit) giving those rows
# (records or indexes), each to be turned into JSON text by its source's ``encode``.
Selection = tuple[int, Callable[[int, int], list[Any]]]


class Stored:
    """Rows added one by one: filtered and sorted on each request (tests hold a few)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.records: dict[str, dict] = {}

    def state(self, record: dict) -> str:
        """The list the record is in: each is in exactly one (deleted wins)."""
        if self.kind == "practitioners":
            return "active" if record.get("active", True) else "inactive"
        return next((s for s, key in LIST_BY_TIME.get(self.kind, []) if record.get(key)), "active")

    def select(self, state: str, query: Query) -> Selection:
        def matches(record: dict) -> bool:
            if self.state(record) != state:
                return False
            if query.patient_ids is not None and int(record["patient_id"]) not in query.patient_ids:
                return False
            return all(
                record.get(name) is not None and COMPARE[op](epoch(record[name]), value)
                for name, op, value in query.times
            )

        rows = sorted(
            (r for r in list(self.records.values()) if matches(r)),  # list(): one atomic copy
            key=lambda r: (epoch(r["created_at"]), int(r["id"])),
        )
        return len(rows), lambda offset, limit: rows[offset : offset + limit]

    def encode(self, record: dict, state: str, base: str) -> str:
        return _dumps(render(self.kind, state, record, base))


# ---------------------------------------------------------------- the generated account

FIRST_NAMES = ["Olivia", "Jack", "Charlotte", "Noah", "Amelia", "William", "Isla", "Oliver",
               "Mia", "Leo", "Ava", "Henry", "Grace", "Thomas", "Zoë", "José", "Mei", "Arjun",
               "Aroha", "Siobhán"]  # fmt: skip
LAST_NAMES = ["Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Nguyen", "Johnson",
              "Martin", "White", "Anderson", "Walker", "Thompson", "Kelly", "O'Brien", "Müller",
              "Singh", "Chen", "Ngata", "Kowalski"]  # fmt: skip
TIME_ZONES = ["Australia/Perth", "Australia/Melbourne", "Pacific/Auckland", "Europe/London"]
TYPES = [  # id, name, minutes, category; the last one is archived
    ("2001", "Initial Consultation", 60, "Physiotherapy"),
    ("2002", "Standard Consultation", 30, "Physiotherapy"),
    ("2003", "Extended Consultation", 45, "Physiotherapy"),
    ("2004", "Remedial Massage", 60, "Massage"),
    ("2005", "Dry Needling", 30, "Physiotherapy"),
]
PRACTITIONERS = [  # id, first, last, designation; the last one is inactive
    ("3001", "Randy", "Savage", "Physiotherapist"),
    ("3002", "Priya", "Raman", "Physiotherapist"),
    ("3003", "Tom", "Hughes", "Massage Therapist"),
    ("3004", "Ana", "Lima", "Physiotherapist"),
    ("3005", "Bill", "Carter", "Physiotherapist"),
]
CANCELLATION_REASONS = {10: "Feeling better", 30: "Sick", 40: "Away", 50: "Other", 60: "Work"}
FIRST_JSON = [json.dumps(name) for name in FIRST_NAMES]
LAST_JSON = [json.dumps(name) for name in LAST_NAMES]
NAME_JSON = [[json.dumps(f"{first} {last}") for last in LAST_NAMES] for first in FIRST_NAMES]


def _mix(x: int) -> int:
    """40 well-spread bits from x (Fibonacci hashing): the per-row dice of a generated account."""
    return (x * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF) >> 24


class Periodic:
    """Rows 0..n-1 whose list (state) repeats with index % period, and whose time fields
    never decrease with the index: each filter is a bisection, each page index arithmetic."""

    kind = ""

    def __init__(self, n: int, period: int, states: dict[str, list[int]]) -> None:
        self.n, self.period = n, period
        everything = set(range(period))
        for residues in states.values():
            everything -= set(residues)
        self.residues = {"active": sorted(everything)} | {s: sorted(r) for s, r in states.items()}

    def time_of(self, name: str, index: int) -> int:
        raise NotImplementedError

    def record(self, index: int) -> dict:
        """Row ``index`` as a record, the reference that ``encode`` must agree with."""
        raise NotImplementedError

    def encode(self, index: int, state: str, base: str) -> str:
        """``render(kind, state, record(index), base)`` as JSON text, ~10x faster."""
        raise NotImplementedError

    def window(self, query: Query) -> tuple[int, int]:
        lo, hi = 0, self.n
        for name, op, value in query.times:
            at = bisect.bisect_left if op in (">=", "<") else bisect.bisect_right
            cut = at(range(self.n), value, key=lambda i, name=name: self.time_of(name, i))
            lo, hi = (max(lo, cut), hi) if op in (">", ">=") else (lo, min(hi, cut))
        return lo, max(lo, hi)

    def count_before(self, residues: list[int], n: int) -> int:
        """How many indexes below n are in the list."""
        return n // self.period * len(residues) + bisect.bisect_left(residues, n % self.period)

    def select(self, state: str, query: Query) -> Selection:
        residues = self.residues[state]
        lo, hi = self.window(query)
        if query.patient_ids is not None:
            wanted = set(residues)
            indexes = [i for i in self.indexes_of(query.patient_ids, lo, hi)
                       if i % self.period in wanted]  # fmt: skip
            return len(indexes), lambda offset, limit: indexes[offset : offset + limit]
        first = self.count_before(residues, lo)
        total = self.count_before(residues, hi) - first
        width = len(residues)

        def fetch(offset: int, limit: int) -> list[int]:
            start, stop = first + offset, first + min(total, offset + limit)
            return [k // width * self.period + residues[k % width] for k in range(start, stop)]

        return total, fetch

    def indexes_of(self, patient_ids: frozenset[int], lo: int, hi: int) -> list[int]:
        """The indexes in [lo, hi) of these patients' rows (appointments only)."""
        raise NotImplementedError


def _text(value: str | None) -> str:
    return "null" if value is None else f'"{value}"'


_BOOL = {True: "true", False: "false", None: "null"}


class GeneratedPatients(Periodic):
    """Patient i: id str(1000 + i), created over the year before the appointments start;
    archived ~1% (half of them merged into the next patient), deleted ~0.5%."""

    kind = "patients"
    ARCHIVED, MERGED, DELETED = [37, 137], 137, [73]

    def __init__(self, n: int, seed: int, first: int, updated: int) -> None:
        super().__init__(n, 199, {"archived": self.ARCHIVED, "deleted": self.DELETED})
        self.seed, self.updated, self.first = seed * 1_000_003, updated, first - 365 * 86400
        self.updated_text = utc(updated)

    def time_of(self, name: str, index: int) -> int:
        if name == "updated_at":
            return self.updated
        return self.first + index * (self.updated - self.first) // self.n

    def name(self, index: int) -> tuple[int, int]:
        """Indexes into FIRST_NAMES and LAST_NAMES."""
        h = _mix(index + self.seed)
        return h % 20, h // 20 % 20

    def values(self, index: int) -> tuple:
        h = _mix(index + self.seed)
        dice, residue = h // 400 % 100, index % self.period
        merged = residue == self.MERGED and index + 1 < self.n
        return (
            str(1000 + index), h % 20, h // 20 % 20,
            None if dice == 0 else "" if dice == 1 else f"client{index}@example.org",
            True if dice < 88 else False if dice < 96 else None,
            TIME_ZONES[dice % 4] if h // 40000 % 100 < 15 else None,
            self.updated_text if residue in self.ARCHIVED else None,
            self.updated_text if residue in self.DELETED else None,
            str(1001 + index) if merged else None,
            utc(self.first + index * (self.updated - self.first) // self.n),
        )  # fmt: skip

    def record(self, index: int) -> dict:
        id, first, last, email, consent, zone, archived, deleted, merged, created = self.values(
            index
        )
        return {
            "id": id, "first_name": FIRST_NAMES[first], "last_name": LAST_NAMES[last],
            "preferred_first_name": "", "title": None, "email": email,
            "accepted_email_marketing": consent, "accepted_sms_marketing": False,
            "accepted_privacy_policy": True, "receives_confirmation_emails": True,
            "reminder_type": "Email", "date_of_birth": None, "time_zone": zone,
            "old_reference_id": "", "archived_at": archived, "deleted_at": deleted,
            "merged_at": archived if merged else None, "merged_with_patient_id": merged,
            "created_at": created, "updated_at": self.updated_text,
        }  # fmt: skip

    def encode(self, index: int, state: str, base: str) -> str:
        id, first, last, email, consent, zone, archived, deleted, merged, created = self.values(
            index
        )
        link = f"{base}/v1/patients/{id}"
        if state == "deleted":
            return f'{{"deleted_at":"{deleted}","links":{{"self":"{link}"}}}}'
        merge = (f',"merged_with_patient":{{"links":{{"self":"{base}/v1/patients/{merged}"}}}}'
                 if merged else "")  # fmt: skip
        return (
            f'{{"id":"{id}","first_name":{FIRST_JSON[first]},"last_name":{LAST_JSON[last]},'
            f'"preferred_first_name":"","title":null,"email":{_text(email)},'
            f'"accepted_email_marketing":{_BOOL[consent]},"accepted_sms_marketing":false,'
            '"accepted_privacy_policy":true,"receives_confirmation_emails":true,'
            f'"reminder_type":"Email","date_of_birth":null,"time_zone":{_text(zone)},'
            f'"old_reference_id":"","archived_at":{_text(archived)},"deleted_at":{_text(deleted)},'
            f'"merged_at":{_text(archived if merged else None)},"created_at":"{created}",'
            f'"updated_at":"{self.updated_text}"{merge},'
            f'"appointments":{{"links":{{"self":"{link}/appointments?page=1"}}}},'
            f'"links":{{"self":"{link}"}}}}'
        )


class GeneratedAppointments(Periodic):
    """Appointment j: id str(10_000_000 + j), patient j % patients, starts_at spread evenly
    (5-minute slots) from three years before ``now`` to a month after; created_at grows with
    j too; ~5% cancelled, ~1% deleted, ~3% did not arrive."""

    kind = "individual_appointments"
    CANCELLED, DELETED = [3, 17, 40, 58, 81], [66]

    def __init__(self, n: int, patients: GeneratedPatients, seed: int, now: int) -> None:
        # a prime period, so that one patient's appointments are not all in the same list
        period = 101 if patients.n % 97 == 0 else 97
        super().__init__(n, period, {"cancelled": self.CANCELLED, "deleted": self.DELETED})
        self.patients, self.seed, self.now = patients, seed * 7_919 + 1, now
        self.first = (now // 86400 - 3 * 365) * 86400
        self.span = (3 * 365 + 30) * 86400
        self.updated, self.updated_text = patients.updated, patients.updated_text
        self.created_first = self.first - 30 * 86400

    def time_of(self, name: str, index: int) -> int:
        if name == "updated_at":
            return self.updated
        if name == "starts_at":
            return self.first + index * self.span // self.n // 300 * 300
        return self.created_first + index * (self.updated - self.created_first) // self.n

    def indexes_of(self, patient_ids: frozenset[int], lo: int, hi: int) -> list[int]:
        found, step = [], self.patients.n
        for patient_id in patient_ids:
            p = patient_id - 1000
            if 0 <= p < step:
                found.extend(range(p + max(0, -(-(lo - p) // step)) * step, hi, step))
        return sorted(found)

    def values(self, index: int) -> tuple:
        h = _mix(index + self.seed)
        start = self.first + index * self.span // self.n // 300 * 300
        created = self.created_first + index * (self.updated - self.created_first) // self.n
        choices = 5 if index < self.n // 3 else 4  # the archived type, the inactive one: old rows
        type_id, _, minutes, _ = TYPES[h // 100 % choices]
        residue, past = index % self.period, start < self.now
        cancelled = residue in self.CANCELLED
        no_show = past and not cancelled and h % 100 < 3
        patient = index % self.patients.n
        return (
            str(10_000_000 + index), str(1000 + patient), type_id,
            PRACTITIONERS[h // 1000 % choices][0], self.patients.name(patient),
            utc(start), utc(start + minutes * 60),
            utc(max(created, min(start - 86400, self.updated))) if cancelled else None,
            (10, 30, 40, 50, 60)[h // 10000 % 5] if cancelled else None,
            self.updated_text if residue in self.DELETED else None, no_show,
            past and not cancelled and not no_show and h // 100000 % 100 < 85, past,
            utc(created),
        )  # fmt: skip

    def record(self, index: int) -> dict:
        (id, patient, type_id, practitioner, (first, last), start, end, cancelled, reason,
         deleted, no_show, arrived, past, created) = self.values(index)  # fmt: skip
        return {
            "id": id, "patient_id": patient, "appointment_type_id": type_id,
            "practitioner_id": practitioner, "business_id": BUSINESS_ID,
            "patient_name": f"{FIRST_NAMES[first]} {LAST_NAMES[last]}",
            "starts_at": start, "ends_at": end, "cancelled_at": cancelled,
            "cancellation_reason": reason,
            "cancellation_reason_description": CANCELLATION_REASONS.get(reason, ""),
            "cancellation_note": None, "deleted_at": deleted, "archived_at": None,
            "did_not_arrive": no_show, "patient_arrived": arrived,
            "email_reminder_sent": past, "sms_reminder_sent": False, "notes": None,
            "booking_ip_address": None, "invoice_status": None,
            "online_booking_policy_accepted": None, "repeat_rule": {}, "repeats": None,
            "treatment_note_status": None, "created_at": created,
            "updated_at": self.updated_text,
        }  # fmt: skip

    def encode(self, index: int, state: str, base: str) -> str:
        (id, patient, type_id, practitioner, (first, last), start, end, cancelled, reason,
         deleted, no_show, arrived, past, created) = self.values(index)  # fmt: skip
        v1 = base + "/v1"
        link = f"{v1}/individual_appointments/{id}"
        return (
            f'{{"id":"{id}","patient_name":{NAME_JSON[first][last]},"starts_at":"{start}",'
            f'"ends_at":"{end}","cancelled_at":{_text(cancelled)},'
            f'"cancellation_reason":{"null" if reason is None else reason},'
            f'"cancellation_reason_description":"{CANCELLATION_REASONS.get(reason, "")}",'
            f'"cancellation_note":null,"deleted_at":{_text(deleted)},"archived_at":null,'
            f'"did_not_arrive":{_BOOL[no_show]},"patient_arrived":{_BOOL[arrived]},'
            f'"email_reminder_sent":{_BOOL[past]},"sms_reminder_sent":false,"notes":null,'
            '"booking_ip_address":null,"invoice_status":null,'
            '"online_booking_policy_accepted":null,"repeat_rule":{},"repeats":null,'
            f'"treatment_note_status":null,"created_at":"{created}",'
            f'"updated_at":"{self.updated_text}",'
            f'"appointment_type":{{"links":{{"self":"{v1}/appointment_types/{type_id}"}}}},'
            f'"business":{{"links":{{"self":"{v1}/businesses/{BUSINESS_ID}"}}}},'
            f'"practitioner":{{"links":{{"self":"{v1}/practitioners/{practitioner}"}}}},'
            f'"patient":{{"links":{{"self":"{v1}/patients/{patient}"}}}},'
            f'"attendees":{{"links":{{"self":"{link}/attendees"}}}},'
            f'"conflicts":{{"links":{{"self":"{link}/conflicts"}}}},"links":{{"self":"{link}"}}}}'
        )


# ---------------------------------------------------------------- the fake


@dataclass
class SeenRequest:
    """One request as the fake saw it; ``status`` is what it answered."""

    method: str
    path: str
    query: str  # raw, still percent-encoded
    user_agent: str | None
    authorization: bool  # an Authorization header was sent (right or wrong)
    status: int = 0

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)


@dataclass
class _Failure:
    path: str | None
    page: int | None
    status: int | None
    body: bytes
    times: int


@dataclass
class FakeCliniko:
    """One Cliniko account: its rows, its armed failures, the requests it saw, its app."""

    api_key: str = API_KEY
    business_name: str = "Healthy Times"
    requests: list[SeenRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sources: dict[str, Stored | Periodic] = {
            kind: Stored(kind) for kind, _ in ENDPOINTS.values()
        }
        self._lock = threading.Lock()
        self._failures: list[_Failure] = []
        self._rate_limits: list[int] = []  # retry_after of each armed 429
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=[
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])])  # fmt: skip
        created = stamp(_now() - timedelta(days=3650))
        self.sources["businesses"].records[BUSINESS_ID] = {
            "id": BUSINESS_ID, "business_name": self.business_name, "display_name": None,
            "country": "Australia", "country_code": "AU", "time_zone": None,
            "email_reply_to": "hello@example.org", "created_at": created, "updated_at": created,
        }  # fmt: skip

    # ---- rows

    @classmethod
    def generated(
        cls, patients: int = 100_000, appointments: int = 1_000_000, seed: int = 0, *,
        now: datetime | None = None, api_key: str = API_KEY,
        business_name: str = "Healthy Times",
    ) -> FakeCliniko:  # fmt: skip
        """An account computed from row indexes; ``now`` (default: this minute) places the
        appointments and the one ``updated_at`` of every row (midnight UTC a day before)."""
        if patients < 1 or appointments < 0:
            raise ValueError("a generated account needs a patient or more")
        fake = cls(api_key=api_key, business_name=business_name)
        now = now or _now()
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        at = math.floor(now.timestamp()) // 60 * 60
        updated = (at // 86400 - 1) * 86400
        people = GeneratedPatients(patients, seed, (at // 86400 - 3 * 365) * 86400, updated)
        fake.sources["patients"] = people
        fake.sources["individual_appointments"] = GeneratedAppointments(
            appointments, people, seed, at
        )
        made = datetime.fromtimestamp(people.first, UTC)
        for number, (id, name, minutes, category) in enumerate(TYPES, 1):
            fake.add_appointment_type(
                id=id, name=name, duration_in_minutes=minutes, category=category,
                archived_at=datetime.fromtimestamp(updated, UTC) if number == len(TYPES) else None,
                created_at=made, updated_at=datetime.fromtimestamp(updated, UTC),
            )  # fmt: skip
        for number, (id, first, last, designation) in enumerate(PRACTITIONERS, 1):
            fake.add_practitioner(
                id=id, first_name=first, last_name=last, designation=designation,
                active=number < len(PRACTITIONERS), created_at=made,
                updated_at=datetime.fromtimestamp(updated, UTC),
            )  # fmt: skip
        return fake

    @property
    def generated_updated_at(self) -> datetime | None:
        """The one updated_at of a generated account's patients and appointments."""
        source = self.sources["patients"]
        return datetime.fromtimestamp(source.updated, UTC) if isinstance(source, Periodic) else None

    def _store(self, kind: str, id: str | int, record: dict, created_at, updated_at) -> dict:
        source = self.sources[kind]
        if not isinstance(source, Stored):
            raise TypeError(f"a generated account's {kind} are computed, not added")
        id = str(id)
        if not (id.isascii() and id.isdigit()):
            raise ValueError(f"Cliniko ids are numeric strings, not {id!r}")
        created_at = created_at or _now()
        record = {
            "id": id,
            **record,
            "created_at": created_at,
            "updated_at": updated_at or created_at,
        }
        record = {key: stamp(value) if isinstance(value, datetime) else value
                  for key, value in record.items()}  # fmt: skip
        source.records[id] = record
        return record

    def add_patient(
        self, *, id: str | int, first_name: str = "Pat", last_name: str = "Example",
        email: str | EllipsisType | None = ..., accepted_email_marketing: bool | None = True,
        archived_at: datetime | None = None, deleted_at: datetime | None = None,
        merged_at: datetime | None = None, merged_with_patient_id: str | int | None = None,
        time_zone: str | None = None, created_at: datetime | None = None,
        updated_at: datetime | None = None, **fields: Any,
    ) -> dict:  # fmt: skip
        """A patient; its list follows from deleted_at, then archived_at. ``email`` defaults
        to f"patient{id}@example.org"; None and "" are patients without one."""
        record = {
            "first_name": first_name, "last_name": last_name, "preferred_first_name": "",
            "title": None, "email": f"patient{id}@example.org" if email is ... else email,
            "accepted_email_marketing": accepted_email_marketing,
            "accepted_sms_marketing": False, "accepted_privacy_policy": None,
            "receives_confirmation_emails": True, "reminder_type": "Email",
            "date_of_birth": None, "time_zone": time_zone, "old_reference_id": "",
            "archived_at": archived_at, "deleted_at": deleted_at, "merged_at": merged_at,
            "merged_with_patient_id": None if merged_with_patient_id is None
            else str(merged_with_patient_id), **fields,
        }  # fmt: skip
        return self._store("patients", id, record, created_at, updated_at)

    def add_appointment_type(
        self, *, id: str | int, name: str, duration_in_minutes: int = 30,
        category: str | None = None, archived: bool = False,
        archived_at: datetime | None = None, created_at: datetime | None = None,
        updated_at: datetime | None = None, **fields: Any,
    ) -> dict:  # fmt: skip
        """An appointment type, archived when ``archived`` or ``archived_at`` is given."""
        record = {
            "name": name, "duration_in_minutes": duration_in_minutes, "category": category,
            "color": "#00FF00", "description": None, "max_attendees": 1,
            "show_in_online_bookings": True, **fields,
        }  # fmt: skip
        record = self._store("appointment_types", id, record, created_at, updated_at)
        if archived or archived_at:
            record["archived_at"] = stamp(archived_at) or record["updated_at"]
        return record

    def add_practitioner(
        self, *, id: str | int, first_name: str, last_name: str, label: str | None = None,
        title: str = "", designation: str = "", active: bool = True,
        created_at: datetime | None = None, updated_at: datetime | None = None, **fields: Any,
    ) -> dict:  # fmt: skip
        """A practitioner, served by /practitioners/inactive (without a label) unless active."""
        record = {
            "first_name": first_name, "last_name": last_name,
            "label": label if label is not None else f"{first_name} {last_name}",
            "title": title, "designation": designation, "description": None,
            "show_in_online_bookings": True, "active": active, **fields,
        }  # fmt: skip
        return self._store("practitioners", id, record, created_at, updated_at)

    def add_appointment(
        self, *, id: str | int, patient_id: str | int, starts_at: datetime,
        appointment_type_id: str | int, practitioner_id: str | int,
        ends_at: datetime | None = None, cancelled_at: datetime | None = None,
        deleted_at: datetime | None = None, did_not_arrive: bool = False,
        patient_arrived: bool = False, patient_name: str | None = None,
        created_at: datetime | None = None, updated_at: datetime | None = None,
        **fields: Any,
    ) -> dict:  # fmt: skip
        """An individual appointment; its list follows from deleted_at, then cancelled_at.
        ``ends_at`` defaults to the type's duration, ``patient_name`` to the stored patient's."""
        kind = self.sources["appointment_types"]
        minutes = kind.records.get(str(appointment_type_id), {}).get("duration_in_minutes", 30)
        patient = self.sources["patients"].records.get(str(patient_id), {})
        if patient_name is None:
            patient_name = f"{patient.get('first_name', '')} {patient.get('last_name', '')}"
        record = {
            "patient_id": str(patient_id), "appointment_type_id": str(appointment_type_id),
            "practitioner_id": str(practitioner_id), "business_id": BUSINESS_ID,
            "patient_name": patient_name.strip(), "starts_at": starts_at,
            "ends_at": ends_at or starts_at + timedelta(minutes=minutes),
            "cancelled_at": cancelled_at, "cancellation_reason": 50 if cancelled_at else None,
            "cancellation_reason_description": "Other" if cancelled_at else "",
            "cancellation_note": None, "deleted_at": deleted_at, "archived_at": None,
            "did_not_arrive": did_not_arrive, "patient_arrived": patient_arrived,
            "email_reminder_sent": False, "sms_reminder_sent": False, "notes": None,
            "booking_ip_address": None, "invoice_status": None,
            "online_booking_policy_accepted": None, "repeat_rule": {}, "repeats": None,
            "treatment_note_status": None, **fields,
        }  # fmt: skip
        return self._store("individual_appointments", id, record, created_at, updated_at)

    def touch(
        self, kind: str, id: str | int, *, updated_at: datetime | None = None, **changes: Any
    ) -> dict:
        """Change a stored row and bump its updated_at (default: now), as an edit in Cliniko
        does. ``kind`` is the resource: patients, individual_appointments, appointment_types,
        practitioners. E.g. ``touch("patients", 1001, archived_at=t, updated_at=t)``."""
        source = self.sources.get(kind)
        if not isinstance(source, Stored) or str(id) not in source.records:
            raise KeyError(f"no stored {kind} row {id!r}")
        record = source.records[str(id)]
        for key, value in {**changes, "updated_at": updated_at or _now()}.items():
            record[key] = stamp(value) if isinstance(value, datetime) else value
        return record

    def total(self, path: str, *filters: str) -> int:
        """total_entries of a list path (e.g. "/v1/patients/archived") for these filters."""
        kind, state = ENDPOINTS[path]
        return self.sources[kind].select(state, Query.parse(kind, list(filters)))[0]

    # ---- trouble

    def fail(
        self, path: str | None = None, page: int | None = None, status: int | None = 500,
        times: int = 1, body: bytes | None = None,
    ) -> None:  # fmt: skip
        """The next ``times`` requests to ``path`` (any when None) for ``page`` (any when
        None; a request without ``page`` is page 1) get ``status`` and ``body``. With
        ``status=None`` they get 200 with ``body`` (default b"not json"): a broken page."""
        if body is None:
            body = b"not json" if status is None else _dumps({"message": f"fake {status}"}).encode()
        with self._lock:
            self._failures.append(_Failure(path, page, status, body, times))

    def rate_limit(self, times: int = 1, retry_after: int = 1) -> None:
        """The next ``times`` authorised requests get 429 with ``Retry-After: retry_after``
        and ``X-RateLimit-Reset``: the Unix time (seconds, rounded up) retry_after from now."""
        with self._lock:
            self._rate_limits.extend([retry_after] * times)

    # ---- serving

    async def _handle(self, request: Request) -> Response:
        seen = SeenRequest(
            request.method, request.url.path, request.url.query,
            request.headers.get("user-agent"), "authorization" in request.headers,
        )  # fmt: skip
        self.requests.append(seen)
        response = self._answer(request)
        seen.status = response.status_code
        return response

    def _answer(self, request: Request) -> Response:
        if not self._authorised(request.headers.get("authorization", "")):
            return _message(401, "Unauthorized: HTTP Basic with the API key as the username")
        if "@" not in request.headers.get("user-agent", ""):
            return _message(403, 'User-Agent must name the app and a contact: "App (a@b.c)"')
        page_text = request.query_params.get("page", "1")
        armed = self._take_trouble(request.url.path, page_text)
        if isinstance(armed, int):
            reset = math.ceil(time.time() + armed)
            return _message(429, "Too many requests", headers={
                "Retry-After": str(armed), "X-RateLimit-Reset": str(reset)})  # fmt: skip
        if armed is not None:
            return Response(armed.body, armed.status or 200, media_type="application/json")
        if request.url.path not in ENDPOINTS:
            return _message(404, f"the fake does not serve {request.url.path}")
        if request.method != "GET":
            return _message(405, f"the fake serves GET only, not {request.method}")
        try:
            payload = self._list(request, *ENDPOINTS[request.url.path])
        except BadQuery as error:
            return _message(400, str(error))
        return Response(payload, media_type="application/json")

    def _authorised(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, colon, password = base64.b64decode(token, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        keys = {self.api_key, self.api_key.rpartition("-")[0] or self.api_key}
        return bool(colon) and password == "" and user in keys

    def _take_trouble(self, path: str, page_text: str) -> int | _Failure | None:
        with self._lock:
            if self._rate_limits:
                return self._rate_limits.pop(0)
            page = int(page_text) if page_text.isdigit() else None
            for failure in self._failures:
                if failure.path in (None, path) and failure.page in (None, page):
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                    return failure
        return None

    def _list(self, request: Request, kind: str, state: str) -> str:
        pairs = parse_qsl(request.url.query, keep_blank_values=True)
        for name, _ in pairs:
            if name not in ("page", "per_page", "q", "q[]"):
                raise BadQuery(f"the fake does not take the parameter {name!r}")
        page = _whole(request.query_params.get("page", "1"), "page", 1, None)
        per_page = _whole(request.query_params.get("per_page", "50"), "per_page", 1, MAX_PER_PAGE)
        query = Query.parse(kind, [value for name, value in pairs if name in ("q", "q[]")])
        source = self.sources[kind]
        total, fetch = source.select(state, query)
        base = f"{request.url.scheme}://{request.url.netloc}"
        rows = [source.encode(row, state, base) for row in fetch((page - 1) * per_page, per_page)]
        links = {"self": str(request.url.include_query_params(page=page))}
        if page * per_page < total:
            links["next"] = str(request.url.include_query_params(page=page + 1))
        if page > 1:
            links["previous"] = str(request.url.include_query_params(page=page - 1))
        return f'{{"{kind}":[{",".join(rows)}],"total_entries":{total},"links":{_dumps(links)}}}'


def _whole(text: str, name: str, least: int, most: int | None) -> int:
    if not text.isdigit() or int(text) < least or (most is not None and int(text) > most):
        bounds = f"{least}..{most}" if most else f"{least} or more"
        raise BadQuery(f"{name} must be a whole number {bounds}, not {text!r}")
    return int(text)


def _message(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps({"message": message}), status, headers, media_type="application/json")


@contextmanager
def serving(fake: FakeCliniko, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``fake`` over HTTP in a thread; yields its base URL, ``http://HOST:PORT/v1``.
    Port 0 (the default) takes a free one."""
    config = uvicorn.Config(fake.app, host=host, port=port, log_level="warning",
                            lifespan="off", ws="none", access_log=False)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-cliniko", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the fake Cliniko did not start on {host}:{port}")
        time.sleep(0.005)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}/v1"
    finally:
        server.should_exit = True
        thread.join(10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_cliniko", description="Serve a generated Cliniko account.",
        epilog="e.g. python -m tests.fake_cliniko --patients 100000 --appointments 1000000",
    )  # fmt: skip
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--appointments", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=0, help="0 (the default): a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-key", default=API_KEY)
    parser.add_argument("--business-name", default="Healthy Times")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--now", type=datetime.fromisoformat, default=None,
                        help="place the appointments around this UTC time, not the clock's")  # fmt: skip
    options = parser.parse_args(argv)
    fake = FakeCliniko.generated(
        options.patients, options.appointments, options.seed, now=options.now,
        api_key=options.api_key, business_name=options.business_name,
    )  # fmt: skip
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with serving(fake, options.host, options.port) as base_url:
        print(f"listening on {base_url}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
