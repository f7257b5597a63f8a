"""``INSERT … ON CONFLICT``, which both backends have but each dialect builds itself."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from campaigns.store.tables import app_state


def insert_for(dialect_name: str, table: Table):
    """An insert into ``table`` that has ``on_conflict_do_nothing`` / ``_do_update``."""
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def set_state(connection: Connection, name: str, value: str, at: datetime) -> None:
    """Write one ``app_state`` row (a mark, a fingerprint), its time ``at``, new or replacing."""
    statement = insert_for(connection.dialect.name, app_state).values(
        name=name, value=value, created_at=at
    )
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[app_state.c.name], set_={"value": value, "created_at": at}
        )
    )
