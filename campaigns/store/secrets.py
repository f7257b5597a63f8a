"""The web secret that signs unsubscribe links, kept in the database when not configured."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.engine import Connection

from campaigns.store.tables import app_state
from campaigns.store.upsert import insert_for

SECRET_NAME = "web_secret"


def web_secret(connection: Connection, configured: SecretStr | None) -> bytes:
    """REBOOK_WEB__SECRET when set; otherwise one generated on first use and kept in the database.

    Every worker reads the same stored secret, so links made by one are honoured by all.
    """
    if configured is not None:
        return configured.get_secret_value().encode()
    query = select(app_state.c.value).where(app_state.c.name == SECRET_NAME)
    stored = connection.execute(query).scalar()
    connection.commit()  # end the read: the write below needs a transaction of its own
    if stored is None:
        connection.execution_options(sqlite_immediate=True)  # SQLite: take the write lock at BEGIN
        with connection.begin():
            connection.execute(
                insert_for(connection.dialect.name, app_state)
                .values(
                    name=SECRET_NAME, value=secrets.token_urlsafe(32), created_at=datetime.now(UTC)
                )
                .on_conflict_do_nothing(index_elements=[app_state.c.name])
            )
        connection.execution_options(sqlite_immediate=False)
        stored = connection.execute(
            query
        ).scalar_one()  # ours, or the one another worker made first
        connection.commit()
    return stored.encode()
