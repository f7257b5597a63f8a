"""Reading a returned message safely: parse at most a bounded prefix, walk its parts, decode text.

Every helper here takes whatever a mailbox holds (malformed MIME, NUL bytes,
8-bit headers, a 20 MB attachment) and answers something, never raises: the
classifier builds on them and must never stop a run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.header import Header, decode_header, make_header
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.policy import compat32
from email.utils import getaddresses

# Everything the classifier reads (the headers, a DSN's report, the returned headers, the
# words of a non-standard bounce) sits in a message's first kilobytes; what follows is the
# returned body and its attachments. Parsing only the first MiB keeps a 20 MB message as
# cheap as a 1 MB one (Python's parser takes ~2 s for 20 MB of short lines).
READ_AT_MOST = 1 << 20
MAX_PARTS = 200  # parts looked at: a real DSN has 2-4, a reply with attachments a dozen
TEXT_AT_MOST = 64 * 1024  # characters of one text part looked at for words

# the parts that hold a returned message or its headers (RFC 3462, RFC 6533, and the
# message/rfc822-headers some servers write by mistake)
RETURNED_TYPES = frozenset({
    "message/rfc822", "message/global", "text/rfc822-headers",
    "message/rfc822-headers", "message/global-headers", "text/rfc822-header",
})  # fmt: skip
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")
_QUOTED_ID = re.compile(r"(?im)^[ \t>]*Message-ID[ \t]*:[ \t]*(<[^<>\s]{1,250}>)")


def parse(raw: bytes) -> Message:
    """The message of ``raw``'s first READ_AT_MOST bytes, cut at a line's end."""
    if len(raw) > READ_AT_MOST:
        cut = raw.rfind(b"\n", 0, READ_AT_MOST)
        raw = raw[: cut + 1 if cut > 0 else READ_AT_MOST]
    return BytesParser(policy=compat32).parsebytes(raw)


def text(value: object) -> str:
    """A header's value as one line of text: RFC 2047 words decoded, 8-bit bytes made readable."""
    if value is None:
        return ""
    try:
        if isinstance(value, Header):
            decoded = str(make_header(decode_header(value)))
        else:
            decoded = str(make_header(decode_header(str(value))))
    except Exception:  # a broken encoded word, an unknown charset: keep the raw text
        decoded = str(value)
    return printable(decoded)


def printable(value: str) -> str:
    """``value`` with surrogates, control characters and runs of whitespace made plain."""
    value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return " ".join(value.replace("\x00", " ").split())


def header(msg: Message, name: str) -> str:
    """The first ``name`` header of ``msg`` as text, "" when there is none."""
    try:
        return text(msg.get(name))
    except Exception:
        return ""


def headers(msg: Message, name: str) -> list[str]:
    """Every ``name`` header of ``msg``, in order, as text."""
    try:
        return [text(value) for value in msg.get_all(name) or ()]
    except Exception:
        return []


def addresses(values: list[str], *, keep_local_case: bool = False) -> list[str]:
    """The addresses named in header values, lower-cased, each once, in order.

    ``keep_local_case``: only the domain is lower-cased. A local part may carry a
    token whose case matters (``unsubscribe+TOKEN@…``, the one-click link's).
    """
    found: dict[str, None] = {}
    try:
        pairs = getaddresses(values)
    except Exception:
        return []
    for _, address in pairs:
        address = address.strip().strip("<>")
        local, at, domain = address.rpartition("@")
        address = f"{local if keep_local_case else local.lower()}{at}{domain.lower()}"
        if "@" in address and " " not in address:
            found.setdefault(address)
    return list(found)


def content_type(part: Message) -> str:
    """``part``'s content type, lower-cased; text/plain when it is missing or unreadable."""
    try:
        return part.get_content_type()
    except Exception:
        return "text/plain"


def param(part: Message, name: str) -> str:
    """A parameter of ``part``'s Content-Type, lower-cased, "" when absent."""
    try:
        value = part.get_param(name)
    except Exception:
        return ""
    if isinstance(value, tuple):  # RFC 2231 (charset, language, value)
        value = value[2]
    return str(value or "").strip().lower()


def leaves(msg: Message) -> Iterator[Message]:
    """The parts of ``msg`` that are not multiparts, in order, never entering a returned message.

    A message/rfc822 part is yielded as one leaf: what is inside is the original
    message (or another bounce), never the returned message's own report.
    """
    stack = [msg]
    seen = 0
    while stack and seen < MAX_PARTS:
        part = stack.pop()
        seen += 1
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list) and not content_type(part).startswith("message/"):
            stack.extend(reversed([p for p in payload if isinstance(p, Message)]))
        else:
            yield part


def body_text(part: Message) -> str:
    """The decoded text of a leaf part, at most TEXT_AT_MOST characters, "" when unreadable."""
    try:
        payload = part.get_payload(decode=True)
        if payload is None:  # a message/* part parsed into sub-messages
            payload = part.as_bytes() if part.is_multipart() else b""
        charset = part.get_content_charset() or "utf-8"
        try:
            decoded = payload[: TEXT_AT_MOST * 4].decode(charset, "replace")
        except LookupError:
            decoded = payload[: TEXT_AT_MOST * 4].decode("utf-8", "replace")
        return decoded[:TEXT_AT_MOST].replace("\x00", " ")
    except Exception:
        return ""


def returned_headers(part: Message) -> Message | None:
    """The headers of the original message a returned part holds, None when it holds none."""
    try:
        payload = part.get_payload()
        if isinstance(payload, list):
            inner = next((p for p in payload if isinstance(p, Message)), None)
            if inner is not None and len(inner):
                return inner
        # text/rfc822-headers, or a message/rfc822 that was base64- or QP-encoded
        return HeaderParser(policy=compat32).parsestr(body_text(part), headersonly=True)
    except Exception:
        return None


def message_ids_of(original: Message) -> list[str]:
    """The Message-ID of a returned original, with its angle brackets, as written."""
    return _MESSAGE_ID.findall(header(original, "Message-ID"))[:1]


def quoted_message_ids(body: str) -> list[str]:
    """Message-IDs quoted as header lines in a non-standard bounce's text."""
    return _QUOTED_ID.findall(body)


def unique(values: list[str]) -> tuple[str, ...]:
    """``values`` each once, in their first order."""
    return tuple(dict.fromkeys(v for v in values if v))
