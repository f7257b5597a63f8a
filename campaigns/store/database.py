"""Opening the database: engine settings per backend, and schema upgrades on start.

SQLite runs in WAL mode with foreign keys on and a busy timeout. pysqlite
defers ``BEGIN`` (and so the write lock) to the first write, which lets two
writers deadlock on upgrade; we emit ``BEGIN`` ourselves, ``BEGIN IMMEDIATE``
when a connection asks for it with ``execution_options(sqlite_immediate=True)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from campaigns.config import Database
from campaigns.config.report import mask_secrets, mask_url
from campaigns.errors import ConfigError, DatabaseUnavailable
from campaigns.store.expressions import SQLITE_CONTROL_BUCKET, control_bucket
from campaigns.store.refusals import storage_failure

# The newest migration under campaigns/store/migrations/versions. When the database
# already carries it, start-up does no migration work and never imports Alembic.
# tests/test_database.py checks this against Alembic's own head.
SCHEMA_REVISION = "0008"
MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 30_000  # a writer waits this long for another to finish
_PG_MIGRATION_LOCK = 0x7265626F6F6B  # "rebook": one upgrade at a time among workers


def open_database(config: Database, *, upgrade: bool = True) -> Engine:
    """An engine on the configured database, its schema brought up to date."""
    try:
        engine = create_engine(config.url, **_engine_options(config))
    except (SQLAlchemyError, ValueError) as error:  # a URL SQLAlchemy cannot parse
        raise ConfigError(mask_secrets(f"database.url: {error}", config.url)) from None
    if config.is_sqlite:
        _make_sqlite_behave(engine)
    try:
        if upgrade:
            upgrade_schema(engine)
        else:
            with engine.connect():
                pass
    except SQLAlchemyError as error:
        engine.dispose()
        refused = storage_failure(error, engine.url) or unavailable(error, engine.url)
        if refused is not None:
            raise refused from None
        reason = (
            getattr(error, "orig", None) or error
        )  # the driver's own words, when there are some
        shown = mask_url(config.url)
        raise ConfigError(
            mask_secrets(f"database.url: cannot open {shown!r}: {reason}", config.url)
        ) from None
    return engine


# What PostgreSQL and psycopg say of a mistake in database.url, not of a database that is
# down: a name, a role or a password that is wrong, a host that does not exist.
_MISTAKES = ("does not exist", "authentication failed", "no pg_hba.conf entry",
             "name or service not known", "nodename nor servname", "invalid dsn",
             "invalid connection option", "invalid sslmode", "invalid integer value",
             "invalid value", "password")  # fmt: skip


def unavailable(error: BaseException, url: URL) -> DatabaseUnavailable | None:
    """``error`` as ``DatabaseUnavailable`` when the database is out of reach for now, else None.

    A server that refuses connections, is starting up or shutting down, drops
    the connection or does not answer in time; SQLite locked by another
    process for longer than the busy timeout. A mistake in the URL (see
    ``_MISTAKES``) is not: waiting would not fix it.
    """
    if not isinstance(error, OperationalError | InterfaceError):
        return None
    words = str(getattr(error, "orig", None) or error).strip()
    first = words.splitlines()[0] if words else type(error).__name__
    if url.get_backend_name() == "sqlite":
        if "database is locked" not in words:
            return None
    elif any(mistake in words.lower() for mistake in _MISTAKES):
        return None
    whole = url.render_as_string(hide_password=False)
    text = f"the database {mask_url(whole)} cannot be reached now: {first}"
    return DatabaseUnavailable(mask_secrets(text, whole))


def _engine_options(config: Database) -> dict:
    # An error's text never lists a statement's parameters: they can be a stored secret
    # (the web secret, the forget key) or a client's details, and errors reach logs.
    if config.is_sqlite:
        return {"connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000}, "hide_parameters": True}
    return {"pool_pre_ping": True, "hide_parameters": True}


def _make_sqlite_behave(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across crashes of the process
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()
        # PostgreSQL computes the control-group hash with md5(); SQLite has none
        dbapi_connection.create_function(
            SQLITE_CONTROL_BUCKET, 2, control_bucket, deterministic=True
        )

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One writing transaction; on SQLite it takes the write lock at BEGIN (see above)."""
    connection = engine.connect().execution_options(sqlite_immediate=True)
    with connection, connection.begin():
        yield connection


REFRESH_STATISTICS_FROM = 1_000  # rows written at once: enough to mislead PostgreSQL's planner


def refresh_statistics(engine: Engine, *tables: str) -> None:
    """PostgreSQL: ``ANALYZE`` tables a bulk write has just grown.

    Autovacuum catches up within minutes, but a segment or audience query
    planned meanwhile on "this table is empty" can take a minute instead of a
    few milliseconds (measured: 42 s against 0.04 s for 20,000 clients).
    SQLite plans these queries well without statistics: nothing to do there.
    """
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as connection:
        connection.exec_driver_sql(f"ANALYZE {', '.join(tables)}")
        connection.commit()


def current_revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade_schema(engine: Engine) -> None:
    """Apply pending migrations; a no-op costing one query when the schema is current."""
    with engine.connect() as connection:
        if current_revision(connection) == SCHEMA_REVISION:
            return
    from alembic import command
    from alembic.config import Config
    from alembic.util.exc import CommandError

    with engine.connect() as connection:
        connection = connection.execution_options(sqlite_immediate=True)
        with connection.begin():
            if engine.dialect.name == "postgresql":
                connection.execute(text(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})"))
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            try:
                command.upgrade(config, "head")
            except CommandError as error:
                raise ConfigError(
                    f"database.url: the database's schema is not one this rebook knows "
                    f"({error}); is a newer rebook using it?"
                ) from None
