"""Opening the store: migrations on start, the SQLite settings that keep it safe."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from campaigns.config import Database
from campaigns.store.database import MIGRATIONS, SCHEMA_REVISION, current_revision, open_database
from campaigns.store.tables import app_state, clients, metadata


def test_schema_revision_is_alembics_head():
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_REVISION


def test_migrations_build_exactly_the_tables_the_code_uses(engine):
    with engine.connect() as connection:
        assert current_revision(connection) == SCHEMA_REVISION
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path):
    engine = open_database(Database(url=f"sqlite:///{tmp_path}/x.db"))
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() >= 1000


def test_times_come_back_as_aware_utc(engine):
    perth = timezone(timedelta(hours=8))
    with engine.begin() as connection:
        connection.execute(
            insert(clients).values(
                id="1", email="a@b.example", updated_at=datetime(2026, 1, 1, 8, tzinfo=perth)
            )
        )
        stored = connection.execute(select(clients.c.updated_at)).scalar_one()
    assert stored == datetime(2026, 1, 1, 0, tzinfo=UTC)
    assert stored.tzinfo is not None and stored.utcoffset() == timedelta(0)


def test_a_current_schema_costs_no_migration_import(tmp_path):
    url = f"sqlite:///{tmp_path}/x.db"
    open_database(Database(url=url)).dispose()
    probe = (
        "import sys; from campaigns.config import Database;"
        "from campaigns.store.database import open_database;"
        f"open_database(Database(url={url!r})); print('alembic' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_upgrade_is_idempotent_and_keeps_data(tmp_path):
    url = f"sqlite:///{tmp_path}/x.db"
    engine = open_database(Database(url=url))
    with engine.begin() as connection:
        connection.execute(
            insert(clients).values(id="1", email="a@b.example", updated_at=datetime.now(UTC))
        )
    engine.dispose()
    with open_database(Database(url=url)).connect() as connection:
        assert connection.execute(select(clients.c.email)).scalar_one() == "a@b.example"


def test_a_database_that_cannot_be_opened_is_a_config_error_one_down_is_unavailable(tmp_path):
    import pytest

    from campaigns.errors import ConfigError, DatabaseUnavailable

    # Nothing answers on the port: PostgreSQL stopped, most likely; the command can be run
    # again once it is back (exit 1), and rebook run waits for it.
    with pytest.raises(DatabaseUnavailable, match=r"127\.0\.0\.1:1/nope cannot be reached now"):
        open_database(Database(url="postgresql+psycopg://postgres@127.0.0.1:1/nope"))
    with pytest.raises(ConfigError, match=r"database\.url"):
        # config validation refuses this port first; open_database must cope on its own too
        open_database(
            Database.model_construct(url="postgresql+psycopg://postgres@127.0.0.1:notaport/db")
        )
    with pytest.raises(ConfigError, match=r"database\.url: cannot open"):
        open_database(Database(url=f"sqlite:///{tmp_path}/missing-folder/x.db"))


def test_upgrading_to_outcomes_keeps_visits_and_leaves_them_undated(tmp_path):
    """Visits imported before rebook kept ``first_seen_at`` cannot be dated: NULL, not a guess."""
    from alembic import command
    from sqlalchemy import create_engine

    from campaigns.store.tables import visits

    url = f"sqlite:///{tmp_path}/old.db"
    old = create_engine(url)
    with old.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
        stamp = "2026-01-01 00:00:00.000000"
        connection.execute(
            text(
                f"INSERT INTO clients (id, email, updated_at) VALUES ('1', 'a@b.example', '{stamp}')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO visits (id, client_id, starts_at, service, status, updated_at) "
                f"VALUES ('v1', '1', '{stamp}', 'massage', 'booked', '{stamp}')"
            )
        )
    old.dispose()
    engine = open_database(Database(url=url))
    with engine.connect() as connection:
        assert connection.execute(select(visits.c.id, visits.c.first_seen_at)).all() == [
            ("v1", None)
        ]
    engine.dispose()


def test_a_database_error_never_quotes_the_values_it_was_given(engine):
    """The statement's values can be a stored secret or a client's details; errors reach logs."""
    row = {"name": "web_secret", "value": "SEKRET-value-0123456789",
           "created_at": datetime.now(UTC)}  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(app_state).values(**row))
    with pytest.raises(IntegrityError) as caught, engine.begin() as connection:
        connection.execute(insert(app_state).values(**row))
    assert "SEKRET" not in str(caught.value)
