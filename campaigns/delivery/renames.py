"""A renamed campaign takes over what its old names left waiting.

``previous_names`` carries a renamed campaign's history: what was sent under
an old name counts as had. What an old name left queued or deferred would
otherwise wait for ever (nothing delivers a name the config lost), and, were
the campaign renamed back, leave at last beside what the new name sent in
the meantime: the same article twice. So before a campaign delivers, its old
names' waiting rows are skipped, which spends nothing: its own audience
queues those clients again, under its name, for what they have not had.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.engine import Engine

from campaigns.store.database import write_transaction
from campaigns.store.tables import sends

WAITING = ("queued", "deferred")  # never claimed now: safe to take over


def hand_over(engine: Engine, name: str, previous: list[str], now: datetime) -> int:
    """Skip the rows ``previous`` names left waiting; return how many."""
    if not previous:
        return 0
    statement = (
        update(sends)
        .where(sends.c.campaign.in_(previous), sends.c.status.in_(WAITING))
        .values(status="skipped", worker=None, updated_at=now,
                last_reply=f"not sent: the campaign is now called {name}, which sends it")
    )  # fmt: skip
    with write_transaction(engine) as connection:
        return connection.execute(statement).rowcount
