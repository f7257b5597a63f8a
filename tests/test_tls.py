"""TLS to the relay: STARTTLS and implicit TLS against real aiosmtpd servers, a CA made here."""

from __future__ import annotations

import asyncio

import pytest
import trustme

from campaigns.config import load_settings
from campaigns.delivery.transports import Outgoing
from campaigns.delivery.transports.smtp import SmtpTransport

from .smtpd import SmtpServer, free_port, tls_certificate
from .test_delivery import clinic_with

REFUSED = "unable to get local issuer certificate"  # OpenSSL's words for a stranger's certificate


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def relay_clinic(clinic, port: int, security: str, ca: trustme.CA, extra: str = "") -> None:
    """The clinic of test_delivery, its relay trusted through ``ca`` written to relay-ca.pem."""
    clinic_with(clinic, port)
    ca.cert_pem.write_to_path(str(clinic.folder / "relay-ca.pem"))
    text = clinic.config.read_text()
    tls = f'security = "{security}"\nca_file = "relay-ca.pem"\n{extra}'
    clinic.config.write_text(text.replace('security = "none"\n', tls))


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_mail_reaches_a_relay_whose_certificate_the_ca_file_signed(sqlite_clinic, ca, security):
    with SmtpServer(tls=security, certificate=tls_certificate(ca)) as smtp:
        relay_clinic(sqlite_clinic, smtp.port, security, ca)
        check = sqlite_clinic.rebook("check", "--smtp")
        sent = sqlite_clinic.rebook("send", "book")
        received = sorted(smtp.handler.addresses())
    assert check.code == 0, check.err
    assert f"smtp: connected to 127.0.0.1:{smtp.port} ({security})" in check.out
    assert sent.code == 0, sent.err
    assert "sent 3" in sent.out
    assert received == ["person0@example.com", "person2@example.com", "person4@example.com"]


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_a_certificate_the_ca_file_did_not_sign_is_refused(sqlite_clinic, ca, security):
    stranger = trustme.CA()
    with SmtpServer(tls=security, certificate=tls_certificate(stranger)) as smtp:
        relay_clinic(sqlite_clinic, smtp.port, security, ca)
        check = sqlite_clinic.rebook("check", "--smtp")
        sent = sqlite_clinic.rebook("send", "book")
        received = smtp.handler.addresses()
    ca_file = sqlite_clinic.folder / "relay-ca.pem"
    said = f"smtp: the TLS certificate of 127.0.0.1:{smtp.port} was refused: {REFUSED}"
    for result in (check, sent):
        assert result.code == 1
        assert said in result.err and f"the CA in smtp.ca_file {ca_file}" in result.err
        assert "Traceback" not in result.err
    assert received == []
    assert sqlite_clinic.rebook("status").code == 0  # nothing claimed: the next run sends all


def test_a_refused_certificate_mid_run_is_an_error_the_next_run_retries(sqlite_clinic, ca):
    """A connection made again after the run started meets a stranger's certificate."""
    with SmtpServer(tls="starttls", certificate=tls_certificate(trustme.CA())) as smtp:
        relay_clinic(sqlite_clinic, smtp.port, "starttls", ca)
        transport = SmtpTransport(load_settings(sqlite_clinic.config).smtp)
        message = Outgoing(1, "hello@waso.example", "a@example.com", b"Subject: hi\r\n\r\nhi\r\n")
        outcome = asyncio.run(transport.send(message, 0))
    assert outcome.status == "error"
    assert outcome.reply == f"the relay's TLS certificate was refused: {REFUSED}"


def test_check_smtp_says_the_password_is_wrong_over_starttls(sqlite_clinic, ca):
    login = 'username = "hello@waso.example"\n'
    with SmtpServer(("hello@waso.example", "right"), tls="starttls",
                    certificate=tls_certificate(ca)) as smtp:  # fmt: skip
        relay_clinic(sqlite_clinic, smtp.port, "starttls", ca, extra=login)
        wrong = sqlite_clinic.rebook("check", "--smtp", env={"REBOOK_SMTP__PASSWORD": "wrong-pw"})
        right = sqlite_clinic.rebook("check", "--smtp", env={"REBOOK_SMTP__PASSWORD": "right"})
    assert wrong.code == 1, wrong.err
    assert (
        f"smtp: 127.0.0.1:{smtp.port} refused the login of smtp.username 'hello@waso.example' "
        "(check REBOOK_SMTP__PASSWORD): (535, '5.7.8 Authentication credentials invalid')"
    ) in wrong.err
    assert "wrong-pw" not in wrong.out + wrong.err and "Traceback" not in wrong.err
    assert right.code == 0 and "(starttls) as hello@waso.example" in right.out


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "relay-ca.pem: no such file"),
        ("not a certificate\n", "relay-ca.pem holds no PEM certificate OpenSSL can load"),
    ],
)
def test_a_missing_ca_file_or_one_without_a_certificate_stops_check(
    sqlite_clinic, ca, content, said
):
    relay_clinic(sqlite_clinic, 25, "starttls", ca)
    path = sqlite_clinic.folder / "relay-ca.pem"
    path.unlink()
    if content is not None:
        path.write_text(content)
    result = sqlite_clinic.rebook("check")
    assert result.code == 2
    assert f"config.toml: 1 problem(s):\n  smtp.ca_file: {path.parent}/{said}" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("security", "host", "username", "said"),
    [
        ("none", "127.0.0.1", None, "smtp.ca_file is set but smtp.security = 'none'"),
        ("none", "relay.example", "hello@waso.example",
         "smtp.security = 'none' to relay.example: the login and every message crosses"),
        ("starttls", "relay.example", "hello@waso.example", None),
    ],
)  # fmt: skip
def test_check_warns_when_mail_would_cross_the_network_unencrypted(
    sqlite_clinic, ca, security, host, username, said
):
    relay_clinic(sqlite_clinic, 25, security, ca)
    text = sqlite_clinic.config.read_text().replace('host = "127.0.0.1"', f'host = "{host}"')
    if security == "none" and host != "127.0.0.1":
        text = text.replace('ca_file = "relay-ca.pem"\n', "")
    if username:
        text = text.replace("[smtp]\n", f'[smtp]\nusername = "{username}"\n', 1)
    sqlite_clinic.config.write_text(text)
    result = sqlite_clinic.rebook("check")
    assert result.code == 0, result.err
    if said is None:
        assert "unencrypted" not in result.err and "never checked" not in result.err
    else:
        assert said in result.err


@pytest.mark.parametrize(
    ("server", "security", "login", "said"),
    [
        (None, "none", None, "smtp: cannot connect to 127.0.0.1:{port}: "),
        ("plain", "tls", None, "smtp: 127.0.0.1:{port} refused TLS: [SSL: WRONG_VERSION_NUMBER]"),
        ("plain", "starttls", None, "smtp: 127.0.0.1:{port} answered but does not offer STARTTLS"),
        ("plain", "none", "right",
         "smtp: 127.0.0.1:{port} answered but offers no login (AUTH) while smtp.username "
         "'hello@waso.example' is set"),
        ("login", "none", "wrong-pw", "smtp: 127.0.0.1:{port} refused the login of smtp.username"),
        ("login", "none", None,
         "smtp: smtp.username 'hello@waso.example' is set but REBOOK_SMTP__PASSWORD is not"),
    ],
)  # fmt: skip
def test_check_smtp_says_which_step_to_the_relay_failed(
    sqlite_clinic, ca, server, security, login, said
):
    """Each way a relay can fall short is its own message, against aiosmtpd set up that way."""
    credentials = ("hello@waso.example", "right") if server == "login" else None
    with SmtpServer(credentials) as smtp:
        port = smtp.port if server else free_port()
        relay_clinic(sqlite_clinic, port, security, ca)
        if security == "none":  # no ca_file then: check would warn it is never used
            text = sqlite_clinic.config.read_text().replace('ca_file = "relay-ca.pem"\n', "")
            sqlite_clinic.config.write_text(text)
        if server == "login" or login:
            text = sqlite_clinic.config.read_text()
            text = text.replace("[smtp]\n", '[smtp]\nusername = "hello@waso.example"\n', 1)
            sqlite_clinic.config.write_text(text)
        env = {"REBOOK_SMTP__PASSWORD": login} if login else {}
        result = sqlite_clinic.rebook("check", "--smtp", env=env)
    assert result.code == 1, (result.out, result.err)
    assert said.format(port=port) in result.err
    assert "Traceback" not in result.err and "wrong-pw" not in result.out + result.err
