"""What ``rebook status`` warns of in what came back: the clinic's sending needs attention.

Two signs, over the last ``DAYS`` days. Spam complaints above ``WARN_AT``
of the messages sent: Gmail and Yahoo refuse bulk senders whose complaints
reach 0.3% (2024), so a warning at a third of that leaves time to act. A
receiving domain that refused ``DOMAIN_REFUSALS`` or more messages for the
clinic's policy, reputation or authentication: the addresses are fine, the
clinic's SPF, DKIM or DMARC (or its content, or its relay) is not.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from campaigns.store.tables import returns, sends

DAYS = 7
WARN_AT = 0.001  # complaints per message sent
DOMAIN_REFUSALS = 5
SETUP = "README: 'SPF, DKIM and DMARC for the bounce domain'"


def warnings(connection: Connection, now: datetime) -> list[str]:
    since = now - timedelta(days=DAYS)
    return [*_complaints(connection, since), *_refusing_domains(connection, since)]


def _complaints(connection: Connection, since: datetime) -> list[str]:
    complaints = connection.execute(
        select(func.count()).where(returns.c.kind == "complaint", returns.c.received_at >= since)
    ).scalar_one()
    if not complaints:
        return []
    sent = connection.execute(
        select(func.count()).where(sends.c.status == "sent", sends.c.sent_at >= since)
    ).scalar_one()
    if sent and complaints / sent <= WARN_AT:
        return []
    rate = f"{complaints / sent:.2%} of {sent} message(s) sent" if sent else "no message sent"
    return [
        f"spam complaints: {complaints} in the last {DAYS} days, {rate}, over {WARN_AT:.1%}: "
        "Gmail and Yahoo refuse senders whose complaints reach 0.3%; "
        "send less often, to fewer people, or make unsubscribing easier (README: 'What comes "
        "back')"
    ]


def _refusing_domains(connection: Connection, since: datetime) -> list[str]:
    query = (
        select(returns.c.domain, func.count(), func.max(returns.c.reason))
        .where(returns.c.kind == "clinic-problem", returns.c.received_at >= since)
        .group_by(returns.c.domain)
        .having(func.count() >= DOMAIN_REFUSALS)
        .order_by(func.count().desc())
    )
    return [
        f"{domain} refused {count} message(s) in the last {DAYS} days for the clinic's policy, "
        f"reputation or authentication, e.g. {reason[:160]!r}: the clients' addresses are fine, "
        f"the clinic's mail setup is not ({SETUP})"
        for domain, count, reason in connection.execute(query)
    ]
