"""SQL each backend spells its own way: time arithmetic, days, and the control-group hash.

The report and the audience are single queries over every client; these
constructs let them stay so on both SQLite (times are UTC text, see
``tables.UTCDateTime``) and PostgreSQL (``timestamptz``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Integer, String, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from campaigns.store.tables import UTCDateTime

CONTROL_BUCKETS = 2**28  # control_bucket's range: a holdout share is resolved to 1 in 268 million
SQLITE_CONTROL_BUCKET = "rebook_control_bucket"  # registered on every SQLite connection


def control_bucket(campaign: str, client_id: str) -> int:
    """Where (campaign, client) falls in [0, CONTROL_BUCKETS): the first 28 bits of an MD5.

    Keyed by the campaign, so each campaign draws its own control group; the
    same on every run, worker and backend (PostgreSQL computes it with its own
    ``md5``), so a client in the control group stays there. MD5 here spreads
    ids evenly; nothing relies on it being hard to invert.
    """
    return int(hashlib.md5(f"{campaign}:{client_id}".encode()).hexdigest()[:7], 16)


class ControlBucket(FunctionElement):
    """``control_bucket(campaign, client_id)`` in SQL."""

    type = Integer()
    inherit_cache = True


@compiles(ControlBucket, "sqlite")
def _bucket_sqlite(element, compiler, **kw) -> str:
    return f"{SQLITE_CONTROL_BUCKET}({compiler.process(element.clauses, **kw)})"


@compiles(ControlBucket, "postgresql")
def _bucket_postgresql(element, compiler, **kw) -> str:
    campaign, client_id = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"('x' || substr(md5({campaign} || ':' || {client_id}), 1, 7))::bit(28)::int"


def in_control_group(campaign: str, client_id: ColumnElement, share: float) -> ColumnElement[bool]:
    """Whether a client falls in ``share`` of a campaign's clients, the same ones every time."""
    threshold = round(share * CONTROL_BUCKETS)
    return ControlBucket(literal(campaign, String), client_id) < threshold


class After(FunctionElement):
    """A stored time plus a fixed number of seconds, still comparable with stored times."""

    type = UTCDateTime()
    inherit_cache = True


@compiles(After, "sqlite")
def _after_sqlite(element, compiler, **kw) -> str:
    moment, seconds = (compiler.process(clause, **kw) for clause in element.clauses)
    # datetime() drops the microseconds the stored text ends with (".ffffff" from its
    # 20th character): put them back, so that the text compares exactly. Three times
    # cheaper than strftime('%f'), which matters once per ledger row.
    return f"(datetime({moment}, '+' || {seconds} || ' seconds') || substr({moment}, 20))"


@compiles(After, "postgresql")
def _after_postgresql(element, compiler, **kw) -> str:
    moment, seconds = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"({moment} + make_interval(secs => {seconds}))"


def after(moment: ColumnElement, duration: timedelta) -> ColumnElement:
    return After(moment, literal(int(duration.total_seconds()), Integer))


class WeeksSince(FunctionElement):
    """Whole weeks from an instant (Unix seconds) to a stored time: 0, 1, 2…"""

    type = Integer()
    inherit_cache = True


@compiles(WeeksSince, "sqlite")
def _weeks_sqlite(element, compiler, **kw) -> str:
    moment, origin = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"CAST(((julianday({moment}) - 2440587.5) * 86400 - {origin}) / 604800 AS INTEGER)"


@compiles(WeeksSince, "postgresql")
def _weeks_postgresql(element, compiler, **kw) -> str:
    moment, origin = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"CAST(floor((extract(epoch FROM {moment}) - {origin}) / 604800) AS INTEGER)"


def weeks_since(moment: ColumnElement, origin: datetime) -> ColumnElement[int]:
    """The week ``moment`` falls in, counted from ``origin`` (which must come before it)."""
    return WeeksSince(moment, literal(int(origin.timestamp()), Integer))
