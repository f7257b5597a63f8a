"""SQL each backend spells its own way: time arithmetic, days, and the control-group hash.

The report and the audience are single queries over every client; these
constructs let them stay so on both SQLite (times are UTC text, see
``tables.UTCDateTime``) and PostgreSQL (``timestamptz``).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

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
    # the stored text's own shape (to the millisecond), so that text comparison stays right
    return f"strftime('%Y-%m-%d %H:%M:%f', {moment}, '+' || {seconds} || ' seconds')"


@compiles(After, "postgresql")
def _after_postgresql(element, compiler, **kw) -> str:
    moment, seconds = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"({moment} + make_interval(secs => {seconds}))"


def after(moment: ColumnElement, duration: timedelta) -> ColumnElement:
    return After(moment, literal(int(duration.total_seconds()), Integer))


class LocalDay(FunctionElement):
    """The calendar date of a stored time at a fixed offset from UTC, as ``YYYY-MM-DD`` text."""

    type = String()
    inherit_cache = True


@compiles(LocalDay, "sqlite")
def _day_sqlite(element, compiler, **kw) -> str:
    moment, seconds = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"date({moment}, {seconds} || ' seconds')"


@compiles(LocalDay, "postgresql")
def _day_postgresql(element, compiler, **kw) -> str:
    moment, seconds = (compiler.process(clause, **kw) for clause in element.clauses)
    return (
        f"to_char(({moment} AT TIME ZONE 'UTC') + make_interval(secs => {seconds}), 'YYYY-MM-DD')"
    )


def local_day(moment: ColumnElement, offset: timedelta) -> ColumnElement[str]:
    return LocalDay(moment, literal(int(offset.total_seconds()), Integer))
