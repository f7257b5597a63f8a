"""The one thing delivery needs from a transport: send these bytes to this address."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from campaigns.errors import RebookError


class TransportUnavailable(RebookError):
    """The transport cannot be used at all (no SMTP connection could be made)."""


@dataclass(frozen=True)
class Outgoing:
    """One composed message and its envelope."""

    row_id: int
    sender: str
    recipient: str
    data: bytes


@dataclass(frozen=True)
class Outcome:
    """What the other side said about one message."""

    status: Literal["sent", "deferred", "failed", "error"]  # error: rebook's own, see ledger
    reply: str
    hard_bounce: bool = False  # the recipient address itself was refused (550/551/553)
    # The trouble is rebook's or its relay's (a full disk, the relay down, a dropped
    # connection), never the recipient's: retried, it never spends the ledger's key.
    ours: bool = False


class Transport(Protocol):
    """``slots`` messages may be in flight at once; slot ``n`` is used by one task at a time."""

    slots: int

    async def open(self) -> None:
        """Get ready; raise TransportUnavailable if nothing can be sent at all."""

    def share(self, fraction: float) -> None:
        """Send at ``fraction`` of the configured rate: other workers send too."""

    async def send(self, message: Outgoing, slot: int) -> Outcome: ...

    async def close(self) -> None: ...
