"""Rendering and composing messages, in this process or in a helper process.

A campaign's event loop has two jobs: talking SMTP and rendering messages.
On a box with a second core, ``ComposerProcess`` renders the next batch in
another process while the loop keeps sending the current one; small runs
render in-process, where starting a process would cost more than it saves.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from campaigns.config import Settings
from campaigns.context import ClientView, VisitView
from campaigns.errors import RebookError
from campaigns.message import MessageComposer, sender_from
from campaigns.render import CampaignRenderer


@dataclass(frozen=True)
class Job:
    """Everything needed to build one message; small and picklable."""

    row_id: int
    client: ClientView
    last_visit: VisitView | None
    next_visit: VisitView | None
    unsubscribe_url: str | None
    article: str | None  # the article's name, for a series
    email: str
    message_id: str
    date: datetime


class Composer:
    """Jobs in, message bytes out (or, for a job that cannot be built, the reason)."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.renderer = CampaignRenderer(settings, name)
        self.articles = {article.name: article for article in self.renderer.articles}
        self.composer = MessageComposer(sender_from(settings.mail))

    def __call__(self, jobs: list[Job]) -> list[bytes | str]:
        return [self._one(job) for job in jobs]

    def _one(self, job: Job) -> bytes | str:
        try:
            article = self.articles.get(job.article) if job.article else None
            content = self.renderer.render(
                job.client, job.last_visit, job.next_visit, job.unsubscribe_url, article
            )
            return self.composer.compose(
                content, to_name=job.client.full_name, to_email=job.email,
                message_id=job.message_id, date=job.date, unsubscribe_url=job.unsubscribe_url,
            )  # fmt: skip
        except RebookError as error:
            return f"not sent: {error}"

    async def compose(self, jobs: list[Job]) -> list[bytes | str]:
        return self(jobs)

    def close(self) -> None:
        pass


_in_child: Composer | None = None


def _start_child(settings: Settings, name: str) -> None:
    global _in_child
    _in_child = Composer(settings, name)


def _ready() -> None:
    pass


def _compose_in_child(jobs: list[Job]) -> list[bytes | str]:
    assert _in_child is not None
    return _in_child(jobs)


class ComposerProcess:
    """A ``Composer`` in a separate process (spawned: nothing of the parent's state is shared)."""

    def __init__(self, settings: Settings, name: str) -> None:
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_child,
            initargs=(settings, name),
        )
        self._pool.submit(_ready)  # the pool starts its process on the first submit: now

    async def compose(self, jobs: list[Job]) -> list[bytes | str]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, _compose_in_child, jobs)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
