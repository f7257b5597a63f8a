"""After a crash: messages a stopped worker had claimed or was sending go back to the queue.

Asked by every run before it delivers, and by the service every time it
looks at the queue, so rows a ``kill -9`` left behind never wait for their
campaign's next scheduled run.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection, Engine

from campaigns.store.database import write_transaction
from campaigns.store.tables import runs, sends, workers

DEAD_AFTER = timedelta(
    seconds=30
)  # a worker on another host is presumed dead when silent this long


def recover_orphans(engine: Engine, now: datetime, keep: str | None = None) -> int:
    """Requeue every campaign's rows that workers now gone had claimed or were sending.

    A worker is gone when its heartbeat is older than ``DEAD_AFTER``, or at
    once when it ran on this machine and its process is no more. Every
    campaign's rows, not only the caller's: the dead worker's registration is
    deleted here, and nothing else would ever requeue its other rows. The
    ``runs`` it left running are closed as failed. Returns how many rows.
    """
    host = socket.gethostname()
    with write_transaction(engine) as connection:
        dead = [
            row
            for row in connection.execute(select(workers))
            if row.id != keep
            and (
                row.heartbeat_at < now - DEAD_AFTER
                or (row.host == host and not _alive_here(row.pid))
            )
        ]
        if dead:
            connection.execute(delete(workers).where(workers.c.id.in_([row.id for row in dead])))
        stopped = [f"{host}:{pid}" for pid in _dead_pids_here(connection)]
        if stopped:
            connection.execute(
                update(runs)
                .where(runs.c.outcome == "running", runs.c.worker.in_(stopped))
                .values(
                    outcome="failed",
                    finished_at=now,
                    detail="the worker stopped before the run finished",
                )
            )
        orphaned = (
            update(sends)
            .where(
                sends.c.status.in_(("claimed", "sending")),
                sends.c.worker.not_in(select(workers.c.id)),
            )
            .values(status="queued", worker=None, updated_at=now)
        )
        return connection.execute(orphaned).rowcount


def _dead_pids_here(connection: Connection) -> list[int]:
    """Processes of this machine that left a run ``running`` and are no more."""
    prefix = socket.gethostname() + ":"
    query = select(runs.c.worker).where(
        runs.c.outcome == "running", runs.c.worker.startswith(prefix)
    )
    pids = {worker.removeprefix(prefix) for worker in connection.execute(query).scalars()}
    return [int(pid) for pid in pids if pid.isdigit() and not _alive_here(int(pid))]


def _alive_here(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
