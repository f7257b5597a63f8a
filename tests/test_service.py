"""``rebook run``, the real command in a subprocess, against a real SMTP server.

Schedules of a few seconds stand in for days; the runs table and the send
ledger are read back to check that each scheduled run happened once and
each client got each message once.
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from campaigns.store.tables import clients, runs, sends

from .conftest import Clinic
from .service import RunningService
from .smtpd import SmtpServer
from .test_delivery import clinic_with

CONSENTING = ["person0@example.com", "person2@example.com", "person4@example.com"]


def add_campaign(clinic: Clinic, name: str, schedule: str, extra: str = "") -> None:
    clinic.config.write_text(
        clinic.config.read_text()
        + f'\n[campaigns.{name}]\nsegment = "lapsed"\ntemplate = "reminders/book-next-massage"\n'
        f'subject = "Hi"\nschedule = "{schedule}"\n{extra}'
    )


def run_rows(engine, campaign: str) -> list:
    with engine.connect() as connection:
        query = select(runs).where(runs.c.campaign == campaign).order_by(runs.c.scheduled_for)
        return connection.execute(query).all()


def sent_to(engine, campaign: str) -> list[str]:
    with engine.connect() as connection:
        query = select(sends.c.email).where(sends.c.campaign == campaign, sends.c.status == "sent")
        return sorted(connection.execute(query).scalars())


def test_each_tick_runs_once_and_no_client_gets_a_message_twice(clinic):
    with SmtpServer() as smtp:
        _, engine = clinic_with(clinic, smtp.port)
        add_campaign(clinic, "tick", "every 2s")
        with RunningService(clinic.folder) as service:
            service.wait_for("service started")
            service.wait_for("run finished", count=3)
            assert service.stop() == 0, service.log()
        assert sorted(smtp.handler.addresses()) == CONSENTING
        rows = run_rows(engine, "tick")
        assert len(rows) >= 3 and {row.outcome for row in rows} == {"done"}
        assert len({row.scheduled_for for row in rows}) == len(rows)
        assert rows[0].sent == 3 and all(row.sent == 0 for row in rows[1:])
        assert "stopped" in service.log() and "Traceback" not in service.log()


def test_sigterm_mid_run_exits_0_and_a_restart_sends_the_rest_once(clinic):
    with SmtpServer() as smtp:
        smtp.handler.data_delay = 0.15
        _, engine = clinic_with(clinic, smtp.port, people=80)
        add_campaign(clinic, "big", "every 1h")
        with RunningService(clinic.folder) as service:
            service.wait_for("run started")
            time.sleep(1.0)
            assert service.stop(timeout=30) == 0, service.log()
        first = len(smtp.handler.addresses())
        assert 0 < first < 40
        with RunningService(clinic.folder) as again:
            deadline = time.monotonic() + 40
            while len(smtp.handler.addresses()) < 40 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert again.stop() == 0, again.log()
        received = smtp.handler.addresses()
        assert sorted(received) == sorted(f"person{n}@example.com" for n in range(0, 80, 2))
        assert len(run_rows(engine, "big")) == 1  # the restart delivered the rest, no new run


def test_a_run_missed_while_stopped_is_caught_up_once(clinic):
    with SmtpServer() as smtp:
        _, engine = clinic_with(clinic, smtp.port)
        add_campaign(clinic, "minutely", "* * * * *")
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        with engine.begin() as connection:
            connection.execute(insert(runs).values(
                campaign="minutely", scheduled_for=now - timedelta(minutes=5), started_at=now,
                finished_at=now, worker="gone:1", outcome="done",
            ))  # fmt: skip
        with RunningService(clinic.folder) as service:
            line = service.wait_for("catching up a missed run")
            service.wait_for("run finished")
            assert service.stop() == 0
        assert "missed=" in line
        caught = [row for row in run_rows(engine, "minutely") if row.worker != "gone:1"]
        assert len(caught) in (1, 2)  # the catch-up (and a new minute, if one began meanwhile)
        assert caught[0].scheduled_for >= now - timedelta(minutes=1)
        assert sorted(smtp.handler.addresses()) == CONSENTING


def test_a_run_missed_longer_ago_than_catch_up_is_skipped_and_recorded(clinic):
    with SmtpServer() as smtp:
        _, engine = clinic_with(clinic, smtp.port)
        add_campaign(clinic, "yearly", "0 3 1 1 *")
        with engine.begin() as connection:
            connection.execute(insert(runs).values(
                campaign="yearly", scheduled_for=datetime(2020, 1, 1, tzinfo=UTC),
                started_at=datetime(2020, 1, 1, tzinfo=UTC), worker="gone:1", outcome="done",
            ))  # fmt: skip
        with RunningService(clinic.folder) as service:
            service.wait_for("missed run skipped")
            assert service.stop() == 0
        latest = run_rows(engine, "yearly")[-1]
        assert latest.outcome == "skipped" and "catch_up" in latest.detail
        assert smtp.handler.addresses() == []


def test_a_deferred_message_is_retried_when_due(clinic):
    with SmtpServer() as smtp:
        smtp.handler.script["person2@example.com"] = ["451 4.3.0 try later"]
        _, engine = clinic_with(clinic, smtp.port)
        config = clinic.config.read_text().replace('retry_backoff = "1m"', 'retry_backoff = "2s"')
        clinic.config.write_text(config)
        add_campaign(clinic, "soon", "every 1h")
        with RunningService(clinic.folder) as service:
            service.wait_for("run finished")
            service.wait_for("delivered", timeout=20)
            assert service.stop() == 0
        assert sent_to(engine, "soon") == CONSENTING


def test_sighup_with_a_bad_config_keeps_the_old_one(clinic):
    with SmtpServer() as smtp:
        clinic_with(clinic, smtp.port)
        add_campaign(clinic, "tick", "every 2s")
        with RunningService(clinic.folder) as service:
            service.wait_for("run finished")
            good = clinic.config.read_text()
            clinic.config.write_text(good + "\n[smtp]\nport = 'x'\n")
            service.signal(signal.SIGHUP)
            line = service.wait_for("config not reloaded")
            service.wait_for("run finished", count=3)  # still running on the old one
            clinic.config.write_text(good.replace('"reminders/book-next-massage"', '"missing"'))
            service.signal(signal.SIGHUP)
            broken = service.wait_for("config not reloaded", count=2)
            clinic.config.write_text(good)
            service.signal(signal.SIGHUP)
            service.wait_for("config reloaded")
            clinic.config.write_text(
                good.replace("[database]\nurl = ", "[database]\nurl = 'sqlite:///other.db'\n#")
            )
            service.signal(signal.SIGHUP)
            moved = service.wait_for("config not reloaded", count=3)
            assert service.stop() == 0
        assert "database.url changed: restart rebook run" in moved
        assert "config.toml" in line and "missing.html.j2" in broken


def test_three_workers_run_each_scheduled_run_once(clinic):
    if not clinic.database_url.startswith("postgresql"):
        pytest.skip("several workers share one PostgreSQL")
    with SmtpServer() as smtp:
        _, engine = clinic_with(clinic, smtp.port, people=60)
        add_campaign(clinic, "tick", "every 2s")
        workers = [RunningService(clinic.folder) for _ in range(3)]
        try:
            for worker in workers:
                worker.wait_for("service started")
            time.sleep(7)  # three or four ticks
        finally:
            codes = [worker.stop() for worker in workers]
        assert codes == [0, 0, 0]
        rows = run_rows(engine, "tick")
        assert len({row.scheduled_for for row in rows}) == len(rows)
        assert sorted(smtp.handler.addresses()) == sorted(
            f"person{n}@example.com" for n in range(0, 60, 2)
        )


def test_a_changed_sync_file_is_imported_and_a_broken_one_leaves_the_data(clinic):
    with SmtpServer() as smtp:
        _, engine = clinic_with(clinic, smtp.port)
        clinic.config.write_text(
            clinic.config.read_text() + '\n[sync]\nclients = "exports/clients.csv"\nevery = "1s"\n'
        )
        header = "id,email,first_name,last_name,marketing_consent\n"
        clinic.write("exports/clients.csv", header + "c900,new@example.com,New,Client,yes\n")
        with RunningService(clinic.folder) as service:
            line = service.wait_for("sync imported")
            assert "inserted=1" in line
            clinic.write("exports/clients.csv", header + "c900,not-an-address,New,Client,yes\n")
            rejected = service.wait_for("sync rejected")
            assert "line 2" in rejected and "not-an-address" in rejected
            time.sleep(2.5)  # a rejected file is reported once, not at every tick
            assert service.log().count("sync rejected") == 1
            assert service.stop() == 0
        from campaigns.store.tables import clients

        with engine.connect() as connection:
            email = connection.execute(
                select(clients.c.email).where(clients.c.id == "c900")
            ).scalar()
        assert email == "new@example.com"
        again = clinic.rebook("sync")
        assert again.code == 2 and "unchanged since it was rejected" in again.err
        full = clinic.rebook("sync", "--full")
        assert full.code == 2 and "not-an-address" in full.err


def test_a_bad_config_stops_the_service_before_it_starts(sqlite_clinic):
    sqlite_clinic.write_config("\n[smtp]\nport = 'x'\n")
    result = sqlite_clinic.rebook("run")
    assert result.code == 2 and "smtp.port" in result.err and "Traceback" not in result.err


def test_json_log_lines_for_journald(clinic):
    import json

    with SmtpServer() as smtp:
        clinic_with(clinic, smtp.port)
        add_campaign(clinic, "tick", "every 1h")
        with RunningService(clinic.folder, "--log-format", "json") as service:
            service.wait_for('"run finished"')
            assert service.stop() == 0
    entries = [json.loads(line) for line in service.lines]
    finished = next(entry for entry in entries if entry["event"] == "run finished")
    assert finished["campaign"] == "tick" and finished["sent"] == 3 and finished["level"] == "info"
    assert {"service started", "stopping", "stopped"} <= {entry["event"] for entry in entries}
    assert not any("password" in line.lower() for line in service.lines)


def test_after_kill_9_a_restart_recovers_what_was_in_flight_without_waiting_for_the_schedule(
    clinic,
):
    with SmtpServer() as smtp:
        smtp.handler.data_delay = 0.15
        _, engine = clinic_with(clinic, smtp.port, people=80)
        add_campaign(clinic, "big", "every 1h")
        with RunningService(clinic.folder) as service:
            service.wait_for("run started")
            time.sleep(1.0)
            service.signal(signal.SIGKILL)
            service.process.wait(timeout=10)
        with engine.connect() as connection:
            left = set(connection.execute(select(sends.c.status).distinct()).scalars())
        assert {"claimed", "sending"} & left  # what a crash leaves behind
        with RunningService(clinic.folder) as again:
            again.wait_for("recovered messages a stopped worker left")
            deadline = time.monotonic() + 40
            while len(set(smtp.handler.addresses())) < 40 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert again.stop() == 0, again.log()
    assert sorted(set(smtp.handler.addresses())) == sorted(
        f"person{n}@example.com" for n in range(0, 80, 2)
    )
    assert len(smtp.handler.addresses()) - 40 <= 2  # at most one per connection, sent again
    [run] = run_rows(engine, "big")
    assert run.outcome == "failed" and "stopped before the run finished" in run.detail


def status_line(clinic: Clinic) -> str:
    result = clinic.rebook("status")
    assert result.code == 0, result.err
    return result.out.splitlines()[0]


def age_presence(clinic: Clinic) -> None:
    """The service's presence as last written at 2026-01-01 00:00 UTC."""
    import json

    from campaigns.store.tables import app_state

    with clinic.engine().begin() as connection:
        row = connection.execute(select(app_state).where(app_state.c.name.like("service:%")))
        name, value = row.one()[:2]
        record = json.loads(value) | {"seen_at": "2026-01-01T00:00:00+00:00"}
        connection.execute(
            app_state.update().where(app_state.c.name == name).values(value=json.dumps(record))
        )


def test_status_says_whether_the_service_is_up(clinic):
    import json

    with SmtpServer() as smtp:
        clinic_with(clinic, smtp.port)
        add_campaign(clinic, "tick", "every 1h")
        assert status_line(clinic).startswith("rebook run: not running (stopped, or never")
        with RunningService(clinic.folder) as service:
            service.wait_for("service started")
            deadline = time.monotonic() + 10
            while (
                "running (pid" not in (line := status_line(clinic)) and time.monotonic() < deadline
            ):
                time.sleep(0.2)
            assert line.startswith(f"rebook run: running (pid {service.process.pid} on ")
            as_json = json.loads(clinic.rebook("status", "--json").out)
            assert [s["pid"] for s in as_json["services"] if s["running"]] == [service.process.pid]
            age_presence(clinic)  # as if its writes had failed a minute (a full disk)
            silent = status_line(clinic)
            assert silent.startswith(f"rebook run: running (pid {service.process.pid} on ")
            assert "has not been able to record itself in the database since" in silent
            assert service.stop() == 0
        assert status_line(clinic).startswith("rebook run: not running")
        with RunningService(clinic.folder) as killed:
            killed.wait_for("service started")
            while "running (pid" not in status_line(clinic):
                time.sleep(0.2)
            killed.signal(signal.SIGKILL)
            killed.process.wait()
        age_presence(clinic)  # as if a minute had passed since it died
        line = status_line(clinic)
        assert line.startswith("rebook run: NOT RUNNING: last seen Thu 2026-01-01 08:00 AWST")
        assert f"pid {killed.process.pid}" in line and "stopped without saying so" in line
        with RunningService(clinic.folder) as again:  # the same host: the dead one's row goes
            again.wait_for("service started")
            while f"running (pid {again.process.pid}" not in status_line(clinic):
                time.sleep(0.2)
            assert again.stop() == 0
        assert status_line(clinic).startswith("rebook run: not running (stopped")


def test_a_second_sigterm_stops_at_once_and_records_the_run_as_stopped(clinic):
    """The run cut short says so in the runs table and the log, without a traceback."""
    with SmtpServer() as smtp:
        smtp.handler.data_delay = 5.0  # each message takes longer than anyone waits
        _, engine = clinic_with(clinic, smtp.port, people=20)
        add_campaign(clinic, "slow", "every 1h")
        with RunningService(clinic.folder) as service:
            service.wait_for("run started")
            time.sleep(0.5)
            service.signal(signal.SIGTERM)
            service.wait_for("stopping")
            service.signal(signal.SIGTERM)
            assert service.stop(timeout=30) == 0, service.log()
    assert "Traceback" not in service.log(), service.log()
    [row] = run_rows(engine, "slow")
    assert row.outcome == "failed" and "stopped" in row.detail, row


def test_disabling_a_campaign_and_sighup_stops_its_run_and_keeps_the_rest_queued(clinic):
    with SmtpServer() as smtp:
        smtp.handler.data_delay = 0.05
        _, engine = clinic_with(clinic, smtp.port, people=200)
        add_campaign(clinic, "big", "every 1h")
        with RunningService(clinic.folder) as service:
            service.wait_for("run started")
            time.sleep(0.5)
            clinic.config.write_text(clinic.config.read_text() + "enabled = false\n")
            service.signal(signal.SIGHUP)
            service.wait_for("stopping a run: its campaign was disabled or removed")
            service.wait_for("run finished")
            sent = len(smtp.handler.addresses())
            time.sleep(1.0)
            assert len(smtp.handler.addresses()) == sent  # nothing more leaves
            assert service.stop() == 0, service.log()
    assert 0 < sent < 60
    [row] = run_rows(engine, "big")
    assert row.outcome == "done" and "disabled or removed" in row.detail
    with engine.connect() as connection:
        waiting = connection.execute(
            select(sends.c.status).where(sends.c.campaign == "big", sends.c.status == "queued")
        ).all()
    assert len(waiting) == 100 - sent


def test_sigterm_during_a_sync_import_waits_for_it_and_logs_it(sqlite_clinic):
    rows = ["id,email,first_name,last_name,marketing_consent"]
    rows += [f"c{n},p{n}@example.com,P{n},T,yes" for n in range(60_000)]
    sqlite_clinic.write("exports/clients.csv", "\n".join(rows) + "\n")
    sqlite_clinic.config.write_text(
        sqlite_clinic.config.read_text() + '\n[sync]\nclients = "exports/clients.csv"\n'
    )
    with RunningService(sqlite_clinic.folder) as service:
        service.wait_for("service started")
        service.signal(signal.SIGTERM)  # one: rebook.stop() would send a second
        assert service.process.wait(timeout=60) == 0, service.log()
        service.stop()
    log = service.log()
    assert "stopping: waiting for the import of [sync] files under way to finish" in log, log
    assert log.index("sync imported") < log.index("info: stopped"), log
    assert "inserted=60000" in log
    assert len(sqlite_clinic.rows(clients, "id")) == 60_000


def test_sighup_applies_the_clinics_name_to_the_pages_and_refuses_to_stop_serving(sqlite_clinic):
    import httpx

    with RunningService(sqlite_clinic.folder) as service:
        service.wait_for("service started")
        page = f"http://{service.listen}/unsubscribe/not-a-token"
        assert "Waso Physiotherapy" in httpx.get(page).text
        config = sqlite_clinic.config
        config.write_text(
            config.read_text().replace("Waso Physiotherapy", "Waso Physio & Pilates", 1)
        )
        service.signal(signal.SIGHUP)
        service.wait_for("config reloaded")
        assert "Waso Physio &amp; Pilates" in httpx.get(page).text
        config.write_text(config.read_text() + "\n[web]\nserve = false\n")
        service.signal(signal.SIGHUP)
        refused = service.wait_for("config not reloaded")
        assert "[web] serve changed: restart rebook run" in refused
        assert httpx.get(page).status_code == 400  # still served where it was
        assert service.stop() == 0, service.log()


def test_a_second_sigterm_during_a_sync_import_abandons_it_whole(sqlite_clinic):
    rows = ["id,email,first_name,last_name,marketing_consent"]
    rows += [f"c{n},p{n}@example.com,P{n},T,yes" for n in range(60_000)]
    sqlite_clinic.write("exports/clients.csv", "\n".join(rows) + "\n")
    sqlite_clinic.config.write_text(
        sqlite_clinic.config.read_text() + '\n[sync]\nclients = "exports/clients.csv"\n'
    )
    with RunningService(sqlite_clinic.folder) as service:
        service.wait_for("service started")
        service.signal(signal.SIGTERM)
        service.wait_for("stopping: waiting for the import")
        began = time.monotonic()
        service.signal(signal.SIGTERM)
        assert service.process.wait(timeout=60) == 0, service.log()
        took = time.monotonic() - began
        service.stop()
    assert "the import of [sync] files under way is abandoned" in service.log()
    assert "sync imported" not in service.log()
    assert took < 2.0, (took, service.log())
    assert len(sqlite_clinic.rows(clients, "id")) in (0, 60_000)  # all or nothing
