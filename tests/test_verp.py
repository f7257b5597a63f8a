"""With ``[bounces]``, every message says where its bounce goes, and which ledger row it was."""

from __future__ import annotations

from sqlalchemy import select

from campaigns.content.tokens import read_verp_token, tag_of
from campaigns.store.secrets import web_secret
from campaigns.store.tables import sends

from .smtpd import SmtpServer
from .test_delivery import clinic_with, run


def with_bounces(clinic, extra: str = "") -> None:
    clinic.config.write_text(
        clinic.config.read_text() + f'\n[bounces]\naddress = "bounces@waso.example"\n{extra}'
    )


def test_each_message_leaves_with_a_verp_sender_naming_its_ledger_row(clinic):
    from campaigns.config import load_settings

    with SmtpServer() as smtp:
        _, engine = clinic_with(clinic, smtp.port)
        with_bounces(clinic)
        settings = load_settings(clinic.config)
        run(engine, settings, "book")
        received = list(smtp.handler.received)
    with engine.connect() as connection:
        secret = web_secret(connection, None)
        rows = {row.email: row.id for row in connection.execute(select(sends.c.email, sends.c.id))}
    assert len(received) == 3
    for item in received:
        [to] = item.recipients
        token = tag_of(item.sender, "bounces@waso.example")
        assert token is not None and read_verp_token(secret, token) == rows[to]
        unsubscribe = item.message["List-Unsubscribe"]
        link_token = unsubscribe.split("/unsubscribe/")[1].split(">")[0]
        assert f"<mailto:unsubscribe+{link_token}@waso.example?subject=unsubscribe>" in unsubscribe
        assert item.message["From"] == "Waso Physiotherapy <hello@waso.example>"  # unchanged


def test_verp_false_keeps_one_envelope_sender_and_none_without_bounces_is_the_from(clinic):
    from campaigns.config import load_settings

    with SmtpServer() as smtp:
        _, engine = clinic_with(clinic, smtp.port)
        settings = load_settings(clinic.config)
        run(engine, settings, "reminder")  # transactional: no unsubscribe
        with_bounces(clinic, "verp = false\n")
        settings = load_settings(clinic.config)
        run(engine, settings, "book")
        senders = [
            (item.sender, "List-Unsubscribe" in item.message) for item in smtp.handler.received
        ]
    assert senders[:2] == [("hello@waso.example", False)] * 2
    assert set(senders[2:]) == {("bounces@waso.example", True)}
