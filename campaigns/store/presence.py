"""Which ``rebook run`` processes are up, so ``rebook status`` can answer "is it running?".

A clinic owner reading ``status`` on a box where the service died at 3 am
would otherwise see campaigns with a next run and no hint that nothing will
run it. Each service keeps a row in ``app_state`` (``service:<pid>@<host>``)
whose value says when it was last seen, refreshes it every ``SEEN_EVERY``
and deletes it on a clean stop. A row older than ``STALE_AFTER`` belongs to
a process that was killed without stopping: ``status`` says when it was last
seen, until a service starting on the same host finds that process gone and
clears its row.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection, Engine

from campaigns.store.database import write_transaction
from campaigns.store.tables import app_state
from campaigns.store.upsert import insert_for

PREFIX = "service:"
SEEN_EVERY = timedelta(seconds=15)
STALE_AFTER = timedelta(seconds=45)  # three missed refreshes


@dataclass(frozen=True)
class Presence:
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime
    troubles: dict[str, str] = field(default_factory=dict)  # what is failing: loop → reason

    def running(self, now: datetime) -> bool:
        return now - self.seen_at <= STALE_AFTER

    def alive_here(self) -> bool:
        """Its process is alive on this machine, seen lately in the database or not.

        A service that cannot write (the database's disk full) cannot say it is up;
        on its own machine, ``status`` asks the process table instead.
        """
        return self.host == socket.gethostname() and _alive(self.pid)


def this_service() -> str:
    return _name(os.getpid(), socket.gethostname())


def _name(pid: int, host: str) -> str:
    return f"{PREFIX}{pid}@{host}"[:64]


def announce(engine: Engine, name: str, started_at: datetime, now: datetime,
             troubles: dict[str, str] | None = None) -> None:  # fmt: skip
    """Record (or refresh) that this service is up, and what is failing in it now."""
    record = {"host": socket.gethostname(), "pid": os.getpid(), "troubles": troubles or {}}
    value = json.dumps(record | {"started_at": started_at.isoformat(), "seen_at": now.isoformat()})
    with write_transaction(engine) as connection:
        statement = insert_for(connection.dialect.name, app_state).values(
            name=name, value=value, created_at=started_at
        )
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[app_state.c.name], set_={"value": statement.excluded.value}
            )
        )


def withdraw(engine: Engine, name: str) -> None:
    """A clean stop: this service is no longer up."""
    with write_transaction(engine) as connection:
        connection.execute(delete(app_state).where(app_state.c.name == name))


def clear_the_dead(engine: Engine) -> None:
    """Rows of services on this host whose process is gone (killed, not stopped)."""
    host = socket.gethostname()
    with engine.connect() as connection:
        dead = [presence for presence in services(connection)
                if presence.host == host and not _alive(presence.pid)]  # fmt: skip
    if dead:
        with write_transaction(engine) as connection:
            names = [_name(presence.pid, presence.host) for presence in dead]
            connection.execute(delete(app_state).where(app_state.c.name.in_(names)))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def services(connection: Connection) -> list[Presence]:
    """Every service that said it was up, newest sighting first."""
    query = select(app_state.c.value).where(app_state.c.name.startswith(PREFIX, autoescape=True))
    found = []
    for value in connection.execute(query).scalars():
        record = json.loads(value)
        started, seen = (datetime.fromisoformat(record[key]) for key in ("started_at", "seen_at"))
        troubles = record.get("troubles", {})  # absent from a service of an earlier rebook
        found.append(Presence(record["host"], record["pid"], started, seen, troubles))
    return sorted(found, key=lambda presence: presence.seen_at, reverse=True)
