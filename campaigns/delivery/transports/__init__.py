"""Where messages go: an SMTP relay, or a Maildir folder. Both implement ``Transport``."""

from __future__ import annotations

from campaigns.config import Settings
from campaigns.delivery.transports.base import Outcome, Outgoing, Transport, TransportUnavailable


def make_transport(settings: Settings) -> Transport:
    if settings.mail.transport == "maildir":
        from campaigns.delivery.transports.maildir import MaildirTransport

        return MaildirTransport(settings.mail.maildir)
    from campaigns.delivery.transports.smtp import SmtpTransport

    return SmtpTransport(settings.smtp)


__all__ = ["Outcome", "Outgoing", "Transport", "TransportUnavailable", "make_transport"]
