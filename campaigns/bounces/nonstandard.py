"""Bounces that are not RFC 3464 DSNs: qmail, old Exim, Yahoo, old Microsoft, Lotus and others.

flufl.bounce (GNU Mailman's detectors) finds the failed addresses in the many
formats these servers write; it does not say why. The why is read from the
words around each address, then from the whole text, by the same rules as a DSN's.
"""

from __future__ import annotations

import logging
import re
from email.message import Message

from flufl.bounce import all_failures

from campaigns.bounces.kinds import Recipient
from campaigns.bounces.parts import (
    RETURNED_TYPES,
    addresses,
    body_text,
    content_type,
    header,
    headers,
    leaves,
    returned_headers,
)
from campaigns.bounces.reasons import (
    enhanced_code,
    judge,
    phrases,
    reason,
    words_about,
    words_kind,
)

# flufl.bounce logs every detector it tries at INFO, and a detector's exception with its traceback
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)

MAIL_SYSTEMS = re.compile(
    r"^(?:mailer-daemon|mailer_daemon|mailerdaemon|postmaster|mail-daemon|maildaemon|"
    r"mdaemon|bounce|bounces|nobody|noreply-dmarc-support)(?:[+@]|$)",
    re.IGNORECASE,
)
MAIL_SYSTEM_NAMES = re.compile(r"mail delivery (?:subsystem|system)|mailer.daemon", re.IGNORECASE)
BOUNCE_SUBJECT = phrases(
    r"undeliverable", r"undelivered", r"undeliverd", r"delivery status notification",
    r"delivery (?:has )?fail", r"failure notice", r"returned mail", r"mail delivery fail",
    r"delivery notification", r"non[- ]?deliver", r"could not (?:be )?deliver",
    r"returned to sender", r"delivery problem", r"delivery error", r"mail system error",
    r"message not delivered", r"not delivered", r"delivery (?:delayed|delay|warning)",
    r"delayed mail", r"warning: could not send", r"mail could not be delivered",
    r"unzustellbar", r"nicht zustellbar", r"non remis", r"non distribu", r"onbestelbaar",
    r"no se puede entregar", r"no entregado", r"impossibile recapitare", r"non recapitat",
    r"n[ãa]o (?:foi )?entregue", r"kan inte levereras", r"ei voitu toimittaa",
    r"nie mo[żz]na dostarczy", r"не доставлено", r"配信不能", r"未送達", r"退信",
)  # fmt: skip
# "user@example.net: 550 5.1.1 …" or "<user@example.net>... User unknown": a failed
# recipient on its own line, as OpenSMTPD, sendmail and many filters write it
_FAILED_LINE = re.compile(
    r"^[ \t]*<?([\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+)>?(?::|\.\.\.)[ \t]*\S",
    re.MULTILINE,
)


def looks_like_bounce(msg: Message) -> str:
    """What makes ``msg`` look like a mail system's failure report, "" when nothing does."""
    if "X-Failed-Recipients" in msg:
        return "X-Failed-Recipients"
    if "X-MS-Exchange-Message-Is-Ndr" in msg:
        return "X-MS-Exchange-Message-Is-Ndr"
    subject = header(msg, "Subject")
    if BOUNCE_SUBJECT.search(subject):
        return f"Subject: {subject[:60]}"
    sender = header(msg, "From")
    found = addresses([sender])
    if (found and MAIL_SYSTEMS.match(found[0])) or MAIL_SYSTEM_NAMES.search(sender):
        return f"From: {found[0] if found else sender[:60]}"
    return ""


def failed(msg: Message) -> tuple[set[str], set[str]]:
    """The addresses flufl.bounce and X-Failed-Recipients name: (temporary, permanent)."""
    permanent = set(addresses(headers(msg, "X-Failed-Recipients")))
    try:
        temporary, found = all_failures(msg)
    except Exception:  # a detector tripped on a malformed message: keep what the headers say
        return set(), permanent
    for name in found:
        permanent.update(addresses([_decode(name)]))
    temporary_ = set(addresses([_decode(name) for name in temporary])) - permanent
    if not permanent and not temporary_:
        text = readable_text(msg)
        permanent = {
            who.lower() for who in _FAILED_LINE.findall(text)
            if _says_why(words_about(text, who.lower()))
        }  # fmt: skip
    # flufl takes some Message-IDs for addresses, and sometimes the original's own sender
    ids = {i.strip("<>").lower() for i in _message_ids(msg)} | set(_original_senders(msg))
    # nor is the bounce's own recipient (the clinic's address, or its VERP address)
    ids |= set(addresses(headers(msg, "To") + headers(msg, "Delivered-To")))
    return temporary_ - ids, permanent - ids


_REPLY = re.compile(r"(?<![\w.])[45]\d\d(?![\w.])")


def _says_why(words: str) -> bool:
    return bool(enhanced_code(words) or words_kind(words) or _REPLY.search(words))


def _original_senders(msg: Message) -> list[str]:
    """Who sent the returned original (flufl sometimes names them), unless they also received it."""
    found: list[str] = []
    for part in leaves(msg):
        if content_type(part) in RETURNED_TYPES and (original := returned_headers(part)):
            to = set(addresses(headers(original, "To") + headers(original, "Cc")))
            found += [who for who in addresses(headers(original, "From")) if who not in to]
    return found


def _message_ids(msg: Message) -> list[str]:
    found = headers(msg, "Message-ID")
    for part in leaves(msg):
        if content_type(part) in RETURNED_TYPES and (original := returned_headers(part)):
            found += headers(original, "Message-ID")
    found += re.findall(r"(?im)^[ \t>]*Message-ID[ \t]*:[ \t]*<?([^<>\s]+)", readable_text(msg))
    return found


def _decode(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def readable_text(msg: Message) -> str:
    """The text a person would read in the bounce: its text parts, returned messages left out."""
    texts = []
    for part in leaves(msg):
        kind = content_type(part)
        broken = kind.startswith("multipart/")  # a boundary that never comes: read it as text
        if (
            kind in ("text/plain", "text/html")
            or broken
            or (kind.startswith("text/") and not texts)
        ):
            text = body_text(part)
            texts.append(re.sub(r"<[^>]{0,500}>", " ", text) if kind == "text/html" else text)
    return "\n".join(texts)


def recipients(msg: Message) -> tuple[list[Recipient], str]:
    """Each failed recipient of a non-standard bounce, and a note of how they were found."""
    temporary, permanent = failed(msg)
    text = readable_text(msg)
    overall = _summary(text)
    found = []
    for who in sorted(permanent) + sorted(temporary):
        words = words_about(text, who)
        if not _says_why(words):  # the address alone in a list: the reason is said once for all
            words = overall or words
        status = enhanced_code(words) or enhanced_code(overall)
        kind = judge(status, words, temporary=who in temporary)
        found.append(Recipient(who, kind, status, reason(_server_words(words), status), ""))
    if found:
        return found, f"{len(found)} recipient{'s' * (len(found) > 1)} found by flufl.bounce"
    if overall:  # a failure report whose address no detector finds: VERP still matches it
        status = enhanced_code(overall)
        kind = judge(status, overall)
        return [Recipient("", kind, status, reason(_server_words(overall), status), "")], (
            "no address found in it"
        )
    return [], ""


def _summary(text: str) -> str:
    """The lines of a bounce's text that carry a status code or an SMTP reply, joined."""
    lines = [
        line
        for line in text.splitlines()[:400]
        if enhanced_code(line) or re.search(r"\b[45]\d\d\b", line)
    ]
    if not lines:
        lines = [line for line in text.splitlines()[:60] if line.strip()]
    return " ".join(lines[:6])


def _server_words(words: str) -> str:
    """Words from the first SMTP reply code on, the server's own, when there is one."""
    match = re.search(r"\b[45]\d\d[ -]", words)
    return words[match.start() :] if match else words
