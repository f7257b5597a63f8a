"""``deploy/``: the systemd unit, its EnvironmentFile template, and the READY/STOPPING handshake.

The unit is checked by systemd's own ``systemd-analyze verify`` and read back
for what the service relies on; the handshake runs the real ``rebook run``
against a datagram socket the test binds, the way systemd listens.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from campaigns.delivery.workers import PARALLEL_FROM
from campaigns.store.tables import sends
from jobs.running import STOP_TIMEOUT
from jobs.systemd import notify

from .conftest import REBOOK
from .service import RunningService
from .smtpd import SmtpServer
from .test_delivery import clinic_with
from .test_service import add_campaign

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNIT = DEPLOY / "rebook.service"
ENV_EXAMPLE = DEPLOY / "rebook.env.example"


def read_unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read_string(UNIT.read_text())
    return unit


def seconds(value: str) -> float:
    """A systemd time span as the unit writes it ("45s", "2min", "90")."""
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60}
    match = re.fullmatch(r"(\d+)\s*([a-z]*)", value.strip())
    assert match and match[2] in units, f"unexpected time span {value!r}"
    return int(match[1]) * units[match[2]]


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound at a path, and the ``NOTIFY_SOCKET`` value that names it."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(30)
        yield sock, str(path)


# -- the unit -----------------------------------------------------------------------------


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian's systemd package has it)")
    unit = tmp_path / "rebook.service"  # verify wants ExecStart to exist: this venv's rebook
    unit.write_text(UNIT.read_text().replace("/opt/rebook/venv/bin/rebook", str(REBOOK)))
    done = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # unknown keys are only warned about


def test_the_unit_runs_rebook_as_its_own_user_and_restarts_it_on_failure():
    service = read_unit()["Service"]
    assert service["ExecStart"].split()[:2] == ["/opt/rebook/venv/bin/rebook", "run"]
    assert service["User"] == "rebook" and service["Group"] == "rebook"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"  # a bad config does not fix itself
    assert service["EnvironmentFile"] == "/etc/rebook/rebook.env"


def test_the_unit_waits_for_ready_and_reloads_with_sighup():
    service = read_unit()["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"


def test_the_unit_stops_every_process_and_waits_longer_than_the_service_does():
    service = read_unit()["Service"]
    assert service["KillMode"] == "control-group"  # see the unit and the README
    assert service["KillSignal"] == "SIGTERM"
    assert seconds(service["TimeoutStopSec"]) > STOP_TIMEOUT


def test_the_unit_can_write_only_the_clinic_folder_it_runs_in():
    service = read_unit()["Service"]
    folder = service["WorkingDirectory"]
    assert service["ReadWritePaths"] == folder
    assert Path(service["Environment"].split("=", 1)[1]).parent == Path(folder)  # REBOOK_CONFIG
    assert service["ProtectSystem"] == "strict"
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome"):
        assert service[key] == "yes", key
    assert "AF_UNIX" in service["RestrictAddressFamilies"].split()  # the notify socket


def test_every_variable_the_env_template_names_is_one_rebook_accepts(sqlite_clinic):
    assignments = [
        line.lstrip("#").split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if re.match(r"#?REBOOK_[A-Z_]+=", line)
    ]
    env = {name: value for name, value in assignments}
    assert {"REBOOK_SMTP__PASSWORD", "REBOOK_WEB__SECRET", "REBOOK_DATABASE__URL"} <= set(env)
    env["REBOOK_DATABASE__URL"] = sqlite_clinic.database_url  # the example's host is made up
    if "REBOOK_DKIM__PRIVATE_KEY" in env:  # the example's key is cut short: a real one, as shown
        env["REBOOK_DKIM__PRIVATE_KEY"] = dkim_key_pem().replace("\n", "\\n")
        config = sqlite_clinic.config
        config.write_text(config.read_text() + '[dkim]\ndomain = "waso.example"\nselector = "s1"\n')
    if "REBOOK_SYNC__CLINIKO__API_KEY" in env:  # like the DKIM key, it needs its table
        config = sqlite_clinic.config
        config.write_text(config.read_text() + "[sync.cliniko]\n")
    if "REBOOK_BOUNCES__IMAP__PASSWORD" in env:  # the same: its mailbox's table
        config = sqlite_clinic.config
        config.write_text(config.read_text() + '[bounces]\naddress = "bounces@waso.example"\n'
                          '[bounces.imap]\nhost = "imap.waso.example"\nuser = "bounces"\n')  # fmt: skip
    result = sqlite_clinic.rebook("check", env=env)
    assert result.code == 0, result.err


def dkim_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


# -- jobs.systemd.notify ------------------------------------------------------------------


def test_notify_sends_one_datagram_to_the_socket_path(listener):
    sock, address = listener
    assert notify("READY=1", {"NOTIFY_SOCKET": address}) is True
    assert sock.recv(4096) == b"READY=1"


def test_notify_reaches_an_abstract_socket_named_with_an_at_sign():
    name = f"rebook-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        assert notify("STOPPING=1", {"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(4096) == b"STOPPING=1"


def test_notify_without_notify_socket_sends_nothing_and_says_so():
    assert notify("READY=1", {}) is False
    assert notify("READY=1", {"NOTIFY_SOCKET": ""}) is False


def test_notify_to_a_socket_nobody_listens_on_returns_false(tmp_path: Path):
    assert notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False


# -- rebook run under a notify socket -----------------------------------------------------


def test_rebook_run_sends_ready_once_started_and_stopping_on_sigterm(clinic, listener):
    sock, address = listener
    clinic.write_config("""
        [campaigns.tick]
        segment = "lapsed"
        template = "reminders/book-next-massage"
        subject = "Hi"
        schedule = "0 3 1 1 *"

        [segments.lapsed]
        last_visit_older_than = "8w"
    """)
    with RunningService(clinic.folder, env={"NOTIFY_SOCKET": address}) as service:
        assert sock.recv(4096) == b"READY=1"
        service.wait_for("service started")
        service.signal()
        assert sock.recv(4096) == b"STOPPING=1"
        assert service.process.wait(timeout=60) == 0, service.log()  # no second SIGTERM
        service.stop()
    assert "next run campaign=tick" in service.log()  # scheduled before it said ready
    sock.settimeout(0.5)
    with pytest.raises(TimeoutError):
        sock.recv(4096)  # nothing else was sent


def test_rebook_run_with_a_bad_config_exits_2_without_saying_ready(sqlite_clinic, listener):
    sock, address = listener
    sqlite_clinic.config.write_text(sqlite_clinic.config.read_text() + "\n[smtp]\nport = 'x'\n")
    with RunningService(sqlite_clinic.folder, env={"NOTIFY_SOCKET": address}) as service:
        assert service.process.wait(timeout=60) == 2
        service.stop()
    assert "smtp.port" in service.log()
    sock.settimeout(0.5)
    with pytest.raises(TimeoutError):
        sock.recv(4096)


# -- stopping a run delivered by several processes ----------------------------------------


def descendants(pid: int) -> list[tuple[int, str]]:
    """Every process below ``pid`` (pid, command line), as systemd's control group holds them."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(parent, []).append(int(entry.name))
    found, todo = [], list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        try:
            command = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        found.append((child, command.decode(errors="replace")))
        todo += parents.get(child, [])
    return found


def stop_as_systemd_does(pid: int, kill_mode: str) -> None:
    """``systemctl stop``: KillSignal to the main process (mixed) or to every process in it."""
    others = [child for child, _ in descendants(pid)] if kill_mode == "control-group" else []
    os.kill(pid, signal.SIGTERM)
    for child in others:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGTERM)


def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("signalled", ["the unit's KillMode", "the main process only"])
def test_a_stop_during_a_run_with_helper_processes_ends_cleanly_within_the_units_timeout(
    sqlite_clinic, signalled
):
    """Whether systemd signals every process or only the main one (``kill PID``)."""
    service_section = read_unit()["Service"]
    kill_mode, timeout = service_section["KillMode"], seconds(service_section["TimeoutStopSec"])
    if signalled == "the main process only":
        kill_mode = "mixed"
    with SmtpServer() as smtp:
        smtp.handler.data_delay = 0.05  # each process's share takes minutes
        _, engine = clinic_with(
            sqlite_clinic, smtp.port, people=2 * PARALLEL_FROM
        )  # half of them consent
        add_campaign(sqlite_clinic, "big", "every 1h")
        with RunningService(sqlite_clinic.folder) as service:
            pid = service.process.pid
            service.wait_for("run started", timeout=120)
            wait_until(lambda: any("multiprocessing.spawn" in cmd for _, cmd in descendants(pid)))
            wait_until(lambda: len(smtp.handler.addresses()) > 50)
            stop_as_systemd_does(pid, kill_mode)
            asked = time.monotonic()
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.process.wait(timeout=timeout)
            took = time.monotonic() - asked
            code = service.stop()
        assert took < timeout, f"still running after {timeout}s: systemd sends SIGKILL now"
        assert code == 0, service.log()
        assert "Traceback" not in service.log(), service.log()
        sent = len(smtp.handler.addresses())
        time.sleep(1)
        assert len(smtp.handler.addresses()) == sent  # no helper sends on after the stop
    with engine.connect() as connection:
        left = connection.execute(select(sends.c.status).distinct()).scalars().all()
    # every process finished the messages it had in flight and gave back what it had claimed
    assert not {"claimed", "sending"} & set(left)
