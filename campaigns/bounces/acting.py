"""What a matched return does: one rule per kind, written once for every source.

| kind           | action                                                             |
| -------------- | ------------------------------------------------------------------ |
| hard           | the address is suppressed now (``bounced``)                        |
| soft           | counted; ``soft_limit`` of them within ``soft_window`` suppress it  |
| clinic-problem | counted per receiving domain, never suppresses (``status`` shows it)|
| complaint      | the client and the address are suppressed (``complained``)         |
| unsubscribe    | as the one-click link: the client and the address (``unsubscribed``)|

Each return is recorded in ``returns`` under (fingerprint, recipient) first;
a return already there (the same message read again, a second worker, a
provider's retry) changes nothing. A dry run reads and says, and writes
nothing. The suppression writers leave a forgotten client or address out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.engine import Connection

from campaigns.bounces.matching import Sent
from campaigns.config import Bounces
from campaigns.delivery.suppression import suppress_addresses, suppress_clients
from campaigns.durations import format_duration
from campaigns.store.tables import returns
from campaigns.store.upsert import insert_for

ACTED = ("hard", "soft", "clinic-problem", "complaint", "unsubscribe")


@dataclass(frozen=True)
class Return:
    """One returned message's word about one address, matched to what rebook sent."""

    fingerprint: str
    kind: str
    sent: Sent
    status: str = ""
    reason: str = ""
    source: str = "file"


def act(connection: Connection, found: Return, bounces: Bounces, now: datetime,
        *, dry_run: bool = False) -> str:  # fmt: skip
    """Do what ``found`` calls for; return what was (or, dry, would be) done, in words."""
    if _known(connection, found):
        return "already handled: nothing more to do"
    if found.kind == "soft":
        action = _soft(connection, found, bounces, now, dry_run)
    else:
        action = _ACTIONS[found.kind](connection, found, now, dry_run)
    if not dry_run:
        _record(connection, found, action, now)
    return action


def _known(connection: Connection, found: Return) -> bool:
    key = (returns.c.fingerprint == found.fingerprint) & (returns.c.recipient == found.sent.email)
    return connection.execute(select(exists().where(key))).scalar()


def _hard(connection, found: Return, now, dry_run) -> str:
    if not dry_run:
        suppress_addresses(connection, [(found.sent.email, "bounced", _detail(found))], now)
    return "address suppressed: it does not take mail (hard bounce)"


def _soft(connection, found: Return, bounces: Bounces, now, dry_run) -> str:
    count = (
        1
        + connection.execute(
            select(func.count(returns.c.fingerprint.distinct())).where(
                returns.c.recipient == found.sent.email,
                returns.c.kind == "soft",
                returns.c.received_at >= now - bounces.soft_window,
                returns.c.fingerprint != found.fingerprint,
            )
        ).scalar_one()
    )
    window = format_duration(bounces.soft_window)
    if count < bounces.soft_limit:
        return f"counted: soft bounce {count} of {bounces.soft_limit} within {window}"
    if not dry_run:
        detail = f"soft-bounced {count} times within {window}; last: {_detail(found)}"
        suppress_addresses(connection, [(found.sent.email, "bounced", detail)], now)
    return f"address suppressed: soft-bounced {count} times within {window}"


def _clinic_problem(connection, found: Return, now, dry_run) -> str:
    domain = found.sent.email.rpartition("@")[2]
    return (
        f"not suppressed: {domain} refused the clinic's mail, not the address "
        "(policy, reputation or authentication: see rebook status)"
    )


def _complaint(connection, found: Return, now, dry_run) -> str:
    detail = _detail(found) or "marked as spam"
    if not dry_run:
        if found.sent.client_id is not None:
            suppress_clients(connection, [(found.sent.client_id, "complained", detail)], now)
        suppress_addresses(connection, [(found.sent.email, "complained", detail)], now)
    return "client and address suppressed: a spam complaint"


def _unsubscribe(connection, found: Return, now, dry_run) -> str:
    detail = "by the client (mail to the unsubscribe address)"
    if not dry_run:
        if found.sent.client_id is not None:
            suppress_clients(connection, [(found.sent.client_id, "unsubscribed", detail)], now)
        suppress_addresses(connection, [(found.sent.email, "unsubscribed", detail)], now)
    return "unsubscribed, as by the link in the email"


_ACTIONS = {"hard": _hard, "clinic-problem": _clinic_problem, "complaint": _complaint,
            "unsubscribe": _unsubscribe}  # fmt: skip


def _detail(found: Return) -> str:
    return " ".join(part for part in (found.status, found.reason) if part)[:2000]


def _record(connection: Connection, found: Return, action: str, now: datetime) -> None:
    sent = found.sent
    values = {
        "fingerprint": found.fingerprint, "recipient": sent.email, "kind": found.kind,
        "status": found.status[:16], "reason": found.reason[:2000],
        "domain": sent.email.rpartition("@")[2][:255], "send_id": sent.send_id,
        "client_id": sent.client_id, "matched_by": sent.by, "source": found.source,
        "action": action[:300], "received_at": now,
    }  # fmt: skip
    statement = insert_for(connection.dialect.name, returns).values(**values)
    connection.execute(
        statement.on_conflict_do_nothing(index_elements=["fingerprint", "recipient"])
    )
