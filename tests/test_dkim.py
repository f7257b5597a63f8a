"""DKIM: every message that leaves (SMTP, maildir, preview) carries a signature dkimpy verifies."""

from __future__ import annotations

import mailbox
import os
import re
from datetime import UTC, datetime

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from dkim.canonicalization import Relaxed
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from campaigns.config import Dkim, load_settings
from campaigns.content.signing import SIGNED, DkimSigner, relaxed_body

from .conftest import example_email
from .service import RunningService
from .smtpd import SmtpServer
from .test_delivery import clinic_with, run
from .test_service import add_campaign

DKIM = """
[dkim]
domain = "waso.example"
selector = "rebook1"
private_key_file = "keys/dkim.pem"
"""
# cryptography refuses to make keys under 1,024 bits; this one came from
# `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:512`, for this test only.
SHORT_KEY = """\
-----BEGIN PRIVATE KEY-----
MIIBUwIBADANBgkqhkiG9w0BAQEFAASCAT0wggE5AgEAAkEArw74XM96qbYYgQ4G
yIUaQhA4ZasEJoEUe72PO4/xUxNawwuRzojMCfkdJXKXmQGWvt1hPzg4SZCI6kRs
6d4OXwIDAQABAkAKdR97E93lA37FPtxC4EioR6XG1QeDcVSS68kBquCksLsAYqjG
jMm097KEUizrNLStTa53TaPMoxFA0rOcBTJxAiEA13JGdDkYTBm5qOVosb2HS5jL
Ylgd95y/pbJhk6xb4hcCIQDQAoVZqb0eluY7KfUF345w8XlCxy9/XZKUGqjzWU/K
+QIgbJsZswr5GZu6QM7smPTu2Af9NuUurhzha1jh4Xx4kR8CIESEAA6ntW6k/9MP
H/E+UPns4CdZ2tBWLxjvqyT1Dy5pAiBRdZsGI5MTMV+Pd4lTIZBIUYbD6BzqZYqd
iYQ6g6U3iQ==
-----END PRIVATE KEY-----
"""
RECORD = re.compile(r"^  name:  (\S+)\n  value: (v=DKIM1; k=rsa; p=\S+)$", re.M)


def pem(key, password: bytes | None = None) -> str:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


@pytest.fixture(scope="module")
def key_pem() -> str:
    return pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def key_lines(text: str) -> list[str]:
    """The base64 lines of a PEM: none of them may ever be printed."""
    return [line for line in text.splitlines() if line and not line.startswith("-----")]


def signed_clinic(clinic, key_pem: str, port: int = 25, transport: str = "smtp") -> None:
    clinic_with(clinic, port, transport=transport)
    clinic.write("keys/dkim.pem", key_pem)
    clinic.config.write_text(clinic.config.read_text() + DKIM)


def published(clinic, env: dict[str, str] | None = None):
    """``rebook check``'s TXT record, as a dnsfunc for ``dkim.verify`` (the DNS, in a test)."""
    check = clinic.rebook("check", env=env)
    assert check.code == 0, check.err
    name, value = RECORD.search(check.out).groups()

    def dnsfunc(asked: bytes, timeout: float = 5) -> bytes | None:
        return value.encode() if asked.decode().rstrip(".") == name else None

    return check, name, dnsfunc


def signed_headers(message: bytes) -> list[bytes]:
    header = re.search(rb"^DKIM-Signature:(.*?)\r\n(?![ \t])", message, re.M | re.S)[1]
    tags = re.search(rb"h=([^;]*);", re.sub(rb"\s", b"", header))[1]
    return tags.split(b":")


def test_send_over_smtp_delivers_messages_dkimpy_verifies(sqlite_clinic, key_pem):
    with SmtpServer() as smtp:
        signed_clinic(sqlite_clinic, key_pem, smtp.port)
        check, name, dnsfunc = published(sqlite_clinic)
        sent = sqlite_clinic.rebook("send", "book")
        received = [item.data for item in smtp.handler.received]
    assert name == "rebook1._domainkey.waso.example"
    assert "dkim: messages are signed; publish this DNS TXT record" in check.out
    assert sent.code == 0 and "sent 3" in sent.out
    assert len(received) == 3
    for data in received:
        assert data.startswith(
            b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=waso.example;"
        )
        assert dkim.verify(data, dnsfunc=dnsfunc)
        assert signed_headers(data) == [
            b"from", b"to", b"subject", b"date", b"message-id", b"list-unsubscribe",
            b"list-unsubscribe-post", b"mime-version", b"content-type", b"from",
        ]  # fmt: skip
        tampered = data.replace(b"Subject: ", b"Subject: Re: ", 1)
        assert not dkim.verify(tampered, dnsfunc=dnsfunc)


def test_helper_processes_sign_what_they_send(sqlite_clinic, key_pem):
    """A big run's helpers load the key themselves (settings cross as a pickle)."""
    with SmtpServer() as smtp:
        signed_clinic(sqlite_clinic, key_pem, smtp.port)
        _, _, dnsfunc = published(sqlite_clinic)
        settings, engine = load_settings(sqlite_clinic.config), sqlite_clinic.engine()
        report = run(engine, settings, "book", processes=2)
        received = [item.data for item in smtp.handler.received]
    assert report.outcomes == {"sent": 3} and len(received) == 3
    assert all(dkim.verify(data, dnsfunc=dnsfunc) for data in received)


def test_maildir_and_preview_hold_the_signed_message(sqlite_clinic, key_pem):
    signed_clinic(sqlite_clinic, key_pem, transport="maildir")
    _, _, dnsfunc = published(sqlite_clinic)
    preview = sqlite_clinic.rebook("preview", "book", "--format", "eml")
    sent = sqlite_clinic.rebook("send", "book")
    assert preview.code == 0 and sent.code == 0 and "sent 3" in sent.out
    box = mailbox.Maildir(sqlite_clinic.folder / "sent-mail", create=False)
    delivered = [box.get_bytes(key) for key in box.iterkeys()]
    assert len(delivered) == 3
    for data in [preview.out.encode(), *delivered]:
        assert data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
        assert dkim.verify(data, dnsfunc=dnsfunc)


def test_the_key_in_the_environment_signs_and_is_never_printed(sqlite_clinic, key_pem):
    with SmtpServer() as smtp:
        signed_clinic(sqlite_clinic, key_pem, smtp.port)
        (sqlite_clinic.folder / "keys/dkim.pem").unlink()  # the variable wins: no file needed
        env = {"REBOOK_DKIM__PRIVATE_KEY": key_pem}
        check, _, dnsfunc = published(sqlite_clinic, env)
        results = [
            check,
            sqlite_clinic.rebook("send", "book", env=env),
            sqlite_clinic.rebook("history", "person0@example.com", env=env),
            sqlite_clinic.rebook("status", env=env),
        ]
        received = [item.data for item in smtp.handler.received]
    assert len(received) == 3 and all(dkim.verify(data, dnsfunc=dnsfunc) for data in received)
    shown = "".join(result.out + result.err for result in results)
    assert not [line for line in key_lines(key_pem) if line in shown]


def test_the_service_signs_and_never_logs_the_key(sqlite_clinic, key_pem):
    with SmtpServer() as smtp:
        signed_clinic(sqlite_clinic, key_pem, smtp.port)
        add_campaign(sqlite_clinic, "tick", "every 1h")
        (sqlite_clinic.folder / "keys/dkim.pem").unlink()
        env = {"REBOOK_DKIM__PRIVATE_KEY": key_pem}
        _, _, dnsfunc = published(sqlite_clinic, env)
        with RunningService(sqlite_clinic.folder, env=env) as service:
            service.wait_for("run finished")
            assert service.stop() == 0, service.log()
        received = [item.data for item in smtp.handler.received]
    assert len(received) == 3 and all(dkim.verify(data, dnsfunc=dnsfunc) for data in received)
    assert not [line for line in key_lines(key_pem) if line in service.log()]


def test_a_key_with_escaped_line_breaks_in_the_environment_is_accepted(sqlite_clinic, key_pem):
    signed_clinic(sqlite_clinic, key_pem)
    check = sqlite_clinic.rebook(
        "check", env={"REBOOK_DKIM__PRIVATE_KEY": key_pem.replace("\n", "\\n")}
    )
    assert check.code == 0, check.err


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "keys/dkim.pem: no such file"),
        ("hello\n", "keys/dkim.pem: not a PEM private key"),
        ("EC", "keys/dkim.pem: the private key is not an RSA key"),
        ("encrypted", "keys/dkim.pem: the private key is protected by a passphrase"),
        ("short", "keys/dkim.pem: the RSA key has 512 bits"),
        ("fifo", "keys/dkim.pem is not a regular file but a FIFO: expected a PEM"),  # no hang
        ("device", "keys/dkim.pem is not a regular file but a device"),
    ],
)
def test_a_bad_key_file_stops_every_command_naming_the_file(sqlite_clinic, key_pem, content, said):
    signed_clinic(sqlite_clinic, key_pem)
    path = sqlite_clinic.folder / "keys/dkim.pem"
    made = {
        "EC": lambda: pem(ec.generate_private_key(ec.SECP256R1())),
        "encrypted": lambda: pem(rsa.generate_private_key(65537, 2048), b"pass phrase"),
        "short": lambda: SHORT_KEY,
    }
    path.unlink()
    if content == "fifo":
        os.mkfifo(path)
    elif content == "device":
        path.symlink_to("/dev/zero")
    elif content is not None:
        path.write_text(made[content]() if content in made else content)
    written = path.read_text() if path.is_file() else ""
    for command in (["check"], ["send", "book"]):
        result = sqlite_clinic.rebook(*command)
        assert result.code == 2, result.err
        assert f"  dkim.private_key_file: {path.parent}/{said.removeprefix('keys/')}" in result.err
        assert "Traceback" not in result.err
        assert not [line for line in key_lines(written) if line in result.err]


def test_a_bad_key_in_the_environment_is_named_by_its_variable(sqlite_clinic, key_pem):
    signed_clinic(sqlite_clinic, key_pem)
    broken = key_pem[:200] + key_pem[260:]
    result = sqlite_clinic.rebook("check", env={"REBOOK_DKIM__PRIVATE_KEY": broken})
    assert result.code == 2
    assert "REBOOK_DKIM__PRIVATE_KEY (dkim.private_key): not a PEM private key" in result.err
    assert not [line for line in key_lines(broken) if line in result.err]


def test_check_warns_when_the_signing_domain_is_not_the_from_domain(sqlite_clinic, key_pem):
    signed_clinic(sqlite_clinic, key_pem)
    config = sqlite_clinic.config
    config.write_text(
        config.read_text().replace('domain = "waso.example"', 'domain = "other.example"')
    )
    check = sqlite_clinic.rebook("check")
    assert check.code == 0
    assert (
        "dkim.domain 'other.example' is not the From address's domain 'waso.example'" in check.err
    )
    assert "name:  rebook1._domainkey.other.example" in check.out


@pytest.mark.parametrize("campaign", ["book-next-massage", "appointment-reminder"])
def test_the_signature_is_byte_for_byte_the_one_dkimpy_makes(tmp_path, key_pem, campaign):
    """OpenSSL signs what dkimpy would: same canonical form, same tags, same folding."""
    _, _, message = example_email(tmp_path, campaign)
    signer = DkimSigner(
        Dkim(domain="waso.example", selector="rebook1", private_key=SecretStr(key_pem))
    )
    present = {line.split(b":")[0].lower() for line in message.split(b"\r\n\r\n")[0].splitlines()}
    include = [name for name in SIGNED if name in present] + [b"from"]
    reference = dkim.sign(
        message, b"rebook1", b"waso.example", key_pem.encode(),
        canonicalize=(b"relaxed", b"relaxed"), include_headers=include,
    )  # fmt: skip
    at = datetime.fromtimestamp(int(re.search(rb"t=(\d+);", reference)[1]), UTC)
    assert signer.sign(message, at) == reference + message
    marketing = campaign == "book-next-massage"  # a reminder has no unsubscribe header to sign
    assert (b"list-unsubscribe" in signed_headers(reference + message)) == marketing


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from([b"a", b"=", b" ", b"  ", b"\t", b"\r", b"\n", b"\r\n", b"\xc3\xa9"]))
)
def test_the_relaxed_body_is_dkimpys(pieces):
    body = b"".join(pieces)
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)
