"""Keys kept in the database: the web secret (when not configured) and the forget key.

Each is generated once, on first use, and kept in ``app_state``, so every
worker uses the same one. They are separate on purpose: rotating the web
secret (REBOOK_WEB__SECRET) must never make a forgotten address mailable again.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from pydantic import SecretStr
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from campaigns.store.tables import app_state
from campaigns.store.upsert import insert_for

SECRET_NAME = "web_secret"
FORGET_KEY_NAME = "forget_key"


def web_secret(connection: Connection, configured: SecretStr | None) -> bytes:
    """REBOOK_WEB__SECRET when set; otherwise one generated on first use and kept in the database.

    Every worker reads the same stored secret, so links made by one are honoured by all.
    """
    if configured is not None:
        return configured.get_secret_value().encode()
    stored = stored_key(connection, SECRET_NAME)
    connection.commit()  # end the read: the write below needs a transaction of its own
    if stored is None:
        connection.execution_options(sqlite_immediate=True)  # SQLite: take the write lock at BEGIN
        with connection.begin():
            stored = make_key(connection, SECRET_NAME)
        connection.execution_options(sqlite_immediate=False)
    return stored


# Built once: the endpoint asks for the forget key with every batch of unsubscribes.
_KEY = select(app_state.c.value).where(app_state.c.name == bindparam("name"))


def stored_key(connection: Connection, name: str) -> bytes | None:
    """The key kept under ``name``, or None before its first use."""
    stored = connection.execute(_KEY, {"name": name}).scalar()
    return None if stored is None else stored.encode()


def make_key(connection: Connection, name: str) -> bytes:
    """The key kept under ``name``, generated now if there is none; inside the caller's transaction.

    Two workers may race to make it: the second insert does nothing and both read the first.
    """
    connection.execute(
        insert_for(connection.dialect.name, app_state)
        .values(name=name, value=secrets.token_urlsafe(32), created_at=datetime.now(UTC))
        .on_conflict_do_nothing(index_elements=[app_state.c.name])
    )
    key = stored_key(connection, name)
    assert key is not None  # ours, or the one another worker made first
    return key
