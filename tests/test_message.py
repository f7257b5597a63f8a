"""Messages parse back with the standard library exactly as a mail client would read them.

The composer writes MIME itself for speed; ``reference`` builds the same
message with ``email.message.EmailMessage``, and the property test checks that
both parse back to the same headers and the same text and HTML, whatever the
names, subjects and bodies hold.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from campaigns.config import Mail
from campaigns.content.message import (
    MessageComposer,
    MessageError,
    Sender,
    new_message_id,
    sender_from,
)
from campaigns.content.render import Rendered

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
CONTENT = Rendered(
    "Nguyễn, how is your back?",
    "<p>Hi Nguyễn — <a href='https://b.example'>book</a></p>",
    "Hi Nguyễn — book: https://b.example\n",
)
MAIL = Mail(
    **{
        "from": "Waso Physiotherapy <hello@waso.example>",
        "reply_to": "Front Desk <desk@waso.example>",
    }
)
UNSUBSCRIBE = "https://mail.waso.example/unsubscribe/QzAwMDAwMg.gwYGP41A78S6Cl4YqWm0bQ"


def compose(content=CONTENT, mail=MAIL, **overrides):
    sender = sender_from(mail)
    values = {"to_name": "Nguyễn O'Brien", "to_email": "n.obrien@example.com", "message_id": new_message_id(sender),
              "date": NOW, "unsubscribe_url": UNSUBSCRIBE} | overrides  # fmt: skip
    return MessageComposer(sender).compose(content, **values), values


def reference(content: Rendered, sender: Sender, values: dict) -> bytes:
    """The same message, built the standard way."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = Address(sender.name, addr_spec=sender.address)
    message["To"] = Address(" ".join(values["to_name"].split()), addr_spec=values["to_email"])
    message["Subject"] = content.subject
    message["Date"] = values["date"]
    message["Message-ID"] = values["message_id"]
    if sender.reply_to:
        message["Reply-To"] = sender.reply_to
    if values.get("unsubscribe_url"):
        message["List-Unsubscribe"] = f"<{values['unsubscribe_url']}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(content.text, subtype="plain", charset="utf-8")
    message.add_alternative(content.html, subtype="html", charset="utf-8")
    return bytes(message)


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def reading(raw: bytes) -> dict:
    """What a mail client shows: decoded headers, the parts' types and decoded text."""
    message = parse(raw)
    shown = {name: str(message[name]).strip() for name in
             ("From", "To", "Subject", "Date", "Message-ID", "Reply-To", "List-Unsubscribe", "List-Unsubscribe-Post")}  # fmt: skip
    shown["type"] = message.get_content_type()
    shown["parts"] = [(part.get_content_type(), part.get_content_charset(), part.get_content().replace("\r\n", "\n"))
                      for part in message.iter_parts()]  # fmt: skip
    return shown


def test_headers_parts_and_encoding():
    raw, _ = compose()
    assert b"\r\n" in raw and not raw.replace(b"\r\n", b"").count(b"\n")  # CRLF throughout, as sent
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    parsed = parse(raw)
    assert parsed["From"] == "Waso Physiotherapy <hello@waso.example>"
    assert parsed["To"].addresses[0].display_name == "Nguyễn O'Brien"
    assert parsed["To"].addresses[0].addr_spec == "n.obrien@example.com"
    assert parsed["Subject"] == "Nguyễn, how is your back?"
    assert parsed["Reply-To"] == "Front Desk <desk@waso.example>"
    assert parsed["Date"].datetime == NOW
    assert parsed["Message-ID"].endswith("@waso.example>")
    assert parsed.get_content_type() == "multipart/alternative"
    text, html = parsed.iter_parts()
    assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert text.get_content_charset() == html.get_content_charset() == "utf-8"
    assert text.get_content().replace("\r\n", "\n") == CONTENT.text
    assert html.get_content().replace("\r\n", "\n").rstrip("\n") == CONTENT.html


def test_the_same_as_the_standard_library_builds():
    raw, values = compose()
    assert reading(raw) == reading(reference(CONTENT, sender_from(MAIL), values))


def test_marketing_carries_one_click_unsubscribe():
    parsed = parse(compose()[0])
    assert parsed["List-Unsubscribe"].strip() == f"<{UNSUBSCRIBE}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    mail = Mail(**{"from": "hello@waso.example", "unsubscribe_mailto": "leave@waso.example"})
    with_mailto = parse(compose(mail=mail, unsubscribe_url="https://u.example/unsubscribe/T")[0])
    assert with_mailto["List-Unsubscribe"] == (
        "<https://u.example/unsubscribe/T>, <mailto:leave@waso.example?subject=unsubscribe>"
    )


def test_transactional_has_no_unsubscribe_headers():
    parsed = parse(compose(unsubscribe_url=None)[0])
    assert parsed["List-Unsubscribe"] is None and parsed["List-Unsubscribe-Post"] is None


@pytest.mark.parametrize(
    "name",
    [
        "Eve\r\nBcc: victim@example.org",
        "Eve\nBcc: victim@example.org",
        "Eve\rX: y",
        "Nul\x00Byte",
        "Esc\x1b[31m",
        "Del\x7f",
    ],
)
def test_a_line_break_in_a_name_fails_that_message_and_never_reaches_a_header(name):
    with pytest.raises(MessageError, match="cannot address a message"):
        compose(to_name=name)


@pytest.mark.parametrize(
    "address",
    ["eve@example.com\r\nBcc: victim@example.org", "eve", "a b@example.com", "<x>@example.com"],
)
def test_a_hostile_or_broken_address_is_refused(address):
    with pytest.raises(MessageError):
        compose(to_email=address)


def test_a_subject_with_a_line_break_is_refused():
    with pytest.raises(MessageError):
        compose(Rendered("Hi\r\nBcc: victim@example.org", "<p>x</p>", "x\n"))


names = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=60),
    st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=1200),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=1200),
    st.builds("=?utf-8?q?{}?=".format, st.text(st.characters(min_codepoint=33, max_codepoint=126))),
).map(str.strip)
subjects = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=200),
    st.text(
        st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=1200
    ),
    st.builds("=?utf-8?q?{}?=".format, st.text(st.characters(min_codepoint=33, max_codepoint=126))),
).map(lambda s: " ".join(s.split()) or "x")


def header_lines(raw: bytes) -> list[bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return head.split(b"\r\n")


def rfc2047_display_name(raw: bytes) -> str:
    """The To header's display name as RFC 2047 §6.2 reads it.

    A reader ignores the white space between two adjacent encoded words. The
    standard library's address parser does not (it adds a space where a long
    name was folded), so the phrase is decoded with ``email.header`` instead.
    """
    from email.header import decode_header, make_header

    unfolded = raw.split(b"\r\n\r\n")[0].decode("utf-8").replace("\r\n ", " ")
    line = next(line for line in unfolded.split("\r\n") if line.startswith("To: "))
    phrase = line.removeprefix("To: ").rpartition(" <")[0]
    if not phrase.startswith("=?"):
        return parse(raw)["To"].addresses[0].display_name
    return str(make_header(decode_header(phrase)))


bodies = st.text(
    st.characters(
        blacklist_categories=("Cs",), blacklist_characters="\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
    ),
    max_size=200,
)


@settings(max_examples=150, deadline=None)
@given(name=names, subject=subjects, text=bodies, html=bodies)
def test_every_message_reads_back_as_written(name, subject, text, html):
    """Whatever names, subjects and bodies hold, a reader sees exactly them.

    (The standard library itself fails this for some long non-ASCII names: it
    inserts a space where it folds an encoded word; so the oracle here is the
    input, not EmailMessage.)
    """
    raw, values = compose(Rendered(subject, html, text), to_name=name)
    message = parse(raw)
    [to] = message["To"].addresses
    assert to.addr_spec == values["to_email"]
    assert rfc2047_display_name(raw) == " ".join(name.split())
    assert message["Subject"] == subject
    plain, rich = message.iter_parts()
    assert plain.get_content().replace("\r\n", "\n") == "\n".join(text.splitlines()) + "\n"
    assert rich.get_content().replace("\r\n", "\n") == "\n".join(html.splitlines()) + "\n"
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert max(len(line) for line in header_lines(raw)) <= 78  # every header folds


@settings(max_examples=200, deadline=None)
@given(value=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=90))
def test_plain_ascii_subjects_encode_as_the_standard_library_does(value):
    """Except what the standard library would leave unfoldable or misread (tested below)."""
    from email.header import Header

    from campaigns.content.message import encode_header

    assume("=?" not in value and all(len(word) <= 69 for word in value.split()))
    expected = Header(value, "us-ascii", header_name="Subject").encode(
        linesep="\r\n", maxlinelen=78
    )
    assert encode_header("Subject", value) == f"Subject: {expected}\r\n".encode()


@pytest.mark.parametrize(
    "name",
    ["=?utf-8?q?Hi_Bcc:_x@y.z?=", "=?UTF-8?B?SGk=?= Jo", "Jo =?iso-8859-1?q?=E9?="],
)
def test_a_name_that_looks_like_an_encoded_word_reads_as_typed(name):
    raw, _ = compose(to_name=name, content=Rendered(name, "<p>x</p>", "x\n"))
    assert rfc2047_display_name(raw) == name
    assert parse(raw)["Subject"] == name
    assert b"Bcc" not in raw.split(b"\r\n\r\n")[0].replace(b"Bcc: x", b"")


@pytest.mark.parametrize("length", [100, 1_200, 5_000])
def test_long_names_and_subjects_fold_within_78_columns(length):
    name = ("Ngọc Ánh " * length)[:length].strip()
    word = "x" * length  # one word, nothing to fold at
    raw, _ = compose(to_name=name, content=Rendered(word, "<p>x</p>", "x\n"))
    assert max(len(line) for line in header_lines(raw)) <= 78
    assert rfc2047_display_name(raw) == name and parse(raw)["Subject"] == word


def test_an_internationalised_address_is_sent_in_utf8_headers_only_when_it_must():
    raw, _ = compose(to_email="jö@example.com")
    assert "jö@example.com".encode() in raw.split(b"\r\n\r\n")[0]  # RFC 6532: UTF-8 as it is
    message = email.message_from_string(raw.decode("utf-8"), policy=email.policy.default)
    assert message["To"].addresses[0].addr_spec == "jö@example.com"
    ascii_only, _ = compose(to_email="jo@xn--exmple-cua.com")
    assert ascii_only.split(b"\r\n\r\n")[0].isascii()
