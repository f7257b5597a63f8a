"""What a hostile client, a curious stranger or a careless template cannot do.

Each property is checked where a user would meet it: the endpoint served by
the real ``rebook run``, the real command's output and log, the delivered
message, and ``rebook check`` on a clinic's own template.
"""

from __future__ import annotations

import httpx
import pytest

from campaigns.content.tokens import make_token
from campaigns.store.tables import client_suppressions, suppressions

from .service import RunningService
from .smtpd import SmtpServer
from .test_delivery import clinic_with
from .test_web import serving_clinic, suppressed

WEB_SECRET = "web-SEKRET-0123456789abcdef"
SMTP_PASSWORD = "smtp-SEKRET-0123456789"
SECRETS = {"REBOOK_WEB__SECRET": WEB_SECRET, "REBOOK_SMTP__PASSWORD": SMTP_PASSWORD}


def token(client_id: str, secret: str = WEB_SECRET) -> str:
    return make_token(secret.encode(), client_id)


def answers(base: str, path_token: str) -> tuple:
    """Everything a stranger can observe: status, headers that vary, and the page."""
    url = f"{base}/unsubscribe/{path_token}"
    got = httpx.get(url)
    posted = httpx.post(url, data={"List-Unsubscribe": "One-Click"})
    return tuple(
        (response.status_code, response.headers.get("content-type"), response.text)
        for response in (got, posted)
    )


def test_no_answer_tells_whether_someone_is_a_client(clinic):
    """A forged token is refused alike for a client and for a stranger; a genuine one is
    honoured alike, so probing ids learns nothing (c000 is a client, x999 is nobody)."""
    with SmtpServer() as smtp:
        base = serving_clinic(clinic, smtp.port)
        with RunningService(clinic.folder, env=SECRETS) as service:
            service.wait_for("web endpoint listening")
            forged_client = answers(base, token("c001", "another-secret-of-16+bytes"))
            forged_stranger = answers(base, token("x999", "another-secret-of-16+bytes"))
            assert forged_client == forged_stranger
            assert forged_client[1][0] == 400
            assert suppressed(clinic) == ([], [])
            assert answers(base, token("c001")) == answers(base, token("x999"))
            assert service.stop() == 0


def same_bytes_other_spelling(encoded: str) -> str:
    """The base64url text that decodes to the same bytes but differs in the unused low bits."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(encoded[-1])
    return encoded[:-1] + alphabet[last ^ 1]


def test_a_token_cannot_be_altered_to_unsubscribe_someone_else(clinic):
    """Swapping the id, re-spelling it, or trimming the signature gives 400 and changes nothing."""
    genuine = token("c001")
    payload, signature = genuine.split(".")
    other = token("c002").split(".")[0]
    altered = [
        f"{other}.{signature}",  # c002's id under c001's signature
        f"{payload}.{signature[:-2]}",  # a shortened signature
        f"{payload}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",  # one character off
        f"{payload}==.{signature}",  # padding the id
        f"{payload}.{same_bytes_other_spelling(signature)}",  # the same signature bytes, re-spelt
        f"{payload}.{signature}.{signature}",  # a second signature appended
        f"{other}.",  # no signature at all
        "." + signature,  # no id
        payload,  # no dot
    ]
    with SmtpServer() as smtp:
        base = serving_clinic(clinic, smtp.port)
        with RunningService(clinic.folder, env=SECRETS) as service:
            service.wait_for("web endpoint listening")
            for candidate in altered:
                response = httpx.post(
                    f"{base}/unsubscribe/{candidate}", data={"List-Unsubscribe": "One-Click"}
                )
                assert response.status_code == 400, candidate
                assert "Traceback" not in response.text
            assert suppressed(clinic) == ([], [])
            assert httpx.post(f"{base}/unsubscribe/{genuine}").status_code == 200
            assert service.stop() == 0
    assert suppressed(clinic)[0] == [("c001", "unsubscribed")]


def leaks(text: str) -> list[str]:
    return [secret for secret in (WEB_SECRET, SMTP_PASSWORD, "SEKRET") if secret in text]


def test_secrets_never_reach_output_logs_or_errors(clinic):
    """The web secret and the SMTP password, set as the README says, in every place they could
    surface: check, a refused login, a bad config naming the variable, and the service's log."""
    with SmtpServer(credentials=("hello@waso.example", SMTP_PASSWORD)) as smtp:
        clinic_with(clinic, smtp.port)
        clinic.config.write_text(
            clinic.config.read_text().replace(
                "[smtp]\n", '[smtp]\nusername = "hello@waso.example"\n', 1
            )
        )
        outputs = [
            clinic.rebook("check", "--smtp", env=SECRETS),
            clinic.rebook("send", "book", env=SECRETS),
            clinic.rebook("status", env=SECRETS),
            clinic.rebook("history", "person0@example.com", env=SECRETS),
            clinic.rebook("check", env=SECRETS | {"REBOOK_WEB__SECRET": "SEKRET-short"}),
            clinic.rebook("check", env=SECRETS | {"REBOOK_SMTP__PORT": "SEKRET"}),
            clinic.rebook(
                "check", env=SECRETS | {"REBOOK_DATABASE__URL": "postgresql://u:SEKRET@127.0.0.1:1"}
            ),
        ]
        assert outputs[0].code == 0 and " as hello@waso.example" in outputs[0].out
        assert [result.code for result in outputs[4:]] == [2, 2, 2]
        assert smtp.logins == ["hello@waso.example"] * len(smtp.logins) and smtp.logins
        with RunningService(clinic.folder, "--log-format", "json", env=SECRETS) as service:
            service.wait_for("web endpoint listening")
            assert service.stop() == 0
    for result in outputs:
        assert leaks(result.out + result.err) == [], result
    assert leaks(service.log()) == []


def test_no_line_break_from_the_data_reaches_a_header(sqlite_clinic):
    """Names, addresses and the clinic's own subject carrying CR/LF: the message that goes
    out has exactly one of each header, and no header the data tried to add."""
    clinic = sqlite_clinic
    clinic_with(clinic, 1, transport="maildir")
    clinic.config.write_text(
        clinic.config.read_text().replace(
            'subject = "{{ client.first_name }}, how is your back?"',
            'subject = "Hello {{ client.last_name }}\\r\\nX-Injected-Subject: yes"',
        )
    )
    clinic.write(
        "hostile.csv",
        'id,email,first_name,last_name,marketing_consent\n'
        'c100,"eve@example.com\r\nX-Injected-Address: yes",Eve,Smith,yes\n'
        'c102,mallory@example.com,"Mallory\r\nX-Injected-Name: yes","Doe\nX-Injected-Last: yes",yes\n'
        'c104,"trent@example.com\nBcc: victim@example.org",Trent,Jones,yes\n',
    )  # fmt: skip
    clinic.write(
        "hostile-visits.csv",
        "id,client_id,starts_at,service,status\n"
        + "".join(f"h{n},c{n},2026-08-01T10:00,massage,attended\n" for n in (100, 102, 104)),
    )
    clinic.rebook("import", "clients", "hostile.csv", "--skip-invalid")
    clinic.rebook("import", "visits", "hostile-visits.csv", "--skip-invalid")
    sent = clinic.rebook("send", "book", "--ignore-quiet-hours")
    assert sent.code in (0, 1), sent.err
    messages = sorted((clinic.folder / "sent-mail" / "new").iterdir())
    assert messages, sent.out + sent.err
    for path in messages:
        head = path.read_bytes().split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        assert b"X-Injected" not in head.replace(b"X-Injected-Subject: yes", b"")
        assert b"Bcc" not in head
        names = [line.split(b":", 1)[0] for line in head.splitlines() if not line[:1].isspace()]
        for header in (b"From", b"To", b"Subject", b"Date", b"Message-ID"):
            assert names.count(header) == 1, (path.name, head)
    engine = clinic.engine()
    with engine.connect() as connection:
        assert connection.execute(client_suppressions.select()).all() == []
        assert connection.execute(suppressions.select()).all() == []


SANDBOX_ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ client.__class__.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ ''|attr('__class__') }}",
    "{{ '{0.__class__.__mro__}'.format(client) }}",
    "{% set x = self._TemplateReference__context %}{{ x }}",
    "{{ client.__dict__ }}",
]


@pytest.mark.parametrize("expression", SANDBOX_ESCAPES)
def test_the_sandbox_refuses_escapes_in_a_clinics_own_template(sqlite_clinic, expression):
    clinic = sqlite_clinic
    clinic_with(clinic, 1, transport="maildir")
    clinic.config.write_text('templates = "own"\n' + clinic.config.read_text()
                             + '\n[campaigns.mine]\nsegment = "lapsed"\ntemplate = "mine"\n'
                             'subject = "Hello"\n')  # fmt: skip
    clinic.write(
        "own/mine.html.j2",
        f"""
        <p>Hello {{{{ client.first_name }}}},</p>
        <p>{expression}</p>
        """,
    )
    checked = clinic.rebook("check")
    assert checked.code == 2, checked.out + checked.err
    assert f"{clinic.folder / 'own' / 'mine.html.j2'}, line 2" in checked.err
    assert "Traceback" not in checked.err
    assert "<class" not in checked.out + checked.err  # nothing from inside Python was shown


def test_no_answer_builds_a_url_from_the_host_header(clinic):
    """A trailing slash, another path or method, a Host of the attacker's choosing: the
    endpoint answers where it is asked (never a redirect), and nothing it says names that host."""
    genuine = token("c001")
    with SmtpServer() as smtp:
        base = serving_clinic(clinic, smtp.port)
        with RunningService(clinic.folder, env=SECRETS) as service:
            service.wait_for("web endpoint listening")
            hostile = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
            with httpx.Client(base_url=base, headers=hostile) as client:
                page = client.get(f"/unsubscribe/{genuine}/")
                assert page.status_code == 200 and '<form method="post">' in page.text
                answers = [
                    page,
                    client.get(f"/unsubscribe/{genuine}//"),
                    client.get("/healthz/"),
                    client.get("//evil.example/"),
                    client.get("/unsubscribe/"),
                    client.put(f"/unsubscribe/{genuine}"),
                    client.delete("/healthz"),
                    client.post(f"/unsubscribe/{genuine}/", data={"List-Unsubscribe": "One-Click"}),
                ]
            for answer in answers:
                assert answer.status_code < 300 or answer.status_code >= 400, answer.headers
                assert "evil.example" not in str(answer.headers).lower() + answer.text
                assert "Traceback" not in answer.text
            assert answers[-1].status_code == 200
            assert service.stop() == 0
    assert suppressed(clinic)[0] == [("c001", "unsubscribed")]
