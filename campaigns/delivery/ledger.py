"""The send ledger as one worker writes it: claim, start, record, recover.

Every message is in the ledger before it leaves. The states and the writes
that move them:

    queued ──claim (a batch, FOR UPDATE SKIP LOCKED)──▶ claimed
    claimed ──start (committed before the SMTP transaction)──▶ sending
    sending ──record──▶ sent | deferred (retried when due) | failed

A connection's ``start`` is committed together with the result of that
connection's previous message, so at any moment a worker has at most one row
per connection in ``sending``: after a crash, those (and only those) are sent
again, with the Message-ID they already carry. Rows a crashed worker had
claimed but not started go back to ``queued``: they never left.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    String,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from campaigns.delivery.audience import VISIT_KEY
from campaigns.delivery.recovery import DEAD_AFTER, recover_orphans
from campaigns.delivery.suppression import barred, suppression_insert
from campaigns.store.forgotten import ForgetHasher, hasher
from campaigns.store.prepared import DriverConnection, PreparedStatement
from campaigns.store.tables import clients, forgotten, sends, visits, workers

HEARTBEAT_EVERY = timedelta(seconds=5)
BOUNCE_CODES = (550, 551, 553)  # refused recipients: the address is suppressed


@dataclass(frozen=True)
class Claimed:
    """A ledger row this worker owns and will send."""

    id: int
    client_id: str
    key: str
    email: str
    message_id: str
    attempts: int


@dataclass(frozen=True)
class Result:
    """What became of one message."""

    id: int
    status: str  # sent, deferred, failed or error
    reply: str
    next_attempt_at: datetime | None = None
    bounced_address: str | None = None  # set for a hard bounce: suppress it


# Whether a ledger row may still leave, asked the moment it does: the client
# may have unsubscribed, withdrawn consent or bounced since it was queued.
_CONSENT_GONE = sends.c.marketing.is_(True) & not_(
    exists().where(clients.c.id == sends.c.client_id, clients.c.marketing_consent.is_(True))
)
_BARRED = barred(sends.c.email, sends.c.client_id, marketing=sends.c.marketing)
# An appointment reminder whose appointment was cancelled, or has passed, since.
_VISIT_GONE = sends.c.key.like(VISIT_KEY + "%") & not_(
    exists().where(
        visits.c.id == func.substr(sends.c.key, len(VISIT_KEY) + 1),  # by primary key
        visits.c.status == literal_column("'booked'"),
        visits.c.starts_at >= bindparam("stamp"),
    )
)

# A forgotten address, by its keyed hash (computed when the row is claimed):
# only a row that slipped in after a forget (which deletes the rows waiting)
# would have one, and it must not leave either.
_FORGOTTEN = exists().where(forgotten.c.hash == bindparam("address_hash"))

# Still this worker's claim: after a database outage another worker may have
# found this one silent, given its rows back to the queue and claimed them.
_MINE = (sends.c.worker == bindparam("owner")) & (sends.c.status == literal_column("'claimed'"))

# Built once: a run executes these for every message.
_START = (
    update(sends)
    .where(
        sends.c.id == bindparam("row_id"),
        _MINE,
        not_(_CONSENT_GONE),
        not_(_BARRED),
        not_(_VISIT_GONE),
        not_(_FORGOTTEN),
    )
    .values(status="sending", attempts=sends.c.attempts + 1, updated_at=bindparam("stamp"))
)
_SKIP = (
    update(sends)
    .where(sends.c.id == bindparam("row_id"), _MINE)
    .values(
        status="skipped",
        last_reply=case(
            (_VISIT_GONE, "not sent: the appointment was cancelled or has passed"),
            (_CONSENT_GONE, "not sent: marketing consent was withdrawn after it was queued"),
            else_="not sent: unsubscribed, bounced or forgotten after it was queued",
        ),
        worker=None,
        updated_at=bindparam("stamp"),
    )
)
_ROW = select(sends.c.id).where(sends.c.id == bindparam("row_id"))
_SENDING = _ROW.where(sends.c.status == "sending", sends.c.worker == bindparam("owner"))
_RECORD = (
    update(sends)
    .where(sends.c.id == bindparam("row_id"))
    .values(
        status=bindparam("new_status"),
        last_reply=bindparam("reply"),
        next_attempt_at=bindparam("retry_at"),
        sent_at=bindparam("sent_at"),
        worker=None,
        updated_at=bindparam("stamp"),
    )
)


class Ledger:
    """One worker's view of one campaign's rows in ``sends``."""

    def __init__(self, engine: Engine, campaign: str, message_domain: str) -> None:
        self.engine, self.campaign = engine, campaign
        self.worker = secrets.token_hex(8)
        self.host, self.pid = socket.gethostname(), os.getpid()
        self._driver: DriverConnection | None = None
        self._statements: dict = {}
        self._hasher: ForgetHasher | None = None  # read once a client was ever forgotten
        self._hashes: dict[int, str] = {}  # claimed row → its address's keyed hash
        self._message_id = (
            literal("<") + cast(sends.c.id, String) + literal(f".{self.worker}@{message_domain}>")
        )

    def writing(self) -> Connection:
        """A connection whose transactions take SQLite's write lock at BEGIN."""
        return self.engine.connect().execution_options(sqlite_immediate=True)

    # -- workers ---------------------------------------------------------------

    def register(self, now: datetime) -> None:
        with self.writing() as connection, connection.begin():
            connection.execute(
                insert(workers).values(
                    id=self.worker, host=self.host, pid=self.pid, started_at=now, heartbeat_at=now
                )
            )

    def heartbeat(self, now: datetime) -> None:
        with self.writing() as connection, connection.begin():
            connection.execute(
                update(workers).where(workers.c.id == self.worker).values(heartbeat_at=now)
            )

    def live_workers(self, now: datetime) -> int:
        """Workers delivering now, anywhere (this one included): they share the rate."""
        query = (
            select(func.count())
            .select_from(workers)
            .where(workers.c.heartbeat_at >= now - DEAD_AFTER)
        )
        with self.engine.connect() as connection:
            return connection.execute(query).scalar_one()

    def retire(self) -> None:
        """Leave: rows claimed but not started go back to the queue."""
        self.close()
        with self.writing() as connection, connection.begin():
            connection.execute(
                update(sends)
                .where(sends.c.worker == self.worker, sends.c.status == "claimed")
                .values(status="queued", worker=None)
            )
            connection.execute(delete(workers).where(workers.c.id == self.worker))

    def recover(self, now: datetime) -> int:
        """Requeue the claimed and in-flight rows of workers that are gone; return how many."""
        return recover_orphans(self.engine, now, keep=self.worker)

    # -- the work ---------------------------------------------------------------

    def claim(self, limit: int, now: datetime) -> list[Claimed]:
        """Take up to ``limit`` queued or due deferred rows; other workers skip them."""
        ready = (
            select(sends.c.id)
            .where(
                sends.c.campaign == self.campaign,
                self._ready(now),
            )
            .order_by(sends.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(sends)
            .where(sends.c.id.in_(ready.scalar_subquery()))
            .values(
                status="claimed",
                worker=self.worker,
                updated_at=now,
                message_id=func.coalesce(sends.c.message_id, self._message_id),
            )
            .returning(
                sends.c.id,
                sends.c.client_id,
                sends.c.key,
                sends.c.email,
                sends.c.message_id,
                sends.c.attempts,
            )
        )
        with self.writing() as connection, connection.begin():
            rows = connection.execute(statement).all()
            if self._hasher is None:
                self._hasher = hasher(connection)
        claimed = sorted((Claimed(*row) for row in rows), key=lambda claimed: claimed.id)
        if self._hasher is not None:
            self._hashes.update((c.id, self._hasher.address(c.email)) for c in claimed)
        return claimed

    def commit(self, starting: Iterable[int], results: Iterable[Result], now: datetime) -> set[int]:
        """One transaction: record finished messages, then mark the next ones as leaving.

        Returns the rows of ``starting`` that may no longer leave (recorded as
        skipped). This runs about once per message sent, so it keeps one
        driver connection for the run and its statements are compiled once;
        the check costs nothing more when every row may go.
        """
        starting, results = list(starting), list(results)
        if self._driver is None:
            self._driver = DriverConnection(self.engine)
        barred: set[int] = set()
        with self._driver.transaction() as cursor:
            if results:
                self._record(cursor, results, now)
            if starting:
                rows = [{"row_id": i, "address_hash": self._hashes.pop(i, "")} for i in starting]
                self._prepared(_START).run(cursor, rows, stamp=now, owner=self.worker)
                if cursor.rowcount != len(starting):
                    barred = self._skip(cursor, starting, now)
        return barred

    def _skip(self, cursor, starting: list[int], now: datetime) -> set[int]:
        """Record the rows that were not started as skipped, with the reason.

        Returns every row that did not start: skipped, gone (a forgotten
        client's), or no longer this worker's. Only a row now ``sending`` for
        this worker may leave.
        """
        barred = set()
        for row_id in starting:
            self._prepared(_SKIP).run(cursor, [{"row_id": row_id}], stamp=now, owner=self.worker)
            if cursor.rowcount or not self._found(cursor, _SENDING, row_id, owner=self.worker):
                barred.add(row_id)
        return barred

    def _found(self, cursor, query, row_id: int, **constants) -> bool:
        prepared = self._prepared(query)
        cursor.execute(prepared.sql, prepared.rows([{"row_id": row_id}], **constants)[0])
        return cursor.fetchone() is not None

    def _prepared(self, statement) -> PreparedStatement:
        if statement not in self._statements:
            self._statements[statement] = PreparedStatement(statement, self.engine.dialect)
        return self._statements[statement]

    def close(self) -> None:
        if self._driver is not None:
            self._driver.close()
            self._driver = None

    def _record(self, cursor, results: list[Result], now: datetime) -> None:
        for result in results:  # one that never started (an error) still has its hash
            self._hashes.pop(result.id, None)
        rows = [
            {
                "row_id": r.id,
                "new_status": r.status,
                "reply": r.reply[:2000].replace("\x00", "\\0"),  # PostgreSQL text holds no NUL
                "retry_at": r.next_attempt_at,
                "sent_at": now if r.status == "sent" else None,
            }
            for r in results
        ]
        self._prepared(_RECORD).run(cursor, rows, stamp=now)
        bounces = [
            {
                "address": r.bounced_address,
                "reason": "bounced",
                "detail": r.reply[:2000],
                "created_at": now,
            }
            for r in results  # a row gone was a forgotten client's: store nothing of it
            if r.bounced_address and self._found(cursor, _ROW, r.id)
        ]
        if bounces:
            self._prepared(suppression_insert(self.engine.dialect.name)).run(cursor, bounces)

    def release(self, ids: Iterable[int], now: datetime) -> None:
        """Give claimed rows back to the queue (a run stopping early)."""
        ids = list(ids)
        for row_id in ids:
            self._hashes.pop(row_id, None)
        if ids:
            with self.writing() as connection, connection.begin():
                connection.execute(
                    update(sends)
                    .where(
                        sends.c.id.in_(ids),
                        sends.c.status == "claimed",
                        sends.c.worker == self.worker,
                    )
                    .values(status="queued", worker=None, updated_at=now)
                )

    def finished_since(self, moment: datetime) -> int:
        """Rows of this campaign sent, deferred or failed since ``moment``, by any worker."""
        return self._count(
            sends.c.status.in_(("sent", "deferred", "failed")), sends.c.updated_at >= moment
        )

    def waiting(self, now: datetime) -> int:
        """Rows of this campaign ready to go now."""
        return self._count(self._ready(now))

    def release_held(self, connection: Connection, now: datetime) -> int:
        """Let this campaign's messages held for quiet hours go now."""
        statement = (
            update(sends)
            .where(
                sends.c.campaign == self.campaign,
                sends.c.status == "queued",
                sends.c.next_attempt_at > now,
            )
            .values(next_attempt_at=None, updated_at=now)
        )
        return connection.execute(statement).rowcount

    def held(self, now: datetime) -> tuple[int, datetime | None]:
        """Rows of this campaign waiting for quiet hours to end, and the earliest end."""
        query = select(func.count(), func.min(sends.c.next_attempt_at)).where(
            sends.c.campaign == self.campaign,
            sends.c.status == "queued",
            sends.c.next_attempt_at > now,
        )
        with self.engine.connect() as connection:
            count, until = connection.execute(query).one()
        return count, until

    def _count(self, *conditions) -> int:
        query = (
            select(func.count())
            .select_from(sends)
            .where(sends.c.campaign == self.campaign, *conditions)
        )
        with self.engine.connect() as connection:
            return connection.execute(query).scalar_one()

    @staticmethod
    def _ready(now: datetime):
        return ready(now)


def ready(now: datetime):
    """Queued (and not held for quiet hours past ``now``), or deferred and due."""
    return or_(
        (sends.c.status == "queued")
        & or_(sends.c.next_attempt_at.is_(None), sends.c.next_attempt_at <= now),
        (sends.c.status == "deferred") & (sends.c.next_attempt_at <= now),
    )


def due_campaigns(connection: Connection, now: datetime) -> list[str]:
    """Every campaign with messages ready to go now, by any worker's run or retry."""
    query = select(sends.c.campaign).where(ready(now)).distinct().order_by(sends.c.campaign)
    return list(connection.execute(query).scalars())


def next_due(connection: Connection, now: datetime) -> datetime | None:
    """When the earliest deferred or held message falls due, if any waits."""
    query = select(func.min(sends.c.next_attempt_at)).where(
        sends.c.status.in_(("deferred", "queued")), sends.c.next_attempt_at > now
    )
    return connection.execute(query).scalar()
