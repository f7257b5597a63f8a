"""``rebook send``, ``history`` and ``unsubscribe`` as the clinic owner runs them."""

from __future__ import annotations

import asyncio
import json
import time

import aiosmtplib
import pytest

from campaigns.delivery.ratelimit import TokenBucket
from campaigns.delivery.transports.smtp import classify
from campaigns.durations import Rate

from .conftest import run_on_terminal
from .smtpd import SmtpServer, free_port
from .test_delivery import clinic_with


def test_send_prints_a_summary_and_history_shows_it(sqlite_clinic):
    with SmtpServer() as smtp:
        smtp.handler.script["person2@example.com"] = ["550 5.1.1 no such user"]
        clinic_with(sqlite_clinic, smtp.port)
        result = sqlite_clinic.rebook("send", "book")
    assert result.code == 0, result.err
    assert result.err == ""  # no progress bar when piped
    assert (
        "book: 6 in the segment; sent 2, deferred 0, failed 1 (1 hard bounce(s), now suppressed)"
        in result.out
    )
    assert "skipped 3: no marketing consent 3" in result.out
    assert "failed: person2@example.com: 550 5.1.1 no such user" in result.out
    shown = sqlite_clinic.rebook("history", "Person2@Example.com")
    assert "book" in shown.out and "failed" in shown.out and "550 5.1.1 no such user" in shown.out
    assert "suppressed since" in shown.out and "bounced" in shown.out
    data = json.loads(sqlite_clinic.rebook("history", "person0@example.com", "--json").out)
    assert [s["status"] for s in data["sends"]] == ["sent"] and data["suppression"] is None
    assert data["sends"][0]["message_id"].endswith("@waso.example>")


def test_send_exits_1_when_the_server_cannot_be_reached(sqlite_clinic):
    clinic_with(sqlite_clinic, free_port())
    result = sqlite_clinic.rebook("send", "book")
    assert result.code == 1
    assert "cannot reach 127.0.0.1" in result.err and "Traceback" not in result.err


def test_dry_run_lists_who_would_get_what(sqlite_clinic):
    clinic_with(sqlite_clinic, free_port())
    result = sqlite_clinic.rebook("send", "series", "--dry-run")
    assert result.code == 0
    assert (
        "person4@example.com" in result.out
        and "articles/01-benefits-of-massage-for-lower-back-pain.md" in result.out
    )
    assert "would send 3" in result.out


def test_unsubscribe_by_hand_stops_marketing(sqlite_clinic):
    with SmtpServer() as smtp:
        clinic_with(sqlite_clinic, smtp.port)
        first = sqlite_clinic.rebook("unsubscribe", "PERSON0@example.com")
        again = sqlite_clinic.rebook("unsubscribe", "person0@example.com")
        sent = sqlite_clinic.rebook("send", "book")
        assert "person0@example.com" not in smtp.handler.addresses()
    assert first.code == 0 and "person0@example.com is unsubscribed" in first.out
    assert "was already suppressed (manual" in again.out
    assert "unsubscribed or bounced 1" in sent.out
    bad = sqlite_clinic.rebook("unsubscribe", "nobody")
    assert bad.code == 2 and "not a valid address" in bad.err


def test_unknown_campaign_is_a_usage_error(sqlite_clinic):
    result = sqlite_clinic.rebook("send", "nope")
    assert result.code == 2 and "no campaign named 'nope'" in result.err


@pytest.mark.parametrize(
    ("error", "status", "reconnect", "bounce"),
    [
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(550, "no such user", "a@b")]
            ),
            "failed",
            False,
            True,
        ),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(551, "not local", "a@b")]
            ),
            "failed",
            False,
            True,
        ),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(553, "bad name", "a@b")]
            ),
            "failed",
            False,
            True,
        ),
        (
            aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(552, "full", "a@b")]),
            "failed",
            False,
            False,
        ),
        (
            aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(450, "busy", "a@b")]),
            "deferred",
            False,
            False,
        ),
        (aiosmtplib.SMTPDataError(554, "spam"), "failed", False, False),
        (aiosmtplib.SMTPDataError(451, "later"), "deferred", False, False),
        (aiosmtplib.SMTPSenderRefused(421, "closing", "x@y"), "deferred", True, False),
        (aiosmtplib.SMTPServerDisconnected("gone"), "deferred", True, False),
        (aiosmtplib.SMTPReadTimeoutError("slow"), "deferred", True, False),
        (ConnectionResetError("reset"), "deferred", True, False),
    ],
)
def test_replies_are_sorted_by_code(error, status, reconnect, bounce):
    outcome, again = classify(error)
    assert (outcome.status, again, outcome.hard_bounce) == (status, reconnect, bounce)


def test_token_bucket_holds_the_rate_across_callers():
    async def take(count: int) -> float:
        bucket = TokenBucket(Rate.parse("20/s"))
        started = time.monotonic()
        await asyncio.gather(*(bucket.acquire() for _ in range(count)))
        return time.monotonic() - started

    assert asyncio.run(take(1)) < 0.05  # the first goes at once
    assert 0.9 <= asyncio.run(take(21)) < 1.5  # then 20 a second, from the start


def test_a_terminal_sees_the_send_progress_bar(sqlite_clinic):
    clinic_with(sqlite_clinic, free_port(), transport="maildir")
    done, drawn = run_on_terminal("send", "book", cwd=sqlite_clinic.folder)
    assert done.returncode == 0 and "sent 3" in done.stdout
    assert b"sending book" in drawn


def test_check_smtp_connects_and_logs_in(sqlite_clinic):
    with SmtpServer() as smtp:
        clinic_with(sqlite_clinic, smtp.port)
        ok = sqlite_clinic.rebook("check", "--smtp")
    assert ok.code == 0 and f"smtp: connected to 127.0.0.1:{smtp.port} (none)" in ok.out
    down = sqlite_clinic.rebook("check", "--smtp")
    assert down.code == 1 and f"smtp: cannot connect to 127.0.0.1:{smtp.port}" in down.err


def test_preview_of_a_series_shows_the_article_the_client_gets_next(sqlite_clinic):
    with SmtpServer() as smtp:
        clinic_with(sqlite_clinic, smtp.port)
        first = sqlite_clinic.rebook("preview", "series", "--client", "person0@example.com")
        assert sqlite_clinic.rebook("send", "series").code == 0
        second = sqlite_clinic.rebook("preview", "series", "--client", "person0@example.com")
    assert "The benefits of massage therapy for lower back pain" in first.out
    assert "Six small habits that keep your back happy between sessions" in second.out


def test_send_holds_marketing_for_quiet_hours_unless_told(sqlite_clinic):
    clinic_with(sqlite_clinic, free_port(), transport="maildir")
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    perth = datetime.now(UTC).astimezone(ZoneInfo("Australia/Perth"))
    window = f"{perth - timedelta(hours=1):%H:%M}-{perth + timedelta(hours=1):%H:%M}"  # around now
    config = sqlite_clinic.config
    config.write_text(config.read_text() + f'\n[policy]\nquiet_hours = "{window}"\n')
    dry = sqlite_clinic.rebook("send", "book", "--dry-run")
    assert f"note: within quiet hours ({window}): it would be held" in dry.out
    held = sqlite_clinic.rebook("send", "book")
    until = f"{perth + timedelta(hours=1):%Y-%m-%d %H:%M}"
    assert held.code == 0 and "sent 0" in held.out
    assert f"held 3 for quiet hours ({window}) until {until}" in held.out
    released = sqlite_clinic.rebook("send", "book", "--ignore-quiet-hours")
    assert released.code == 0 and "sent 3" in released.out  # what was held goes too
    other = sqlite_clinic.rebook("send", "series", "--ignore-quiet-hours")
    assert "it went because you asked" in other.out and "sent 3" in other.out


def test_token_bucket_takes_its_share_of_the_total():
    async def take(bucket: TokenBucket, count: int) -> float:
        started = time.monotonic()
        await asyncio.gather(*(bucket.acquire() for _ in range(count)))
        return time.monotonic() - started

    bucket = TokenBucket(Rate.parse("40/s"))
    bucket.share(0.5)  # another worker takes the other half
    assert asyncio.run(take(bucket, 21)) >= 0.9  # 20/s
    bucket.share(1.0)
    assert bucket.per_second == 40


def test_sync_refuses_a_file_that_is_not_a_regular_file(sqlite_clinic):
    import os

    clinic_with(sqlite_clinic, free_port(), transport="maildir")
    os.mkfifo(sqlite_clinic.folder / "clients.fifo")
    sqlite_clinic.config.write_text(
        sqlite_clinic.config.read_text() + '\n[sync]\nclients = "clients.fifo"\n'
    )
    result = sqlite_clinic.rebook("sync")  # a FIFO would be read forever
    assert result.code == 2 and "is not a regular file" in result.err


def test_the_delivered_text_part_keeps_the_signature_separator_and_its_space(sqlite_clinic):
    """ "-- " ends with a space that editors, strip() and quoted-printable could each lose."""
    with SmtpServer() as smtp:
        clinic_with(sqlite_clinic, smtp.port)
        assert sqlite_clinic.rebook("send", "book").code == 0
        [delivered, *_] = smtp.handler.received
    assert b"\r\n--=20\r\nWaso Physiotherapy\r\n" in delivered.data  # the space, encoded to survive
    text = delivered.message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "\n\n-- \nWaso Physiotherapy\n1 Example Street, Perth WA 6000\n" in text
