"""The classifier's answer: what kind of message came back, and about whom.

Kept apart from ``classify`` so the readers (dsn, arf, nonstandard) build
``Recipient`` values without importing the module that imports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal[
    "hard", "soft", "clinic-problem", "complaint", "unsubscribe", "auto-reply", "not-a-bounce"
]

# the message's kind is its most serious recipient's: a dead address is acted on before a
# setup problem, which is worth more than a mailbox that may empty itself
SEVERITY: dict[str, int] = {"hard": 3, "clinic-problem": 2, "soft": 1, "not-a-bounce": 0}
REASON_LIMIT = 300  # characters of the remote server's words kept per recipient


@dataclass(frozen=True)
class Recipient:
    """One recipient a report is about: who, how serious, and the remote server's words."""

    address: str  # lower-cased; "" when the report names none
    kind: Kind  # hard, soft or clinic-problem; not-a-bounce when delivered; complaint (ARF)
    status: str  # the enhanced status code ("5.1.1"), "" when there is none
    reason: str  # what the remote server said, one line, at most REASON_LIMIT characters
    action: str  # the DSN Action (failed, delayed, delivered, relayed, expanded); "" otherwise


@dataclass(frozen=True)
class Returned:
    """A classified returned message: its kind, its recipients and what it can be matched by."""

    kind: Kind  # for a bounce, the most serious of its recipients' (hard > clinic-problem > soft)
    recipients: tuple[Recipient, ...]  # failed or delayed recipients; the complainer of an ARF
    message_ids: tuple[str, ...]  # the ORIGINAL message's Message-ID(s), with angle brackets
    envelope_to: tuple[str, ...]  # Delivered-To, X-Original-To, then To (the local part as written)
    sender: str  # the From address, lower-cased ("" if none)
    feedback_type: str  # ARF Feedback-Type, lower-cased; "" otherwise
    note: str  # why it got its kind, in words for an operator


def most_serious(recipients: tuple[Recipient, ...]) -> Kind:
    """The kind of a bounce: its most serious recipient's, or not-a-bounce when none failed."""
    if not recipients:
        return "not-a-bounce"
    return max(recipients, key=lambda r: SEVERITY.get(r.kind, 0)).kind
