"""Core statements compiled once and run through the driver, for the few hot paths.

SQLAlchemy's per-execution work (building the statement, looking up its
compiled form, converting each parameter through two layers of processors)
costs more than the database's own work when a statement runs once per
message or per imported row. A ``PreparedStatement`` compiles a Core
statement once for the connection's dialect, converts values with the
column types' own bind processors, and hands plain rows to the driver's
``executemany``: the same SQL and the same stored values, a fraction of the
overhead.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

from sqlalchemy.engine import Connection, CursorResult, Dialect, Engine
from sqlalchemy.sql import Executable


class PreparedStatement:
    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self._convert = {
            name: processor
            for name, bind in compiled.binds.items()
            if (processor := bind.type.bind_processor(dialect)) is not None
        }
        # values the statement itself carries, such as status="sending"
        literals = {
            name: value
            for name, value in compiled.params.items()
            if not compiled.binds[name].required
        }
        self._literals = self._converted(literals)
        order = compiled.positiontup  # None for named parameter styles (psycopg)
        self._as_row = None if order is None else (lambda row: tuple(row[name] for name in order))
        if order is not None and len(order) > 1:
            self._as_row = itemgetter(*order)

    def _converted(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {
            name: self._convert[name](v) if name in self._convert else v
            for name, v in values.items()
        }

    def rows(self, rows: list[dict], **constants: Any) -> list:
        """The driver's parameters for ``rows``, which are converted in place.

        Each value goes through its column type's own processor, a column at a
        time; ``constants`` (the same for every row, such as a timestamp) and
        the statement's literals are converted once.
        """
        fixed = {**self._literals, **self._converted(constants)}
        for name, convert in self._convert.items():
            if name not in fixed:
                for row in rows:
                    row[name] = convert(row[name])
        if fixed:
            for row in rows:
                row.update(fixed)
        return rows if self._as_row is None else list(map(self._as_row, rows))

    def execute(self, connection: Connection, rows: list[dict], **constants: Any) -> CursorResult:
        """Run once per row (an executemany) on a SQLAlchemy connection."""
        return connection.exec_driver_sql(self.sql, self.rows(rows, **constants))

    def run(self, cursor, rows: list[dict], **constants: Any) -> None:
        """Run once per row on a driver cursor (see ``DriverConnection``)."""
        cursor.executemany(self.sql, self.rows(rows, **constants))


class DriverConnection:
    """One pooled driver connection kept for a hot path, with explicit transactions.

    It comes from the engine's pool (``Engine.raw_connection``), so it has the
    same settings as every other connection (WAL, busy timeout, foreign keys).
    """

    def __init__(self, engine: Engine) -> None:
        self._raw = engine.raw_connection()
        self._lock_file = None
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            self._lock_file = open(f"{engine.url.database}-writers.lock", "a+b")  # noqa: SIM115

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self._turn():
            cursor = self._raw.cursor()
            try:
                if self._lock_file is not None:
                    cursor.execute(
                        "BEGIN IMMEDIATE"
                    )  # take the write lock now, never upgrade later
                yield cursor
            except BaseException:
                self._raw.rollback()
                raise
            else:
                self._raw.commit()
            finally:
                cursor.close()

    @contextmanager
    def _turn(self) -> Iterator[None]:
        """SQLite: writers on this box queue on a file lock, handed over the moment it is free.

        SQLite's own busy handler polls, sleeping 1 ms, then 2, 5, 10…, which
        is ten times a ledger commit: two workers taking turns spent most of
        their time asleep.
        """
        if self._lock_file is None:
            yield
            return
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    def close(self) -> None:
        self._raw.close()
        if self._lock_file is not None:
            self._lock_file.close()
