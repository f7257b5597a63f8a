"""Returned messages made in the shapes the standards give, addressed to what rebook sent.

For matching and acting. The classifier's own table test reads real
messages from real servers (tests/data/returns); these exist to aim a
return at one ledger row, one way or another.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid


def _report(to: str, sender: str, subject: str, kind: str, parts: list[tuple[str, bytes]],
            text: str) -> bytes:  # fmt: skip
    boundary = "=_rebook_test_report"
    head = (
        f"From: {sender}\r\nTo: {to}\r\nDelivered-To: {to}\r\nSubject: {subject}\r\n"
        f"Date: {format_datetime(datetime.now(UTC))}\r\n"
        f"Message-ID: {make_msgid(domain='mx.example.net')}\r\nAuto-Submitted: auto-replied\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type={kind};\r\n"
        f' boundary="{boundary}"\r\n\r\n'
    ).encode()
    body = f"--{boundary}\r\nContent-Type: text/plain\r\n\r\n{text}\r\n".encode()
    for content_type, content in [*parts]:
        body += f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode() + content
        body += b"\r\n"
    return head + body + f"--{boundary}--\r\n".encode()


def dsn(to: str, recipient: str, status: str, diagnostic: str, *,
        original: bytes = b"", action: str = "failed") -> bytes:  # fmt: skip
    """An RFC 3464 delivery status notification from MAILER-DAEMON, delivered to ``to``."""
    report = (
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\nDiagnostic-Code: smtp; {diagnostic}\r\n"
    ).encode()
    parts = [("message/delivery-status", report)]
    if original:
        parts.append(("text/rfc822-headers", original.split(b"\r\n\r\n", 1)[0] + b"\r\n"))
    text = "This is the mail system at host mx.example.net. Your message could not be delivered."
    return _report(to, "MAILER-DAEMON@mx.example.net (Mail Delivery System)",
                   "Undelivered Mail Returned to Sender", "delivery-status", parts, text)  # fmt: skip


def arf(to: str, original: bytes, feedback_type: str = "abuse") -> bytes:
    """An RFC 5965 feedback report (a spam complaint), the original message third."""
    report = (
        f"Feedback-Type: {feedback_type}\r\nUser-Agent: ExampleFBL/1.0\r\nVersion: 1\r\n"
        "Original-Mail-From: <bounces@waso.example>\r\n"
    ).encode()
    parts = [("message/feedback-report", report), ("message/rfc822", original)]
    return _report(to, "feedback@fbl.example.net", "Complaint about a message", "feedback-report",
                   parts, "This is an email abuse report for an email message received.")  # fmt: skip


def mail(to: str, sender: str, subject: str, body: str = "", **headers: str) -> bytes:
    """A plain message: a mailed unsubscribe, an auto-reply, a person's answer."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Delivered-To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="example.org")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body or subject)
    return message.as_bytes()
