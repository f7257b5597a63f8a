"""Returned messages made in the shapes the standards give, addressed to what rebook sent.

For matching and acting. The classifier's own table test reads real
messages from real servers (tests/data/returns); these exist to aim a
return at one ledger row, one way or another.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid


def dsn(to: str, recipient: str, status: str, diagnostic: str, *,
        original: bytes = b"", action: str = "failed") -> bytes:  # fmt: skip
    """An RFC 3464 delivery status notification from MAILER-DAEMON, delivered to ``to``."""
    message = EmailMessage()
    message["From"] = "MAILER-DAEMON@mx.example.net (Mail Delivery System)"
    message["To"] = to
    message["Delivered-To"] = to
    message["Subject"] = "Undelivered Mail Returned to Sender"
    message["Message-ID"] = make_msgid(domain="mx.example.net")
    message["Auto-Submitted"] = "auto-replied"
    message.set_content("This is the mail system at host mx.example.net.\n\nI'm sorry to have to "
                        "inform you that your message could not be delivered.\n")  # fmt: skip
    report = (
        "Reporting-MTA: dns; mx.example.net\n\n"
        f"Final-Recipient: rfc822; {recipient}\nOriginal-Recipient: rfc822;{recipient}\n"
        f"Action: {action}\nStatus: {status}\n"
        f"Diagnostic-Code: smtp; {diagnostic}\n"
    )
    message.make_mixed()
    message.add_attachment(report.encode(), maintype="message", subtype="delivery-status")
    if original:
        headers = original.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n")
        message.add_attachment(headers, maintype="text", subtype="rfc822-headers")
    message.replace_header("Content-Type", "multipart/report; report-type=delivery-status; "
                           f'boundary="{message.get_boundary()}"')  # fmt: skip
    return message.as_bytes()


def arf(to: str, original: bytes, feedback_type: str = "abuse") -> bytes:
    """An RFC 5965 feedback report (a spam complaint), the original message third."""
    message = EmailMessage()
    message["From"] = "feedback@fbl.example.net"
    message["To"] = to
    message["Delivered-To"] = to
    message["Subject"] = "Complaint about a message"
    message["Message-ID"] = make_msgid(domain="fbl.example.net")
    message.set_content("This is an email abuse report for an email message received.\n")
    message.make_mixed()
    report = (
        f"Feedback-Type: {feedback_type}\nUser-Agent: ExampleFBL/1.0\nVersion: 1\n"
        "Original-Mail-From: <bounces@waso.example>\n"
    )
    message.add_attachment(report.encode(), maintype="message", subtype="feedback-report")
    message.add_attachment(original.replace(b"\r\n", b"\n"), maintype="message", subtype="rfc822")
    message.replace_header("Content-Type", "multipart/report; report-type=feedback-report; "
                           f'boundary="{message.get_boundary()}"')  # fmt: skip
    return message.as_bytes()


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
