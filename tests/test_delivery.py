"""Campaign runs against a real SMTP server (aiosmtpd), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from campaigns.clients.importer import import_file
from campaigns.config import load_settings
from campaigns.delivery.run import run_campaign
from campaigns.durations import DailyWindow, Rate
from campaigns.store.tables import sends, suppressions

from .smtpd import SmtpServer

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
CONFIG = """
[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
connections = 2
timeout = "1s"
max_attempts = 3
retry_backoff = "1m"

[mail]
from = "Waso Physiotherapy <hello@waso.example>"
transport = "{transport}"

[segments.lapsed]
services = ["massage"]
last_visit_older_than = "6w"

[segments.soon]
next_visit_within = "2d"

[campaigns.book]
segment = "lapsed"
template = "reminders/book-next-massage"
subject = "{{{{ client.first_name }}}}, how is your back?"

[campaigns.reminder]
segment = "soon"
kind = "transactional"
template = "reminders/appointment"
subject = "See you soon"

[campaigns.series]
segment = "lapsed"
articles = "articles/*.md"
"""


def clinic_with(clinic, port: int, people: int = 6, transport: str = "smtp"):
    """``people`` lapsed massage clients (even ids consent), two with a booking tomorrow."""
    config = clinic.write_config("")
    config.write_text(config.read_text().replace('[mail]\nfrom = "Waso Physiotherapy <hello@waso.example>"\n', "")
                      + CONFIG.format(port=port, transport=transport))  # fmt: skip
    rows = ["id,email,first_name,last_name,marketing_consent"]
    rows += [
        f"c{n:03d},person{n}@example.com,Person{n},Test,{'yes' if n % 2 == 0 else 'no'}"
        for n in range(people)
    ]
    visits = ["id,client_id,starts_at,service,status"]
    visits += [f"v{n},c{n:03d},2026-08-01T10:00,massage,attended" for n in range(people)]
    visits += [f"b{n},c{n:03d},2026-11-26T10:00,massage,booked" for n in range(2)]
    clinic.write("clients.csv", "\n".join(rows) + "\n")
    clinic.write("visits.csv", "\n".join(visits) + "\n")
    settings = load_settings(clinic.config)
    engine = clinic.engine()
    for kind in ("clients", "visits"):
        import_file(
            engine,
            kind,
            clinic.folder / f"{kind}.csv",
            clinic_zone=settings.clinic.timezone,
            now=NOW,
        )
    return settings, engine


def run(engine, settings, name, at=NOW, **options):
    return asyncio.run(run_campaign(engine, settings, name, clock=lambda: at, **options))


def ledger(engine, campaign):
    with engine.connect() as connection:
        query = select(
            sends.c.email, sends.c.status, sends.c.attempts, sends.c.last_reply, sends.c.message_id
        )
        return {
            row.email: row for row in connection.execute(query.where(sends.c.campaign == campaign))
        }


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


def test_marketing_reaches_consenting_members_once(clinic, smtp):
    settings, engine = clinic_with(clinic, smtp.port)
    report = run(engine, settings, "book")
    consenting = ["person0@example.com", "person2@example.com", "person4@example.com"]
    assert sorted(smtp.handler.addresses()) == consenting
    assert report.outcomes["sent"] == 3 and report.left_out == {"no marketing consent": 3}
    message = smtp.handler.received[0].message
    assert message["Subject"].endswith(", how is your back?")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    rows = ledger(engine, "book")
    assert {row.status for row in rows.values()} == {"sent"}
    assert {row.message_id for row in rows.values()} == {
        m.message["Message-ID"] for m in smtp.handler.received
    }
    again = run(engine, settings, "book", at=NOW + timedelta(days=1))
    assert again.outcomes["sent"] == 0 and again.left_out["already sent"] == 3
    assert len(smtp.handler.received) == 3


def test_transactional_ignores_consent_but_never_mails_a_bounced_address(clinic, smtp):
    settings, engine = clinic_with(clinic, smtp.port)
    smtp.handler.script["person0@example.com"] = ["550 5.1.1 no such user"]
    report = run(engine, settings, "reminder")
    assert smtp.handler.addresses() == [
        "person1@example.com"
    ]  # no consent needed for transactional
    assert report.outcomes == {"sent": 1, "failed": 1} and report.bounced == 1
    with engine.connect() as connection:
        bounced = connection.execute(select(suppressions)).one()
    assert (bounced.address, bounced.reason) == ("person0@example.com", "bounced")
    assert "550 5.1.1 no such user" in bounced.detail
    later = run(engine, settings, "book")  # person0 consented, but bounced
    assert "person0@example.com" not in smtp.handler.addresses()[1:]
    assert later.left_out.get("unsubscribed or bounced") == 1


def test_temporary_failures_are_retried_when_due_then_given_up(clinic, smtp):
    settings, engine = clinic_with(clinic, smtp.port)
    smtp.handler.script["person0@example.com"] = ["451 4.3.0 try later"]
    smtp.handler.script["person2@example.com"] = ["451 4.3.0 try later"] * 5
    first = run(engine, settings, "book")
    assert first.outcomes == {"sent": 1, "deferred": 2}
    assert sorted(smtp.handler.addresses()) == ["person4@example.com"]
    early = run(engine, settings, "book", at=NOW + timedelta(seconds=30))  # backoff 1m: not due yet
    assert early.outcomes == {}
    second = run(engine, settings, "book", at=NOW + timedelta(minutes=2))
    assert second.outcomes == {"sent": 1, "deferred": 1}
    third = run(engine, settings, "book", at=NOW + timedelta(minutes=10))
    assert third.outcomes == {"failed": 1}
    rows = ledger(engine, "book")
    assert (rows["person0@example.com"].status, rows["person0@example.com"].attempts) == ("sent", 2)
    gave_up = rows["person2@example.com"]
    assert (gave_up.status, gave_up.attempts) == ("failed", 3)
    assert gave_up.last_reply.startswith("gave up after 3 attempts: 451 4.3.0 try later")


def test_other_permanent_failures_fail_one_message_and_suppress_nobody(clinic, smtp):
    settings, engine = clinic_with(clinic, smtp.port)
    smtp.handler.script["person0@example.com"] = ["DATA 554 5.6.0 message rejected"]
    smtp.handler.script["person2@example.com"] = ["552 5.2.2 mailbox full"]
    report = run(engine, settings, "book")
    assert report.outcomes == {"sent": 1, "failed": 2} and report.bounced == 0
    with engine.connect() as connection:
        assert connection.execute(select(suppressions)).all() == []


def test_a_dropped_or_stalled_connection_defers_one_message_and_the_rest_go(clinic, smtp):
    settings, engine = clinic_with(clinic, smtp.port, people=12)
    smtp.handler.script["person0@example.com"] = ["drop"]
    smtp.handler.script["person4@example.com"] = ["stall"]
    report = run(engine, settings, "book")
    assert report.outcomes == {"sent": 4, "deferred": 2}
    assert sorted(smtp.handler.addresses()) == [f"person{n}@example.com" for n in (10, 2, 6, 8)]
    retry = run(engine, settings, "book", at=NOW + timedelta(minutes=5))
    assert retry.outcomes == {"sent": 2}


def test_unreachable_server_claims_nothing(clinic):
    from .smtpd import free_port

    settings, engine = clinic_with(clinic, free_port())
    report = run(engine, settings, "book")
    assert report.unreachable and "cannot reach 127.0.0.1" in report.unreachable
    assert {row.status for row in ledger(engine, "book").values()} == {"queued"}


def test_dry_run_records_and_sends_nothing(clinic, smtp):
    settings, engine = clinic_with(clinic, smtp.port)
    report = run(engine, settings, "series", dry_run=True)
    assert report.would_send == [
        (f"person{n}@example.com", "articles/01-benefits-of-massage-for-lower-back-pain.md")
        for n in (0, 2, 4)
    ]
    assert smtp.handler.received == [] and ledger(engine, "series") == {}


def test_a_series_sends_the_next_article_each_run_until_done(clinic, smtp):
    settings, engine = clinic_with(clinic, smtp.port, people=2)
    subjects = []
    for day in range(5):
        before = len(smtp.handler.received)
        run(engine, settings, "series", at=NOW + timedelta(days=day))
        subjects += [m.message["Subject"] for m in smtp.handler.received[before:]]
    assert subjects == [
        "The benefits of massage therapy for lower back pain",
        "Six small habits that keep your back happy between sessions",
        "Gentle stretches for a stiff lower back",
    ]


def test_maildir_transport_keeps_the_ledger_guarantees(clinic, tmp_path):
    import mailbox

    settings, engine = clinic_with(clinic, 1, transport="maildir")
    report = run(engine, settings, "book")
    assert report.outcomes == {"sent": 3}
    box = mailbox.Maildir(settings.mail.maildir, create=False)
    assert sorted(message["To"] for message in box) == [
        f"Person{n} Test <person{n}@example.com>" for n in (0, 2, 4)
    ]
    assert run(engine, settings, "book").outcomes == {}
    assert len(box) == 3


def test_a_run_shared_by_two_worker_processes_sends_each_message_once(clinic, smtp):
    settings, engine = clinic_with(clinic, smtp.port, people=120)
    report = run(engine, settings, "book", processes=2)
    assert report.outcomes == {"sent": 60}
    assert sorted(smtp.handler.addresses()) == sorted(
        f"person{n}@example.com" for n in range(0, 120, 2)
    )
    with engine.connect() as connection:
        workers = connection.execute(select(sends.c.worker).distinct()).scalars().all()
    assert workers == [None]  # every row finished and released


def test_logs_in_when_a_username_is_set(clinic):
    from pydantic import SecretStr

    def with_login(settings, password):
        login = {"username": "hello@waso.example", "password": SecretStr(password)}
        return settings.model_copy(update={"smtp": settings.smtp.model_copy(update=login)})

    with SmtpServer(credentials=("hello@waso.example", "s3cret")) as smtp:
        settings, engine = clinic_with(clinic, smtp.port)
        report = run(engine, with_login(settings, "s3cret"), "book")
        assert report.outcomes == {"sent": 3}
        assert set(smtp.logins) == {"hello@waso.example"}


def test_the_marketing_cap_counts_every_marketing_campaign(clinic, smtp):
    settings, engine = clinic_with(clinic, smtp.port)
    capped = settings.model_copy(
        update={"policy": settings.policy.model_copy(update={"max_marketing": Rate.parse("1/7d")})}
    )
    assert run(engine, capped, "book").outcomes == {"sent": 3}
    series = run(engine, capped, "series", at=NOW + timedelta(days=1))
    assert series.outcomes == {} and series.left_out["reached the marketing cap of 1/7d"] == 3
    reminder = run(engine, capped, "reminder", at=NOW + timedelta(days=1))  # transactional: no cap
    assert reminder.outcomes == {"sent": 2}
    later = run(engine, capped, "series", at=NOW + timedelta(days=8))
    assert later.outcomes == {"sent": 3}


def with_quiet_hours(settings, window: str):
    policy = settings.policy.model_copy(update={"quiet_hours": DailyWindow.parse(window)})
    return settings.model_copy(update={"policy": policy})


def test_marketing_inside_quiet_hours_is_held_until_they_end(clinic, smtp):
    settings, engine = clinic_with(clinic, smtp.port)
    quiet = with_quiet_hours(settings, "20:00-08:00")
    evening = datetime(2026, 11, 25, 13, 30, tzinfo=UTC)  # 21:30 in Perth
    held = run(engine, quiet, "book", at=evening)
    assert held.quiet_hours == "20:00-08:00" and held.outcomes == {}
    assert held.held == 3 and held.held_until == datetime(2026, 11, 26, 0, 0, tzinfo=UTC)  # 08:00
    reminder = run(engine, quiet, "reminder", at=evening)  # transactional never waits
    assert reminder.quiet_hours is None and reminder.outcomes == {"sent": 2}
    assert run(engine, quiet, "book", at=evening + timedelta(hours=5)).outcomes == {}
    morning = run(engine, quiet, "book", at=datetime(2026, 11, 26, 0, 1, tzinfo=UTC))
    assert morning.outcomes == {"sent": 3}  # the held ones, once
    assert sorted(smtp.handler.addresses()).count("person0@example.com") == 2  # book + reminder


def test_quiet_hours_are_read_on_the_clients_own_clock(clinic, smtp):
    settings, engine = clinic_with(clinic, smtp.port)
    from campaigns.store.tables import clients

    with engine.begin() as connection:
        connection.execute(
            clients.update().where(clients.c.id == "c000").values(timezone="Europe/London")
        )
    quiet = with_quiet_hours(settings, "20:00-08:00")
    evening = datetime(2026, 11, 25, 13, 30, tzinfo=UTC)  # 21:30 in Perth, 13:30 in London
    report = run(engine, quiet, "book", at=evening)
    assert report.outcomes == {"sent": 1} and report.held == 2
    assert smtp.handler.addresses() == ["person0@example.com"]


def test_ignoring_quiet_hours_sends_now(clinic, smtp):
    settings, engine = clinic_with(clinic, smtp.port)
    quiet = with_quiet_hours(settings, "20:00-08:00")
    evening = datetime(2026, 11, 25, 13, 30, tzinfo=UTC)
    report = run(engine, quiet, "book", at=evening, ignore_quiet_hours=True)
    assert report.outcomes == {"sent": 3} and report.held == 0
    assert run(engine, quiet, "series", at=NOW).quiet_hours is None  # 10:00 in Perth


def test_the_rate_limit_is_shared_with_the_other_workers_delivering(clinic, smtp):
    import time

    from campaigns.store.tables import workers

    settings, engine = clinic_with(clinic, smtp.port, people=80)  # 40 messages
    limited = settings.model_copy(
        update={"smtp": settings.smtp.model_copy(update={"rate_limit": Rate.parse("20/s")})}
    )
    with engine.begin() as connection:  # a worker on another machine, delivering too
        connection.execute(workers.insert().values(
            id="elsewhere", host="other-host", pid=1, started_at=NOW, heartbeat_at=NOW,
        ))  # fmt: skip
    started = time.monotonic()
    assert run(engine, limited, "book").outcomes == {"sent": 40}
    # Its half of 20/s takes about 4 s; the whole rate would take 2 s.
    assert time.monotonic() - started >= 3.0
