"""Rendering and composing a batch of messages from plain, picklable jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from campaigns.content.context import ClientView, VisitView
from campaigns.content.message import MessageComposer, Sender
from campaigns.content.render import CampaignRenderer
from campaigns.errors import RebookError


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

    def __init__(self, renderer: CampaignRenderer, sender: Sender) -> None:
        self.renderer = renderer
        self.articles = {article.name: article for article in renderer.articles}
        self.composer = MessageComposer(sender)

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
