"""Writing messages into a Maildir instead of sending them: for trying rebook out, and tests."""

from __future__ import annotations

import mailbox
from pathlib import Path

from campaigns.delivery.transports.base import Outcome, Outgoing, TransportUnavailable


class MaildirTransport:
    """Each message becomes one file in ``new/``, written to ``tmp/`` and renamed (atomic)."""

    slots = 1

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._box: mailbox.Maildir | None = None

    async def open(self) -> None:
        try:
            # Maildir(create=True) makes tmp/, new/ and cur/ only when it makes the folder
            # itself: an empty folder made by the owner (or a mount point) would stay unusable.
            for part in ("tmp", "new", "cur"):
                (self.folder / part).mkdir(parents=True, exist_ok=True)
            self._box = mailbox.Maildir(self.folder, create=True)
        except OSError as error:
            raise TransportUnavailable(f"mail.maildir: cannot use {self.folder}: {error}") from None

    def share(self, fraction: float) -> None:
        """No rate to share: a folder takes what it is given."""

    async def send(self, message: Outgoing, slot: int) -> Outcome:
        assert self._box is not None, "open() first"
        try:
            key = self._box.add(message.data)
        except OSError as error:  # a full disk, a folder made read-only: never the client's
            reason = error.strerror or str(error)
            return Outcome("deferred", f"maildir: cannot write to {self.folder}: {reason}",
                           ours=True)  # fmt: skip
        return Outcome("sent", f"maildir: {key}")

    async def close(self) -> None:
        self._box = None
