"""A full disk, a read-only one, a database rebook's user may not write: one line, exit 1.

The disk is real: a tmpfs of a few megabytes mounted for the test (root
only; elsewhere these tests are skipped, saying why), filled up or remounted
read-only. PostgreSQL's read-only case is a session with
``default_transaction_read_only``, as on a standby.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from campaigns.config import Database
from campaigns.store.database import open_database
from campaigns.store.tables import clients

from .conftest import REBOOK, Clinic, run_rebook

SMALL = "id,email,first_name,last_name,marketing_consent,tags\n" + "".join(
    f"s{n},small{n}@example.com,Small,Client{n},yes,back-pain\n" for n in range(3)
)
# every command that reads or writes the database, run against one that refuses writes
COMMANDS = [
    ("segment", "everyone", "--count"),
    ("import", "clients", "small.csv"),
    ("unsubscribe", "small1@example.com"),
    ("forget", "small2@example.com", "--yes"),
    ("sync",),
    ("status",),
    ("send", "hello"),
    ("history", "small0@example.com"),
]
CONFIG = """
[segments.everyone]

[campaigns.hello]
segment = "everyone"
template = "reminders/book-next-massage"
subject = "Hello"
schedule = "every 1d"

[sync]
clients = "small.csv"
"""


def big_file(folder: Path, rows: int = 20_000) -> Path:
    path = folder / "big.csv"
    path.write_text(
        "id,email,first_name,last_name,marketing_consent,tags\n"
        + "".join(f"b{n},big{n}@example.com,Big,Client{n},yes,back-pain\n" for n in range(rows))
    )
    return path


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 1 MiB file system of its own (tmpfs), in a folder anyone may enter."""
    mount = Path(tempfile.mkdtemp(prefix="rebook-small-disk-"))
    mount.chmod(0o755)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        mount.rmdir()
        pytest.skip(f"a tmpfs cannot be mounted here (root only): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)
    mount.rmdir()


def resize(mount: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(mount)], check=True)


def fill(mount: Path) -> None:
    """Take every byte left on the disk."""
    with (mount / "filler").open("wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass


@pytest.fixture
def clinic_on_small_disk(small_disk: Path) -> Iterator[Clinic]:
    """A clinic folder, its SQLite database and all, on the small disk; three clients in it."""
    made = Clinic(small_disk / "clinic", "sqlite:///rebook.db")
    made.folder.mkdir()
    made.write_config(CONFIG)
    made.write("small.csv", SMALL)
    assert made.rebook("import", "clients", "small.csv").code == 0
    yield made
    for engine in made.engines:
        engine.dispose()


def assert_one_line(result, *expected: str) -> None:
    assert result.code == 1, (result.code, result.err)
    assert "Traceback" not in result.err and len(result.err.splitlines()) == 1, result.err
    assert result.err.startswith("error: ")
    for text in expected:
        assert text in result.err, result.err


def test_an_import_on_a_full_disk_says_so_in_one_line_and_imports_nothing(
    clinic_on_small_disk, tmp_path
):
    clinic = clinic_on_small_disk
    database = clinic.folder / "rebook.db"
    big = big_file(tmp_path)  # elsewhere: it would not fit
    result = clinic.rebook("import", "clients", str(big))
    assert_one_line(
        result,
        f"big.csv: nothing imported: cannot write to the database {database}: the disk is full "
        "(database or disk is full)",
        "make room on the disk, then run it again",
    )
    assert "big1@example.com" not in result.err  # the rows being written are not printed
    assert len(clinic.rows(clients, "id")) == 3

    # [sync]: the same, and no fingerprint kept: the pass after room was made imports it
    clinic.config.write_text(clinic.config.read_text().replace('"small.csv"', f'"{big}"'))
    synced = clinic.rebook("sync")
    assert_one_line(synced, "big.csv: nothing imported", "the disk is full")
    resize(clinic.folder.parent, "size=32m")
    again = clinic.rebook("sync")
    assert again.code == 0, again.err
    assert "imported 20000 clients: 20000 inserted" in again.out


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command[0])
def test_every_command_on_a_full_disk_says_so_in_one_line(clinic_on_small_disk, command):
    fill(clinic_on_small_disk.folder.parent)
    result = clinic_on_small_disk.rebook(*command)
    assert_one_line(result, f"{clinic_on_small_disk.folder / 'rebook.db'}: the disk is full")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command[0])
def test_every_command_on_a_read_only_disk_says_so_in_one_line(clinic_on_small_disk, command):
    resize(clinic_on_small_disk.folder.parent, "ro")
    result = clinic_on_small_disk.rebook(*command)
    assert_one_line(
        result,
        f"{clinic_on_small_disk.folder / 'rebook.db'}: it is read-only",
        "or mount the disk read-write",
    )


def test_a_database_rebook_may_not_write_says_so_in_one_line(clinic_on_small_disk):
    """Set up by root (rebook init, an import), then run by the service's own user."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv, to run rebook as another user")
    clinic = clinic_on_small_disk
    for command in (("import", "clients", "small.csv"), ("segment", "everyone", "--count")):
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(REBOOK), *command],
            cwd=clinic.folder, capture_output=True, text=True, timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("REBOOK_")},
        )  # fmt: skip
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert "it is read-only (attempt to write a readonly database)" in done.stderr
        assert "let rebook's user write the file and its folder" in done.stderr


def test_init_on_a_full_disk_says_so_in_one_line(small_disk):
    fill(small_disk)
    result = run_rebook("init", str(small_disk / "clinic"), "--sample-data", cwd=small_disk)
    assert_one_line(result, "No space left on device")


def test_a_read_only_postgresql_says_so_in_one_line(postgres_url, tmp_path):
    """A standby, or a database set read-only: every write refused (SQLSTATE 25006)."""
    open_database(Database(url=postgres_url)).dispose()  # the schema is there
    clinic = Clinic(tmp_path, postgres_url + "?options=-c%20default_transaction_read_only%3Don")
    clinic.write_config(CONFIG)
    clinic.write("small.csv", SMALL)
    for command in (("import", "clients", "small.csv"), ("unsubscribe", "small1@example.com")):
        result = clinic.rebook(*command)
        assert_one_line(
            result,
            "it is read-only (cannot execute",
            "point database.url at the primary server, not a standby, then run it again",
        )
        assert "postgresql+psycopg://***@127.0.0.1" in result.err  # the database, its user masked


def test_a_cliniko_sync_on_a_full_disk_writes_nothing_and_says_so(clinic_on_small_disk):
    import asyncio

    import httpx

    from campaigns.cliniko.api import ClinikoError
    from campaigns.cliniko.pull import sync_cliniko
    from campaigns.config import load_settings

    from .test_cliniko import API_KEY, NOW, _secret, account, cliniko_table

    clinic = clinic_on_small_disk
    clinic.write_config(cliniko_table("https://cliniko.test/v1"))
    settings = load_settings(clinic.config)
    cliniko = settings.sync.cliniko.model_copy(update={"api_key": _secret(API_KEY)})
    settings = settings.model_copy(
        update={"sync": settings.sync.model_copy(update={"cliniko": cliniko})}
    )
    engine = clinic.engine()  # opened before the disk fills, as a running service has it
    fill(clinic.folder.parent)
    transport = httpx.ASGITransport(app=account().app)
    with pytest.raises(ClinikoError) as raised:
        asyncio.run(sync_cliniko(engine, settings, NOW, transport=transport))
    assert str(raised.value).startswith(
        f"nothing written: cannot write to the database {clinic.folder / 'rebook.db'}: "
        "the disk is full"
    )
    assert [client_id for (client_id,) in clinic.rows(clients, "id")] == ["s0", "s1", "s2"]
