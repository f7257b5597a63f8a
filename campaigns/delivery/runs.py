"""Scheduled runs in the database: who runs a scheduled time, and how it went.

Every worker computes the same schedule. A worker claims a scheduled run by
inserting its ``(campaign, scheduled_for)`` row; the unique key lets exactly
one insert succeed however many workers are up, and the others only help
deliver. Catch-up and ``status`` read the same rows, so nothing about runs
lives in the scheduler's (in-memory) job store.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, Engine

from campaigns.store.database import write_transaction
from campaigns.store.tables import runs
from campaigns.store.upsert import insert_for


def this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class RunRecord:
    campaign: str
    scheduled_for: datetime
    started_at: datetime
    finished_at: datetime | None
    worker: str
    outcome: str
    detail: str
    sent: int
    deferred: int
    failed: int
    held: int
    held_out: int = 0  # the control group of a campaign with holdout


def claim_run(engine: Engine, campaign: str, scheduled_for: datetime, now: datetime) -> int | None:
    """The new run's id if this worker won ``scheduled_for``; None if another one has it."""
    return _insert(engine, campaign, scheduled_for, now, "running", "")


def skip_run(
    engine: Engine, campaign: str, scheduled_for: datetime, now: datetime, reason: str
) -> bool:
    """Record that a scheduled run will not happen (too old to catch up); False if known."""
    return _insert(engine, campaign, scheduled_for, now, "skipped", reason) is not None


def _insert(engine, campaign, scheduled_for, now, outcome, detail) -> int | None:
    statement = (
        insert_for(engine.dialect.name, runs)
        .values(
            campaign=campaign,
            scheduled_for=scheduled_for,
            started_at=now,
            worker=this_worker(),
            outcome=outcome,
            detail=detail,
            finished_at=None if outcome == "running" else now,
        )
        .on_conflict_do_nothing(index_elements=["campaign", "scheduled_for"])
        .returning(runs.c.id)
    )
    with write_transaction(engine) as connection:
        return connection.execute(statement).scalar()


def finish_run(engine: Engine, run_id: int, now: datetime, outcome: str, detail: str = "",
               **counts: int) -> None:  # fmt: skip
    """Close a run with its outcome and the counts the table keeps (others are ignored)."""
    kept = {name: number for name, number in counts.items() if name in runs.c}
    statement = (
        update(runs)
        .where(runs.c.id == run_id)
        .values(finished_at=now, outcome=outcome, detail=detail[:2000], **kept)
    )
    with write_transaction(engine) as connection:
        connection.execute(statement)


def last_runs(connection: Connection) -> dict[str, RunRecord]:
    """Each campaign's latest scheduled run (run, running or skipped)."""
    latest = (
        select(runs.c.campaign, func.max(runs.c.scheduled_for).label("at"))
        .group_by(runs.c.campaign)
        .subquery()
    )
    query = select(runs).join(
        latest, (runs.c.campaign == latest.c.campaign) & (runs.c.scheduled_for == latest.c.at)
    )
    return {
        row.campaign: RunRecord(
            row.campaign, row.scheduled_for, row.started_at, row.finished_at, row.worker,
            row.outcome, row.detail, row.sent, row.deferred, row.failed, row.held, row.held_out,
        )
        for row in connection.execute(query)
    }  # fmt: skip
