"""Rendering and composing a batch of messages from plain, picklable jobs.

Whatever is wrong with one job (its address, its name, a template branch
only its data reaches) makes that job's reason, never an exception: one
message's trouble must not stop a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from campaigns.content.addresses import envelope_address
from campaigns.content.calendar import CalendarMaker
from campaigns.content.context import Appointment, ClientView, VisitView
from campaigns.content.message import MessageComposer, Sender, Signer
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
    appointment: Appointment | None = None  # a reminder's visit: attached as an .ics


@dataclass(frozen=True)
class Built:
    """A message ready to leave: the envelope recipient and the bytes."""

    recipient: str
    data: bytes


class Composer:
    """Jobs in, messages out (or, for a job that cannot be built, the reason)."""

    def __init__(
        self,
        renderer: CampaignRenderer,
        sender: Sender,
        signer: Signer | None = None,
        calendar: CalendarMaker | None = None,
    ) -> None:
        self.renderer = renderer
        self.articles = {article.name: article for article in renderer.articles}
        self.composer = MessageComposer(sender, signer)
        self.calendar = calendar  # appointment reminders: their jobs carry an appointment

    def __call__(self, jobs: list[Job]) -> list[Built | str]:
        return [self._one(job) for job in jobs]

    def _one(self, job: Job) -> Built | str:
        try:
            recipient = envelope_address(job.email)
            article = self.articles.get(job.article) if job.article else None
            content = self.renderer.render(
                job.client, job.last_visit, job.next_visit, job.unsubscribe_url, article
            )
            attachment = None
            if job.appointment is not None and self.calendar is not None:
                attachment = self.calendar.attachment(job.appointment, job.date)
            data = self.composer.compose(
                content, to_name=job.client.full_name, to_email=recipient,
                message_id=job.message_id, date=job.date, unsubscribe_url=job.unsubscribe_url,
                attachment=attachment,
            )  # fmt: skip
        except RebookError as error:
            return f"not sent: {error}"
        except Exception as error:  # a case nobody foresaw: still this message's alone
            return f"not sent: could not build the message: {type(error).__name__}: {error}"
        return Built(recipient, data)
