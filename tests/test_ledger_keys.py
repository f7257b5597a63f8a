"""What spends a ledger key, and what is checked again the moment a message leaves.

Only a delivered message, a hard bounce or a refusal of that recipient
spends the key. Consent and suppression are checked when each message
leaves, retries included; an unsubscribe follows the client to a new address.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from campaigns.clients.importer import import_file
from campaigns.config import load_settings
from campaigns.delivery.history import client_history, unsubscribe_by_hand
from campaigns.delivery.suppression import suppress
from campaigns.store.tables import sends

from .smtpd import SmtpServer, free_port
from .test_delivery import NOW, clinic_with, ledger, run

LATER = NOW + timedelta(minutes=5)  # past the first retry (backoff 1m, ±20%)


def reimport_clients(clinic, engine, settings, rows: list[str]):
    clinic.write(
        "clients.csv", "id,email,first_name,last_name,marketing_consent\n" + "\n".join(rows) + "\n"
    )
    return import_file(
        engine,
        "clients",
        clinic.folder / "clients.csv",
        clinic_zone=settings.clinic.timezone,
        now=NOW,
    )


def import_visits(clinic, engine, settings):
    path = clinic.folder / "visits.csv"
    return import_file(engine, "visits", path, clinic_zone=settings.clinic.timezone, now=NOW)


def test_a_retry_is_not_sent_after_the_client_unsubscribed(clinic):
    with SmtpServer() as smtp:
        settings, engine = clinic_with(clinic, smtp.port)
        smtp.handler.script["person0@example.com"] = ["452 4.2.2 mailbox busy"]
        assert run(engine, settings, "book").outcomes == {"sent": 2, "deferred": 1}
        with engine.begin() as connection:
            unsubscribe_by_hand(connection, "person0@example.com", NOW)
        retry = run(engine, settings, "book", at=LATER)
        assert retry.outcomes == {"skipped": 1}
        row = ledger(engine, "book")["person0@example.com"]
        assert row.status == "skipped" and "unsubscribed" in row.last_reply
        assert "person0@example.com" not in smtp.handler.addresses()


def test_a_retry_is_not_sent_after_consent_was_withdrawn(clinic):
    with SmtpServer() as smtp:
        settings, engine = clinic_with(clinic, smtp.port)
        smtp.handler.script["person2@example.com"] = ["451 4.3.0 try later"]
        run(engine, settings, "book")
        reimport_clients(clinic, engine, settings, ["c002,person2@example.com,Person2,Test,no"])
        assert run(engine, settings, "book", at=LATER).outcomes == {"skipped": 1}
        row = ledger(engine, "book")["person2@example.com"]
        assert row.status == "skipped" and "consent" in row.last_reply


def test_a_deferred_message_of_another_campaign_skips_an_address_that_bounced_since(clinic):
    with SmtpServer() as smtp:
        settings, engine = clinic_with(clinic, smtp.port)
        smtp.handler.script["person0@example.com"] = [
            "451 4.3.0 try later",
            "550 5.1.1 no such user",
        ]
        run(engine, settings, "book")  # person0 deferred
        reminder = run(engine, settings, "reminder")  # transactional: person0 bounces
        assert reminder.bounced == 1
        assert run(engine, settings, "book", at=LATER).outcomes == {"skipped": 1}
        assert smtp.handler.addresses().count("person0@example.com") == 0


def test_an_unsubscribe_follows_the_client_to_a_new_address(clinic):
    with SmtpServer() as smtp:
        settings, engine = clinic_with(clinic, smtp.port)
        run(engine, settings, "book")
        with engine.begin() as connection:
            unsubscribe_by_hand(connection, "person0@example.com", NOW)
        moved = reimport_clients(
            clinic, engine, settings, ["c000,new0@example.com,Person0,Test,yes"]
        )
        assert moved.suppressed == 1  # the import says so, though the address is new
        series = run(engine, settings, "series", at=NOW + timedelta(days=1))
        assert "new0@example.com" not in smtp.handler.addresses()
        assert series.left_out["unsubscribed or bounced"] == 1
        with engine.connect() as connection:
            entries, suppression = client_history(connection, "new0@example.com")
        assert [(e.campaign, e.status) for e in entries] == [("book", "sent")]
        assert suppression is not None and suppression.reason == "manual"


def test_a_hard_bounce_suppresses_the_address_only(clinic):
    with SmtpServer() as smtp:
        settings, engine = clinic_with(clinic, smtp.port)
        with engine.begin() as connection:
            suppress(connection, "person0@example.com", "bounced", "550 no such user", NOW)
        reimport_clients(clinic, engine, settings, ["c000,new0@example.com,Person0,Test,yes"])
        run(engine, settings, "book")
        assert "new0@example.com" in smtp.handler.addresses()


def test_a_template_error_some_clients_trigger_is_retried_once_fixed(clinic):
    with SmtpServer() as smtp:
        _, engine = clinic_with(clinic, smtp.port)
        clinic.write("templates/custom.html.j2", '{% extends "layout.html.j2" %}{% block content %}'
                     '{% if client.first_name == "Person2" %}{{ client.nickname }}{% endif %}ok{% endblock %}')  # fmt: skip
        clinic.config.write_text(
            clinic.config.read_text().replace('"reminders/book-next-massage"', '"custom"')
        )
        from campaigns.config import load_settings

        broken = load_settings(clinic.config)
        first = run(engine, broken, "book")
        assert first.outcomes == {"sent": 2, "error": 1}
        row = ledger(engine, "book")["person2@example.com"]
        assert row.status == "error" and "nickname" in row.last_reply
        clinic.write(
            "templates/custom.html.j2",
            '{% extends "layout.html.j2" %}{% block content %}ok{% endblock %}',
        )
        fixed = run(engine, load_settings(clinic.config), "book", at=NOW + timedelta(hours=1))
        assert fixed.outcomes == {"sent": 1} and fixed.left_out == {
            "no marketing consent": 3,
            "already sent": 2,
        }
        assert sorted(smtp.handler.addresses()).count("person2@example.com") == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_login_the_relay_requires_is_rebooks_to_fix_not_the_clients(clinic):
    from pydantic import SecretStr

    with SmtpServer(credentials=("hello@waso.example", "s3cret"), login_required=True) as smtp:
        settings, engine = clinic_with(clinic, smtp.port)
        first = run(engine, settings, "book")  # no username configured: 530 to MAIL FROM
        assert first.outcomes == {"error": 3}
        assert all("530" in row.last_reply for row in ledger(engine, "book").values())
        login = {"username": "hello@waso.example", "password": SecretStr("s3cret")}
        fixed = settings.model_copy(update={"smtp": settings.smtp.model_copy(update=login)})
        assert run(engine, fixed, "book", at=NOW + timedelta(hours=1)).outcomes == {"sent": 3}


def test_already_sent_counts_sent_messages_only(clinic):
    with SmtpServer() as smtp:
        settings, engine = clinic_with(clinic, smtp.port)
        smtp.handler.script["person0@example.com"] = ["451 4.3.0 try later"] * 3
        smtp.handler.script["person2@example.com"] = ["552 5.2.2 mailbox full"]
        run(engine, settings, "book")
        again = run(engine, settings, "book", at=NOW + timedelta(seconds=10))
        assert again.left_out == {
            "no marketing consent": 3, "already sent": 1,
            "already queued or waiting for a retry": 1, "refused or bounced before": 1,
        }  # fmt: skip
        with engine.connect() as connection:
            statuses = dict(connection.execute(select(sends.c.email, sends.c.status)).all())
        assert statuses == {"person0@example.com": "deferred", "person2@example.com": "failed",
                            "person4@example.com": "sent"}  # fmt: skip


def test_an_appointment_reminder_is_one_per_appointment_and_none_once_cancelled(clinic):
    with SmtpServer() as smtp:
        settings, engine = clinic_with(clinic, smtp.port, people=2)
        config = clinic.config.read_text().replace(
            'next_visit_within = "2d"', 'next_visit_within = "4d"'
        )
        clinic.config.write_text(
            config + 'repeat_after = "3d"\n'
        )  # appended to [campaigns.series]: harmless
        from campaigns.config import load_settings

        settings = load_settings(clinic.config)
        visits = "id,client_id,starts_at,service,status\n"
        visits += (
            "b0,c000,2026-11-26T10:00,massage,booked\nthu,c000,2026-11-28T15:00,massage,booked\n"
        )
        visits += "b1,c001,2026-11-26T10:00,massage,booked\n"
        clinic.write("visits.csv", visits)
        import_visits(clinic, engine, settings)
        smtp.handler.script["person1@example.com"] = ["451 4.3.0 try later"]
        first = run(engine, settings, "reminder")
        assert first.outcomes == {"sent": 2, "deferred": 1}
        mine = [m.message for m in smtp.handler.received if m.recipients == ["person0@example.com"]]
        bodies = [m.get_body(("plain",)).get_content() for m in mine]
        assert len(mine) == 2 and bodies[0] != bodies[1]  # each names its own appointment
        assert run(engine, settings, "reminder", at=NOW + timedelta(seconds=10)).outcomes == {}
        clinic.write(
            "visits.csv",
            "id,client_id,starts_at,service,status\nb1,c001,2026-11-26T10:00,massage,cancelled\n",
        )
        import_visits(clinic, engine, settings)
        retry = run(engine, settings, "reminder", at=LATER)
        assert retry.outcomes == {"skipped": 1}
        with engine.connect() as connection:
            reply = connection.execute(
                select(sends.c.last_reply).where(sends.c.key == "visit:b1")
            ).scalar()
        assert "cancelled" in reply
        assert "person1@example.com" not in smtp.handler.addresses()


def renamed(clinic, previous: bool) -> None:
    """book becomes book-next and series becomes articles, with or without previous_names."""
    text = clinic.config.read_text()
    for old, new in (("book", "book-next"), ("series", "articles")):
        carried = f'previous_names = ["{old}"]\n' if previous else ""
        text = text.replace(f"[campaigns.{old}]\n", f"[campaigns.{new}]\n{carried}")
    clinic.config.write_text(text)


def test_a_renamed_campaign_keeps_its_history_under_previous_names(clinic):
    """The ledger knows a campaign by name: renamed, it would send everyone everything again."""
    with SmtpServer() as smtp:
        settings, engine = clinic_with(clinic, smtp.port)
        assert run(engine, settings, "book").outcomes == {"sent": 3}
        assert run(engine, settings, "series").outcomes == {"sent": 3}
        renamed(clinic, previous=True)
        settings = load_settings(clinic.config)
        later = NOW + timedelta(days=1)
        assert run(engine, settings, "book-next", at=later).outcomes == {}
        assert run(engine, settings, "articles", at=later).outcomes == {"sent": 3}
    with engine.connect() as connection:
        keys = connection.execute(
            select(sends.c.campaign, sends.c.key).distinct().order_by(sends.c.campaign)
        ).all()
    assert [campaign for campaign, _ in keys] == ["articles", "book", "series"]
    assert keys[0].key != keys[2].key  # the series goes on with its next article
    assert sorted(smtp.handler.addresses()).count("person0@example.com") == 3


def test_check_warns_of_a_campaign_the_ledger_sent_that_the_config_lost(sqlite_clinic):
    with SmtpServer() as smtp:
        clinic_with(sqlite_clinic, smtp.port)
        assert "sent 3" in sqlite_clinic.rebook("send", "book").out
        before = sqlite_clinic.config.read_text()
        renamed(sqlite_clinic, previous=False)
        lost = sqlite_clinic.rebook("check")
        sqlite_clinic.config.write_text(before)
        renamed(sqlite_clinic, previous=True)
        found = sqlite_clinic.rebook("check")
        again = sqlite_clinic.rebook("send", "book-next")
        report = json.loads(sqlite_clinic.rebook("report", "--json").out)
        status = json.loads(sqlite_clinic.rebook("status", "--json").out)
    assert lost.code == 0, lost.err
    assert (
        "the ledger holds campaign 'book', which 3 client(s) had, and the config no longer "
        'has it: if a campaign was renamed from it, add previous_names = ["book"]'
    ) in lost.err
    assert found.code == 0 and "the ledger holds" not in found.err
    assert again.code == 0 and "sent 0" in again.out and "already sent 3" in again.out
    assert len(smtp.handler.addresses()) == 3
    [book] = [c for c in report["campaigns"] if c["name"] == "book-next"]
    assert book["sent"] == 3 and "book" not in [c["name"] for c in report["campaigns"]]
    [shown] = [c for c in status["campaigns"] if c["name"] == "book-next"]
    assert shown["counts"]["sent"] == 3


@pytest.mark.parametrize(
    ("book", "series", "said"),
    [
        ('["series"]', "[]", "'series' is a campaign of this config"),
        ('["old"]', '["old"]', "'old' is a previous name of book too"),
    ],
)
def test_a_previous_name_is_history_no_live_campaign_writes_claimed_once(
    sqlite_clinic, book, series, said
):
    clinic_with(sqlite_clinic, free_port())
    text = sqlite_clinic.config.read_text()
    for name, previous in (("book", book), ("series", series)):
        text = text.replace(
            f"[campaigns.{name}]\n", f"[campaigns.{name}]\nprevious_names = {previous}\n"
        )
    sqlite_clinic.config.write_text(text)
    result = sqlite_clinic.rebook("check")
    assert result.code == 2 and "previous_names: " in result.err and said in result.err


def test_renamed_there_and_back_nobody_gets_an_article_twice(clinic):
    """What an old name left queued is taken over, not left to go out beside the new name's."""
    from .smtpd import free_port

    settings, engine = clinic_with(clinic, free_port())  # nothing listens: the rows stay queued
    assert run(engine, settings, "series").unreachable
    with SmtpServer() as smtp:
        text = re.sub(r"\nport = \d+\n", f"\nport = {smtp.port}\n", clinic.config.read_text())
        clinic.config.write_text(text)
        renamed(clinic, previous=True)
        later = NOW + timedelta(days=1)
        assert run(engine, load_settings(clinic.config), "articles", at=later).outcomes == {
            "sent": 3
        }
        back = (
            '[campaigns.articles]\nprevious_names = ["series"]',
            '[campaigns.series]\nprevious_names = ["articles"]',
        )
        clinic.config.write_text(clinic.config.read_text().replace(*back))
        again = run(engine, load_settings(clinic.config), "series", at=later + timedelta(days=1))
        keys = [item.message["Subject"] for item in smtp.handler.received]
    assert again.outcomes == {"sent": 3}  # the second article, not the first again
    assert len(keys) == 6 and len(set(keys)) == 2
