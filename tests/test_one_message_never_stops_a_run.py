"""Whatever is wrong with one client's row, it fails that message alone, with a reason.

Rows that ``rebook import`` would refuse are written straight into the
database: a practice-software sync, an older rebook or a hand edit can put
them there, and a run must survive them.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert

from campaigns.store.tables import clients, visits

from .smtpd import SmtpServer
from .test_delivery import NOW, clinic_with, ledger, run

# (id, email, first name, what becomes of it with a relay that lacks SMTPUTF8)
POISON = [
    ("p01", "jo@exämple.com", "Idna", ("sent", "")),
    ("p02", "jö@example.com", "Utf8", ("failed", "SMTPUTF8")),
    ("p03", "crlf@example.com", "Eve\r\nBcc: victim@example.org", ("error", "cannot address")),
    ("p04", "not-an-address", "Nobody", ("error", "is not an email address")),
    ("p05", "a b@example.com", "Space", ("error", "is not an email address")),
    ("p06", "jo@exä..com", "Dots", ("error", "no ASCII (IDNA) form")),
    ("p07", "long@example.com", "Ngọc " * 40, ("sent", "")),
    ("p08", "word@example.com", "=?utf-8?q?Bcc:_x@y.z?=", ("sent", "")),
    ("p09", "tagged@example.com", "Tagged", ("error", "tags")),
]
TEMPLATE = """{% extends "layout.html.j2" %}
{% block content %}<p>Hi {{ client.first_name }}{% if "odd" in client.tags %}
{{ client.tags[5] }}{% endif %}</p>{% endblock %}
"""


def poisoned_clinic(clinic, port: int):
    settings, engine = clinic_with(clinic, port, people=4)
    clinic.write("templates/poison.html.j2", TEMPLATE)
    config = clinic.config.read_text() + (
        '\n[campaigns.poison]\nsegment = "lapsed"\ntemplate = "poison"\nsubject = "Hi {{ client.first_name }}"\n'
    )
    clinic.config.write_text(config)
    from campaigns.config import load_settings

    settings = load_settings(clinic.config)
    with engine.begin() as connection:
        for client_id, email, name, _ in POISON:
            tags = "odd" if client_id == "p09" else ""
            connection.execute(insert(clients).values(
                id=client_id, email=email, first_name=name, last_name="", marketing_consent=True,
                tags=tags, updated_at=NOW,
            ))  # fmt: skip
            connection.execute(insert(visits).values(
                id=f"v-{client_id}", client_id=client_id, starts_at=NOW - timedelta(weeks=10),
                service="massage", status="attended", therapist="", updated_at=NOW,
            ))  # fmt: skip
    return settings, engine


def test_one_poisoned_row_of_each_kind_fails_alone_and_later_runs_go_on(clinic):
    with SmtpServer() as smtp:
        settings, engine = poisoned_clinic(clinic, smtp.port)
        report = run(engine, settings, "poison")
        received = sorted(smtp.handler.addresses())
        rows = ledger(engine, "poison")
        for client_id, email, _, (status, reason) in POISON:
            assert rows[email].status == status, (client_id, rows[email].last_reply)
            assert reason in rows[email].last_reply, client_id
        assert received == sorted(
            ["jo@xn--exmple-cua.com", "long@example.com", "person0@example.com",
             "person2@example.com", "word@example.com"]
        )  # fmt: skip
        assert report.outcomes == {"sent": 5, "failed": 1, "error": 5}
        later = run(engine, settings, "poison", at=NOW + timedelta(days=1))
        assert later.outcomes == {"error": 5}  # retried, because they are rebook's to fix
        assert sorted(smtp.handler.addresses()) == received


def test_a_utf8_address_goes_over_smtputf8_when_the_relay_offers_it(clinic):
    with SmtpServer(smtputf8=True) as smtp:
        settings, engine = poisoned_clinic(clinic, smtp.port)
        run(engine, settings, "poison")
        assert "jö@example.com" in smtp.handler.addresses()
        [message] = [m for m in smtp.handler.received if m.recipients == ["jö@example.com"]]
        assert "jö@example.com".encode() in message.data.split(b"\r\n\r\n")[0]
        assert ledger(engine, "poison")["jö@example.com"].status == "sent"


@pytest.mark.parametrize("kind", ["maildir"])
def test_the_maildir_transport_survives_the_same_rows(clinic, kind):
    import mailbox

    settings, engine = poisoned_clinic(clinic, 1)
    settings = settings.model_copy(
        update={"mail": settings.mail.model_copy(update={"transport": kind})}
    )
    report = run(engine, settings, "poison")
    assert report.outcomes == {"sent": 6, "error": 5}  # a maildir takes a UTF-8 address
    box = mailbox.Maildir(settings.mail.maildir, create=False)
    assert len(box) == 6


def test_preview_of_a_poisoned_client_says_why_without_a_traceback(clinic):
    poisoned_clinic(clinic, 1)
    result = clinic.rebook("preview", "poison", "--client", "crlf@example.com", "--format", "eml")
    assert result.code == 2 and "Traceback" not in result.err
    assert "no message can be built for 'crlf@example.com'" in result.err
    idna = clinic.rebook("preview", "poison", "--client", "jo@exämple.com", "--format", "eml")
    assert idna.code == 0 and "<jo@xn--exmple-cua.com>" in idna.out


def test_history_finds_a_row_whose_address_is_malformed(clinic):
    with SmtpServer() as smtp:
        settings, engine = poisoned_clinic(clinic, smtp.port)
        run(engine, settings, "poison")
    shown = clinic.rebook("history", "not-an-address")
    assert shown.code == 0 and "is not an email address" in shown.out
