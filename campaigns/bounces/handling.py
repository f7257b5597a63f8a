"""A returned message, from any source: classified, matched, acted on, and said.

One ``ReturnHandler`` serves a batch (a mailbox read, the files of ``rebook
bounces FILE…``, the one message a mail server pipes in): it reads the
secret once and handles each message in a transaction of its own, so a
crash midway loses nothing and repeats nothing (``acting`` knows what it
already did). A message that is not rebook's, or that calls for nothing
(an auto-reply, a person's reply), is classified and said, never acted on,
and its mailbox leaves it exactly as it was.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Connection, Engine

from campaigns.bounces.acting import ACTED, Return, act
from campaigns.bounces.classify import Recipient, Returned, classify
from campaigns.bounces.matching import Matcher, Sent
from campaigns.config import Settings
from campaigns.config.bounces import unsubscribe_address
from campaigns.errors import ConfigError
from campaigns.store.database import write_transaction
from campaigns.store.secrets import web_secret

_SERIOUS = {"hard": 3, "clinic-problem": 2, "soft": 1}


@dataclass
class Handled:
    """What one returned message was, and what became of it."""

    source: str
    kind: str
    recipients: list[dict] = field(default_factory=list)  # address, status, reason
    matched: str | bool = False  # how it was matched (verp, message-id, …), or False
    actions: list[str] = field(default_factory=list)
    note: str = ""
    key: str | None = None  # the message in its mailbox, when it came from one

    @property
    def ours(self) -> bool:
        """Matched and acted on: its mailbox moves it to the processed folder."""
        return self.matched is not False and self.kind in ACTED

    def as_json(self) -> dict:
        return {"source": self.source, "key": self.key, "kind": self.kind,
                "recipients": self.recipients, "matched": self.matched,
                "action": "; ".join(self.actions) or "nothing", "note": self.note}  # fmt: skip


class ReturnHandler:
    def __init__(self, engine: Engine, settings: Settings, now: datetime, *,
                 source: str = "file", dry_run: bool = False) -> None:  # fmt: skip
        if settings.bounces is None:
            raise ConfigError(
                "there is no [bounces] section: set [bounces] address (README: 'What comes "
                "back') so rebook knows its bounces, then run rebook bounces again"
            )
        self.engine, self.settings, self.now = engine, settings, now
        self.source, self.dry_run = source, dry_run
        with engine.connect() as connection:
            self.secret = web_secret(connection, settings.web.secret)
        plain = unsubscribe_address(settings.mail.unsubscribe_mailto, settings.bounces)
        self.unsubscribe_to = frozenset([plain]) if plain else frozenset()

    def __call__(self, raw: bytes, key: str | None = None) -> Handled:
        returned = classify(raw, unsubscribe_to=self.unsubscribe_to)
        handled = Handled(self.source, returned.kind, _said(returned), note=returned.note, key=key)
        if returned.kind not in ACTED:
            return handled
        fingerprint = hashlib.sha256(raw).hexdigest()
        if self.dry_run:
            with self.engine.connect() as connection:
                self._handle(connection, returned, fingerprint, handled)
        else:
            with write_transaction(self.engine) as connection:
                self._handle(connection, returned, fingerprint, handled)
        return handled

    def _handle(self, connection: Connection, returned: Returned, fingerprint: str,
                handled: Handled) -> None:  # fmt: skip
        matcher = Matcher(connection, self.settings, self.secret, self.now)
        for sent, kind, about in self._matches(matcher, returned):
            found = Return(fingerprint, kind, sent, about.status if about else "",
                           about.reason if about else returned.note, self.source)  # fmt: skip
            handled.matched = handled.matched or sent.by
            action = act(connection, found, self.settings.bounces, self.now,
                         dry_run=self.dry_run)  # fmt: skip
            handled.actions.append(f"{sent.email}: {action}")

    def _matches(self, matcher: Matcher, returned: Returned):
        """(what it is about, the kind to act on, the recipient report it rests on)."""
        if returned.kind == "unsubscribe":
            return [(sent, "unsubscribe", None) for sent in matcher.client(
                returned.envelope_to, returned.sender)]  # fmt: skip
        failed = [r for r in returned.recipients if r.kind in _SERIOUS]
        if returned.kind == "complaint":
            address = returned.recipients[0].address if returned.recipients else None
            sent = matcher.message(returned.envelope_to, returned.message_ids, address)
            return [(sent, "complaint", None)] if sent else []
        exact = matcher.message(returned.envelope_to, returned.message_ids, None)
        if exact is not None:  # rebook's messages have one recipient: the worst report speaks
            about = _about(exact, failed)
            return [(exact, about.kind, about)] if about else []
        found = []
        for recipient in failed:
            sent = matcher.message((), (), recipient.address)
            if sent is not None:
                found.append((sent, recipient.kind, recipient))
        return found


def _about(sent: Sent, failed: list[Recipient]) -> Recipient | None:
    """The report on ``sent``'s address, else the most serious (a forward failed further on)."""
    same = [r for r in failed if r.address == sent.email]
    ranked = sorted(same or failed, key=lambda r: _SERIOUS[r.kind], reverse=True)
    return ranked[0] if ranked else None


def _said(returned: Returned) -> list[dict]:
    return [{"address": r.address, "status": r.status, "reason": r.reason, "kind": r.kind}
            for r in returned.recipients]  # fmt: skip
