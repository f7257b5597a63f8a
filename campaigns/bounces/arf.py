"""RFC 5965 feedback reports (ARF): a recipient's mail provider passing on a complaint.

multipart/report; report-type=feedback-report: a human-readable part, a
message/feedback-report part (Feedback-Type, Original-Rcpt-To, …) and the
original message or its headers as the third part.
"""

from __future__ import annotations

from email.message import Message

from campaigns.bounces.dsn import address, blocks
from campaigns.bounces.kinds import Kind, Recipient
from campaigns.bounces.parts import (
    RETURNED_TYPES,
    addresses,
    content_type,
    header,
    returned_headers,
)

REPORT_TYPE = "message/feedback-report"

# What each Feedback-Type (RFC 5965, RFC 6591, RFC 6650, RFC 6430) means for rebook.
FEEDBACK: dict[str, tuple[Kind, str]] = {
    "abuse": ("complaint", "the recipient reported the message as spam"),
    "opt-out": ("complaint", "the recipient asked to receive no more of it"),
    "opt-out-list": ("complaint", "the recipient asked to leave the list"),
    "fraud": ("complaint", "the recipient reported it as fraud or phishing"),
    "virus": ("clinic-problem", "the provider found a virus in the clinic's message"),
    "auth-failure": ("clinic-problem", "the message failed SPF, DKIM or DMARC"),
    "dkim": ("clinic-problem", "the message failed DKIM"),
    "not-spam": ("not-a-bounce", "the recipient said the message is not spam"),
}
# Feedback loops exist to pass on complaints: a report of an unknown type is one
OTHER: tuple[Kind, str] = ("complaint", "a feedback report of another type")


def feedback(parts: list[Message]) -> tuple[str, Kind, str, tuple[Recipient, ...]] | None:
    """Feedback-Type, kind, explanation and complainer of an ARF report; None for others."""
    report = next((p for p in parts if content_type(p) == REPORT_TYPE), None)
    if report is None:
        return None
    fields: dict[str, str] = {}
    for block in blocks(report):
        for name, value in block.items():
            fields.setdefault(name, value)
    kind_ = fields.get("feedback-type", "").split("\n", 1)[0].strip().lower()
    kind, why = FEEDBACK.get(kind_, OTHER)
    who = [address(value) for value in fields.get("original-rcpt-to", "").split("\n")]
    who = list(dict.fromkeys(w for w in who if w))
    if not who:
        original = next(
            (returned_headers(p) for p in parts if content_type(p) in RETURNED_TYPES), None
        )
        to = addresses([header(original, "To")]) if original is not None else []
        who = to[:1] if len(to) == 1 else []
    named = tuple(Recipient(w, kind, "", why, "") for w in who) if kind == "complaint" else ()
    return kind_, kind, why, named


def microsoft_jmrp(parts: list[Message]) -> Recipient | None:
    """A complaint from Microsoft's Junk Mail Reporting Program (not ARF): the original
    message attached, its recipient in ``X-HmXmrOriginalRecipient``."""
    for part in parts:
        if content_type(part) == "message/rfc822":
            original = returned_headers(part)
            if original is not None and "X-HmXmrOriginalRecipient" in original:
                who = addresses([header(original, "X-HmXmrOriginalRecipient")])
                return Recipient(who[0] if who else "", "complaint", "", JMRP, "")
    return None


JMRP = "the recipient reported the message as junk (Microsoft JMRP)"
