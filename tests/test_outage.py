"""``rebook run`` across a database outage: every loop logs it once, waits it out and carries on.

Two real outages: PostgreSQL refusing every connection (``ALLOW_CONNECTIONS
false`` and its sessions ended, as a restart or a failover does), and the
disk under a SQLite database full (writes fail, as on a small box whose logs
filled it). While they last, a deferred message falls due, a scheduled run
fires, an export changes and a patient is added in Cliniko; afterwards each
of them has happened, once.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select, text

from campaigns.store.tables import clients, runs

from .conftest import POSTGRES_SERVER, Clinic, empty_tables
from .fake_cliniko import API_KEY, serving
from .service import RunningService
from .smtpd import SmtpServer
from .test_cliniko import account, cliniko_table
from .test_delivery import clinic_with
from .test_service import add_campaign
from .test_service_wakes import with_backoff

LOOPS = ("sync", "cliniko", "presence", "run of tock")
OUTAGE = 17.0  # seconds: longer than the presence's 15 s, so every loop meets it


class PostgresDown:
    """The clinic's PostgreSQL database refusing connections, its sessions ended."""

    also = ("queue",)  # reading the queue fails too (a full disk lets it read)

    def __init__(self, url: str) -> None:
        self.name = url.rsplit("/", 1)[1]
        self.admin = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")

    def _allow(self, allowed: bool) -> None:
        with self.admin.connect() as connection:
            connection.execute(
                text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
            )
            if not allowed:
                connection.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = :name AND pid <> pg_backend_pid()"),
                    {"name": self.name},
                )  # fmt: skip

    def begin(self) -> None:
        self._allow(False)

    def end(self) -> None:
        self._allow(True)
        self.admin.dispose()


class DiskFull:
    """The file system under the SQLite database full to the last byte."""

    also = ()

    def __init__(self, folder: Path) -> None:
        self.filler = folder / "filler"

    def begin(self) -> None:
        with contextlib.suppress(OSError), self.filler.open("wb") as file:
            while True:
                file.write(b"\0" * 65536)
                file.flush()

    def end(self) -> None:
        self.filler.unlink()


@pytest.fixture(params=["postgresql", "sqlite"])
def outage(request, tmp_path: Path):
    """A clinic, and the outage its database will have: (clinic, outage)."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        folder = tmp_path / "clinic"
        folder.mkdir()
        clinic = Clinic(folder, url)
        clinic.write_config()
        empty_tables(clinic.engine())
        down = PostgresDown(url)
        yield clinic, down
        down.end()
        for engine in clinic.engines:
            engine.dispose()
    else:
        folder = tmp_path / "disk"
        folder.mkdir()
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)],
                                 capture_output=True, text=True)  # fmt: skip
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
        clinic = Clinic(folder, "sqlite:///rebook.db")
        clinic.write_config()
        yield clinic, DiskFull(folder)
        for engine in clinic.engines:
            engine.dispose()
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_every_loop_waits_out_a_database_outage_and_catches_up(outage, tmp_path):
    clinic, down = outage
    exports = tmp_path / "exports"  # off the full disk: the owner's export still arrives
    exports.mkdir()
    fake = account()
    with SmtpServer() as smtp, serving(fake) as base_url:
        smtp.handler.script["person0@example.com"] = ["451 4.3.0 try later"]
        clinic_with(clinic, smtp.port)
        with_backoff(clinic, "3s", 5)
        (exports / "clients.csv").write_text((clinic.folder / "clients.csv").read_text())
        clinic.config.write_text(
            clinic.config.read_text()
            + f'\n[sync]\nclients = "{exports / "clients.csv"}"\nevery = "1s"\n'
            + cliniko_table(base_url, 'every = "1s"')
        )
        add_campaign(clinic, "tock", "every 10s")
        env = {"REBOOK_SYNC__CLINIKO__API_KEY": API_KEY}
        with RunningService(clinic.folder, "--log-format", "json", env=env) as service:
            service.wait_for('"deferred": 1')
            service.wait_for('"cliniko synced"')
            down.begin()
            began = datetime.now(UTC)
            with (exports / "clients.csv").open("a") as export:
                export.write("c900,late@example.com,Late,Arrival,yes\n")
            fake.add_patient(id=2001, updated_at=datetime.now(UTC))
            for loop in (*LOOPS, *down.also):
                service.wait_for(f'"{loop} failing: retrying until it works"', timeout=OUTAGE + 5)
            time.sleep(max(0.0, OUTAGE - (datetime.now(UTC) - began).total_seconds()))
            down.end()
            for loop in (*LOOPS, *down.also):
                service.wait_for(f'"{loop} working again"', timeout=70)
            deadline = time.monotonic() + 30
            while "person0@example.com" not in smtp.handler.addresses():
                assert time.monotonic() < deadline, service.log()
                time.sleep(0.2)
            assert service.stop() == 0, service.log()
    lines = [json.loads(line) for line in service.lines]  # every line is one JSON object
    failing = Counter(line["event"] for line in lines if line["event"].endswith("until it works"))
    assert set(failing) >= {f"{loop} failing: retrying until it works" for loop in LOOPS}
    assert max(failing.values()) == 1, failing  # once per outage, not once per try
    assert not any("traceback" in line for line in lines), service.log()
    assert smtp.handler.addresses().count("person0@example.com") == 1
    ids = dict(clinic.rows(clients, "id", "email"))
    assert ids["c900"] == "late@example.com" and "2001" in ids
    with clinic.engine().connect() as connection:
        ticks = connection.execute(
            select(runs.c.scheduled_for, runs.c.outcome).where(runs.c.campaign == "tock")
        ).all()
    during = [tick for tick in ticks if tick.scheduled_for >= began]
    assert during and {tick.outcome for tick in during} == {"done"}, ticks


def test_status_names_what_is_failing_in_the_service_and_drops_it_once_it_works(sqlite_clinic):
    """Cliniko refusing the key: the service goes on, and ``status`` says what to fix."""
    fake = account()
    with serving(fake) as base_url:
        sqlite_clinic.write_config(cliniko_table(base_url, 'every = "1s"'))
        wrong = {"REBOOK_SYNC__CLINIKO__API_KEY": "not-the-key-au2"}
        with RunningService(sqlite_clinic.folder, env=wrong) as service:
            service.wait_for("cliniko failing: retrying until it works")
            deadline = time.monotonic() + 10
            while "FAILING" not in (status := sqlite_clinic.rebook("status")).out:
                assert time.monotonic() < deadline, status.out + service.log()
                time.sleep(0.2)
            assert status.code == 0
            line = next(line for line in status.out.splitlines() if "FAILING" in line)
            assert f"FAILING in pid {service.process.pid}: cliniko: " in line
            assert "REBOOK_SYNC__CLINIKO__API_KEY" in line and "not-the-key" not in line
            failing = json.loads(sqlite_clinic.rebook("status", "--json").out)["services"][0]
            assert list(failing["failing"]) == ["cliniko"]
            health = httpx.get(f"http://{service.listen}/healthz")
            assert health.status_code == 503 and "cliniko: " in health.text, health.text
            assert service.stop() == 0
    assert service.log().count("cliniko failing") == 1


def test_a_command_during_an_outage_says_so_and_exits_1_a_wrong_database_name_exits_2(
    postgres_url, tmp_path
):
    folder = tmp_path / "clinic"
    folder.mkdir()
    clinic = Clinic(folder, postgres_url.replace("postgres@", "postgres:Tr0ub4dor@"))
    clinic.write_config()
    assert clinic.rebook("status").code == 0
    down = PostgresDown(postgres_url)
    down.begin()
    try:
        during = clinic.rebook("status")
    finally:
        down.end()
    assert during.code == 1, during
    assert "cannot be reached now" in during.err and "not currently accepting" in during.err
    assert "Tr0ub4dor" not in during.err + during.out and "Traceback" not in during.err
    clinic.write_config(database_url=postgres_url.rsplit("/", 1)[0] + "/no_such_database")
    wrong = clinic.rebook("status")
    assert wrong.code == 2 and "no_such_database" in wrong.err, wrong


def test_rebook_run_started_while_postgresql_is_down_waits_for_it_then_starts(
    postgres_url, tmp_path
):
    """A box that boots before its database: the service waits, it does not exit for good."""
    folder = tmp_path / "clinic"
    folder.mkdir()
    clinic = Clinic(folder, postgres_url)
    clinic.write_config()
    down = PostgresDown(postgres_url)
    down.begin()
    try:
        with RunningService(folder, "--log-format", "json") as service:
            service.wait_for('"database failing: retrying until it works"')
            assert "service started" not in service.log()
            down.end()
            service.wait_for('"database working again"', timeout=70)
            service.wait_for('"service started"')
            assert service.stop() == 0, service.log()
        down.begin()
        with RunningService(folder) as stopped:  # stopped while it waits: exit 0 all the same
            stopped.wait_for("database failing")
            assert stopped.stop() == 0, stopped.log()
    finally:
        down.end()
