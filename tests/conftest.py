"""Shared fixtures: real SQLite files, the real PostgreSQL, the real ``rebook`` command.

PostgreSQL is the one at 127.0.0.1:5432 (override with REBOOK_TEST_POSTGRES).
Each test session works in a database of its own, created here and dropped at
the end. Under CI (CI=true) a PostgreSQL that cannot be reached fails the
tests that need it; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from campaigns.config import Database
from campaigns.store.database import open_database
from campaigns.store.tables import metadata

POSTGRES_SERVER = os.environ.get(
    "REBOOK_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REBOOK = Path(sys.executable).with_name("rebook")

BASE_CONFIG = """\
[clinic]
name = "Waso Physiotherapy"
address = "1 Example Street, Perth WA 6000"
timezone = "Australia/Perth"
booking_url = "https://waso.example/book"

[database]
url = "{database}"

[mail]
from = "Waso Physiotherapy <hello@waso.example>"
"""


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session."""
    name = f"rebook_test_{uuid.uuid4().hex[:10]}"
    server = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        server.dispose()
        reason = f"PostgreSQL at {POSTGRES_SERVER} is not reachable: {error}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    url = POSTGRES_SERVER.rsplit("/", 1)[0] + "/" + name
    yield url
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    server.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty rebook database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'rebook.db'}"
    url = request.getfixturevalue("postgres_url")
    engine = open_database(Database(url=url))
    empty_tables(engine)
    engine.dispose()
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = open_database(Database(url=database_url))
    yield engine
    engine.dispose()


def empty_tables(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Clinic:
    """A clinic folder with a config.toml, and the real ``rebook`` command run inside it."""

    folder: Path
    database_url: str
    engines: list[Engine] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.folder / "config.toml"

    def write_config(self, extra: str = "", *, database_url: str | None = None) -> Path:
        body = BASE_CONFIG.format(database=database_url or self.database_url)
        self.config.write_text(body + textwrap.dedent(extra), encoding="utf-8")
        return self.config

    def write(self, name: str, content: str) -> Path:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
        return path

    def engine(self) -> Engine:
        """The clinic's database, schema up to date, as rebook itself would open it."""
        url = self.database_url
        if url == "sqlite:///rebook.db":
            url = f"sqlite:///{self.folder / 'rebook.db'}"
        engine = open_database(Database(url=url))
        self.engines.append(engine)
        return engine

    def rows(self, table, *columns: str) -> list[tuple]:
        engine = self.engine()
        with engine.connect() as connection:
            query = select(*(table.c[name] for name in columns)).order_by(*columns)
            found = [tuple(row) for row in connection.execute(query)]
        return found

    def rebook(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return run_rebook(*args, cwd=self.folder, env=env)


def run_rebook(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Result:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REBOOK_")}
    environment.update(env or {})
    done = subprocess.run(
        [str(REBOOK), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def clinic(tmp_path: Path, database_url: str) -> Iterator[Clinic]:
    """A clinic on each database backend, config.toml written with the basics."""
    folder = tmp_path / "clinic"
    folder.mkdir()
    made = Clinic(folder, database_url)
    made.write_config()
    yield made
    for engine in made.engines:
        engine.dispose()


@pytest.fixture
def sqlite_clinic(tmp_path: Path) -> Iterator[Clinic]:
    """A clinic on SQLite only, for behaviour that does not depend on the backend."""
    folder = tmp_path / "clinic"
    folder.mkdir()
    made = Clinic(folder, "sqlite:///rebook.db")
    made.write_config()
    yield made
    for engine in made.engines:
        engine.dispose()


def run_on_terminal(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, bytes]:
    """Run ``rebook`` with stderr on a pseudo-terminal; return the result and what it drew there."""
    import pty

    controller, terminal = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REBOOK_")}
    environment |= {"TERM": "xterm", "COLUMNS": "100", **(env or {})}
    done = subprocess.run([str(REBOOK), *args], cwd=cwd, env=environment, stdout=subprocess.PIPE,
                          stderr=terminal, text=True, timeout=60)  # fmt: skip
    os.close(terminal)
    drawn = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the terminal's other end is closed and drained
            break
        if not chunk:
            break
        drawn += chunk
    os.close(controller)
    return done, drawn


DEFAULT_CAMPAIGNS = ["book-next-massage", "back-pain-articles", "appointment-reminder"]


def debian_tool(name: str) -> str:
    """A program ``.ci/run`` installs from Debian: skipped without it, failed under CI=true."""
    found = shutil.which(name)
    if found is None:
        reason = f"{name} is not installed (.ci/run installs Debian's {name})"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def example_email(folder: Path, campaign: str):
    """One of the example config's campaigns, rendered and composed for a made-up client.

    Returns (settings, rendered content, the message's bytes).
    """
    from datetime import UTC, datetime

    from campaigns.config import load_settings
    from campaigns.content.context import sample_client
    from campaigns.content.message import MessageComposer, new_message_id, sender_from
    from campaigns.content.render import CampaignRenderer
    from campaigns.resources import example_config

    (folder / "config.toml").write_text(example_config().read_text())
    settings = load_settings(folder / "config.toml")
    renderer = CampaignRenderer(settings, campaign)
    now = datetime.now(UTC)
    client, last, upcoming = sample_client(now, settings.clinic.timezone)
    article = renderer.articles[0] if renderer.articles else None
    link = (
        "https://mail.waso.example/unsubscribe/QzAwMDAwMg.gwYGP41A78S6Cl4YqWm0bQ"
        if renderer.marketing
        else None
    )
    content = renderer.render(client, last, upcoming, link, article)
    sender = sender_from(settings.mail)
    message = MessageComposer(sender).compose(
        content, to_name=client.full_name, to_email=client.email, message_id=new_message_id(sender),
        date=now, unsubscribe_url=link,
    )  # fmt: skip
    return settings, content, message
