"""``INSERT … ON CONFLICT``, which both backends have but each dialect builds itself."""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_for(dialect_name: str, table: Table):
    """An insert into ``table`` that has ``on_conflict_do_nothing`` / ``_do_update``."""
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
