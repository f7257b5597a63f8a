"""Config mistakes as the clinic owner meets them: through the real ``rebook``, exit 2, no secret shown."""

from __future__ import annotations

import email
import email.policy
import os

import pytest

from .smtpd import free_port
from .test_delivery import clinic_with

CAMPAIGN = """
[segments.everyone]
[campaigns.c]
segment = "everyone"
template = "reminders/book-next-massage"
subject = "Hello"
"""


def assert_refused(result, *named: str, hidden: str | None = None) -> None:
    assert result.code == 2, (result.out, result.err)
    assert "Traceback" not in result.err
    for text in named:
        assert text in result.err
    if hidden is not None:
        assert hidden not in result.out and hidden not in result.err


@pytest.mark.parametrize("secret", ["", "too-short"])
def test_a_short_web_secret_stops_every_command_that_signs(sqlite_clinic, secret):
    sqlite_clinic.write_config(CAMPAIGN)
    env = {"REBOOK_WEB__SECRET": secret}
    for command in (("check",), ("send", "c"), ("preview", "c")):
        result = sqlite_clinic.rebook(*command, env=env)
        assert_refused(result, "REBOOK_WEB__SECRET", "at least 16 bytes", hidden=secret or None)
        assert "config.toml" not in result.err


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('repeat_after = "0d"\n', "campaigns.c.repeat_after"),
        ('repeat_after = "99999999999w"\n', "campaigns.c.repeat_after"),
        ('[mail]\nfrom = "a@x.example, b@y.example"\n', "mail.from"),
        ('[mail]\nfrom = "Wasö <hello@wasö.example>"\n', "mail.from"),
        ('[mail]\nfrom = "a@x.example"\nreply_to = "a@x.example, b@y.example"\n', "mail.reply_to"),
        ('[segments.old]\nlast_visit_older_than = "99999999w"\n', "segments.old.last_visit_older_than"),
    ],
)  # fmt: skip
def test_values_that_crashed_send_are_refused_by_check_and_send(sqlite_clinic, extra, key):
    config = sqlite_clinic.write_config(CAMPAIGN + extra)
    if "[mail]" in extra:  # replace the base [mail] table rather than repeat it
        base_mail = '[mail]\nfrom = "Waso Physiotherapy <hello@waso.example>"\n'
        config.write_text(config.read_text().replace(base_mail, "", 1))
    for command in (("check",), ("send", "c")):
        assert_refused(sqlite_clinic.rebook(*command), f"{key}: ")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("REBOOK_SMTP", "{bad"), ("REBOOK_CAMPAIGNS__X", "{"), ("REBOOK_SMTP__PORT", "abc")],
)
def test_a_bad_environment_variable_is_named_by_import_and_check(sqlite_clinic, variable, value):
    sqlite_clinic.write("clients.csv", "id,email\nc1,a@example.com\n")
    for command in (("check",), ("import", "clients", "clients.csv")):
        result = sqlite_clinic.rebook(*command, env={variable: value})
        assert_refused(result, variable)
        assert "config.toml" not in result.err


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://clinic:s3cr3t-pw@db.example/clinic",
        "postgresql://clinic:s3cr3t-pw@db.example",
        "postgresql://clinic:s3cr3t-pw@db.example:port/clinic",
        "postgresql://rebook:Tr0ub4dor@s3cr3t-pw@127.0.0.1:5432/db",  # an '@' in the password
        "postgresql://rebook:pass s3cr3t-pw@127.0.0.1:54x/db",  # a space, and a bad port
        "postgresql://rebook:s3cr3t/pw@127.0.0.1:5432/db",  # a '/'
    ],
)
def test_a_database_password_is_never_shown(sqlite_clinic, url):
    for command in (("check",), ("status",), ("plan",)):
        result = sqlite_clinic.rebook(*command, env={"REBOOK_DATABASE__URL": url})
        assert_refused(result, "database.url", hidden="s3cr3t")
        assert "Tr0ub4dor" not in result.err


def test_a_database_nobody_answers_for_is_down_not_a_mistake_and_its_password_is_not_shown(
    sqlite_clinic,
):
    url = "postgresql://clinic:s3cr3t-pw@127.0.0.1:1/clinic"  # valid, but nothing listens
    for command in (("check",), ("status",), ("plan",)):
        result = sqlite_clinic.rebook(*command, env={"REBOOK_DATABASE__URL": url})
        assert result.code == 1 and "cannot be reached now" in result.err, result
        assert "s3cr3t" not in result.err + result.out and "Traceback" not in result.err


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "postgresql://"])
def test_a_database_url_without_a_database_is_refused(sqlite_clinic, url):
    sqlite_clinic.write_config(database_url=url)
    assert_refused(sqlite_clinic.rebook("check"), "config.toml", "database.url: ")


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('[web]\npublic_url = "mail.waso.example"\n', "web.public_url"),
        ('[web]\npublic_url = "https://mail.waso.example/?from=email"\n', "web.public_url"),
        (
            '[mail]\nfrom = "a@waso.example"\nunsubscribe_mailto = "unsubscribe"\n',
            "mail.unsubscribe_mailto",
        ),
    ],
)
def test_check_refuses_links_and_addresses_mail_cannot_carry(sqlite_clinic, extra, key):
    config = sqlite_clinic.write_config(extra)
    config.write_text(config.read_text().replace('[mail]\nfrom = "Waso Physiotherapy <hello@waso.example>"\n', "", 1))  # fmt: skip
    assert_refused(sqlite_clinic.rebook("check"), f"{key}: ")


def test_check_refuses_a_maildir_that_is_a_file(sqlite_clinic):
    sqlite_clinic.write("mail-file", "not a folder\n")
    sqlite_clinic.write_config('maildir = "mail-file"\n')  # appended to [mail]
    assert_refused(sqlite_clinic.rebook("check"), "mail.maildir: ", "is a file, not a folder")
    inside = sqlite_clinic.rebook("check", env={"REBOOK_MAIL__MAILDIR": "mail-file/sent"})
    assert_refused(inside, "REBOOK_MAIL__MAILDIR", "cannot be made")


def test_check_accepts_a_maildir_yet_to_be_made(sqlite_clinic):
    sqlite_clinic.write_config('maildir = "mail/sent"\n')
    assert sqlite_clinic.rebook("check").code == 0


@pytest.mark.parametrize("secret", [None, "a-web-secret-of-32-bytes-or-more!"])
def test_preview_and_send_sign_the_same_unsubscribe_link(clinic, secret):
    """preview --format eml shows the message as sent: the same one-click link, the same key."""
    clinic_with(clinic, free_port(), transport="maildir")
    env = {"REBOOK_WEB__SECRET": secret} if secret else {}
    shown = clinic.rebook("preview", "book", "--client", "person0@example.com", "--format", "eml", env=env)  # fmt: skip
    assert shown.code == 0, shown.err
    assert clinic.rebook("send", "book", env=env).code == 0
    sent = [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in (clinic.folder / "sent-mail" / "new").iterdir()
    ]
    [delivered] = [m for m in sent if m["To"].addresses[0].addr_spec == "person0@example.com"]
    previewed = email.message_from_string(shown.out, policy=email.policy.default)
    assert delivered["List-Unsubscribe"] == previewed["List-Unsubscribe"]
    assert "/unsubscribe/" in delivered["List-Unsubscribe"]


def test_a_fifo_named_by_the_config_or_as_the_config_is_refused_not_waited_on(sqlite_clinic):
    """open() of a FIFO waits for a writer: check would hang forever, and a service start too."""
    os.mkfifo(sqlite_clinic.folder / "relay-ca.pem")
    sqlite_clinic.write_config('[smtp]\nca_file = "relay-ca.pem"\n')
    assert_refused(
        sqlite_clinic.rebook("check"),
        "smtp.ca_file: ",
        "relay-ca.pem is not a regular file but a FIFO",
    )
    os.mkfifo(sqlite_clinic.folder / "piped.toml")
    assert_refused(
        sqlite_clinic.rebook("--config", "piped.toml", "check"),
        "piped.toml is not a regular file but a FIFO",
    )
