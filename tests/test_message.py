"""Messages parse back with the standard library exactly as a mail client would read them."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from campaigns.config import Mail
from campaigns.message import MessageError, build_message, new_message_id, sender_from
from campaigns.render import Rendered

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
CONTENT = Rendered(
    "Nguyễn, how is your back?",
    "<p>Hi Nguyễn — <a href='https://b.example'>book</a></p>",
    "Hi Nguyễn — book: https://b.example\n",
)


def build(mail: Mail | None = None, **overrides):
    sender = sender_from(
        mail
        or Mail(
            **{"from": "Waso Physiotherapy <hello@waso.example>", "reply_to": "desk@waso.example"}
        )
    )
    values = {"to_name": "Nguyễn O'Brien", "to_email": "n.obrien@example.com", "message_id": new_message_id(sender),
              "date": NOW, "unsubscribe_url": "https://mail.waso.example/unsubscribe/abc.def"} | overrides  # fmt: skip
    raw = bytes(build_message(CONTENT, sender, **values))
    return raw, email.message_from_bytes(raw, policy=email.policy.default)


def test_headers_parts_and_encoding():
    raw, parsed = build()
    assert b"\r\n" in raw and not raw.replace(b"\r\n", b"").count(b"\n")  # CRLF throughout, as sent
    assert parsed["From"] == "Waso Physiotherapy <hello@waso.example>"
    assert parsed["To"].addresses[0].display_name == "Nguyễn O'Brien"
    assert parsed["To"].addresses[0].addr_spec == "n.obrien@example.com"
    assert parsed["Subject"] == "Nguyễn, how is your back?"
    assert parsed["Reply-To"] == "desk@waso.example"
    assert parsed["Date"].datetime == NOW
    assert parsed["Message-ID"].endswith("@waso.example>")
    assert parsed.get_content_type() == "multipart/alternative"
    text, html = parsed.iter_parts()
    assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert text.get_content_charset() == html.get_content_charset() == "utf-8"

    def body(part):  # the wire form has CRLF line ends; a mail client shows lines
        return part.get_content().replace("\r\n", "\n")

    assert body(text) == CONTENT.text and body(html).rstrip("\n") == CONTENT.html


def test_marketing_carries_one_click_unsubscribe():
    _, parsed = build()
    assert parsed["List-Unsubscribe"] == "<https://mail.waso.example/unsubscribe/abc.def>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    mail = Mail(**{"from": "hello@waso.example", "unsubscribe_mailto": "leave@waso.example"})
    _, with_mailto = build(mail)
    assert with_mailto["List-Unsubscribe"] == (
        "<https://mail.waso.example/unsubscribe/abc.def>, <mailto:leave@waso.example?subject=unsubscribe>"
    )


def test_transactional_has_no_unsubscribe_headers():
    _, parsed = build(unsubscribe_url=None)
    assert parsed["List-Unsubscribe"] is None and parsed["List-Unsubscribe-Post"] is None


@pytest.mark.parametrize(
    "name", ["Eve\r\nBcc: victim@example.org", "Eve\nBcc: victim@example.org", "Eve\rX: y"]
)
def test_a_line_break_in_a_name_fails_that_message_and_never_reaches_a_header(name):
    with pytest.raises(MessageError, match="cannot address a message"):
        build(to_name=name)


def test_a_hostile_address_is_refused():
    with pytest.raises(MessageError):
        build(to_email="eve@example.com\r\nBcc: victim@example.org")
