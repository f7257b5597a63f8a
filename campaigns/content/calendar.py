"""An appointment reminder's calendar entry: the ``appointment.ics`` attached to it.

What the entry says, and why:

* ``METHOD:PUBLISH`` with the clinic as ``ORGANIZER`` and no ``ATTENDEE``.
  ``METHOD:REQUEST`` would make the reminder an invitation: mail clients
  show Accept / Decline buttons and send the answers to the clinic's From
  address, where nobody reads them as cancellations. ``PUBLISH`` (RFC 5546
  §3.2.1) is "here is an event for your calendar", which is what a reminder
  is: Gmail, Outlook and Apple Mail offer "add to calendar" and no RSVP.
  RFC 5546 asks a PUBLISH for an ORGANIZER, so the clinic is named (with
  its From address); with no ATTENDEE there is nobody to ask for a reply.
* ``UID`` is ``visit-<visit id>@<From domain>``: the same for every reminder
  of one visit, from whichever campaign, so a calendar keeps one entry.
* ``SEQUENCE`` counts seconds from 2020 to the visit's last change (the row's
  ``updated_at``, which an import moves only when a value of the visit
  changed; it fits iCalendar's 32-bit integer until 2088): a moved
  appointment reminded again carries a higher SEQUENCE and replaces the
  entry instead of adding a second one. ``DTSTAMP`` is the message's Date.
* Times are UTC (``…Z``): always correct, and no VTIMEZONE to get wrong.
  The exports carry a visit's start only; it ends ``[clinic]
  appointment_length`` later (one hour unless the clinic says otherwise).

Speed: serialising a whole calendar with ``icalendar`` costs 0.3 to 0.9 ms, more
than the rest of the message. The fixed part (calendar, organizer, location)
is serialised once per run by ``icalendar``; per message only the changing
lines are, by ``icalendar``'s own value types, and those that repeat across a
run (appointment times, service and therapist) are remembered.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from icalendar import Calendar, Event, vCalAddress, vDDDTypes, vText
from icalendar.parser import Contentline, Parameters

from campaigns.config import Clinic
from campaigns.content.context import Appointment, ServiceNames
from campaigns.content.message import Attachment, Sender

CONTENT_TYPE = 'text/calendar; charset="utf-8"; method=PUBLISH'
FILENAME = "appointment.ics"
SEQUENCE_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_REMEMBERED = 4096  # distinct appointment times, services and therapists kept per run
_END = b"END:VEVENT\r\n"


def sequence_of(appointment: Appointment) -> int:
    return max(0, int((appointment.revised_at - SEQUENCE_EPOCH).total_seconds()))


def uid_of(appointment: Appointment, sender: Sender) -> str:
    return f"visit-{appointment.visit_id}@{sender.domain}"


def _line(name: str, value) -> bytes:
    """One property as icalendar writes it: value escaped, folded at 75 octets, CRLF."""
    return Contentline.from_parts(name, Parameters(), value).to_ical() + b"\r\n"


class CalendarMaker:
    """The ``.ics`` of each appointment reminder of a run; the fixed part is built once."""

    def __init__(
        self, clinic: Clinic, sender: Sender, services: Mapping[str, str] | None = None
    ) -> None:
        self.clinic, self.sender = clinic, sender
        self.services = ServiceNames(services or {})  # [services]: how a slug reads
        self.length: timedelta = clinic.appointment_length
        calendar = Calendar()
        calendar.add("prodid", "-//rebook//appointment reminders//EN")
        calendar.add("version", "2.0")
        calendar.add("method", "PUBLISH")
        event = Event()
        organizer = vCalAddress(f"mailto:{sender.address}")
        organizer.params["cn"] = vText(sender.name or clinic.name)
        event.add("organizer", organizer)
        event.add("location", clinic.address)
        event.add("url", clinic.booking_url)
        event.add("status", "CONFIRMED")
        event.add("transp", "OPAQUE")
        calendar.add_component(event)
        whole = calendar.to_ical()
        cut = whole.rindex(_END)
        self._head, self._tail = whole[:cut], whole[cut:]
        self._stamp = lru_cache(maxsize=8)(self._stamp_line)
        self._times = lru_cache(maxsize=_REMEMBERED)(self._time_lines)
        self._words = lru_cache(maxsize=_REMEMBERED)(self._word_lines)

    def ics(self, appointment: Appointment, stamp: datetime) -> bytes:
        """The calendar for ``appointment``, stamped ``stamp`` (the message's Date)."""
        return b"".join(
            (
                self._head,
                _line("UID", vText(uid_of(appointment, self.sender))),
                self._stamp(stamp),
                b"SEQUENCE:%d\r\n" % sequence_of(appointment),  # an integer needs no escaping
                self._times(appointment.starts_at),
                self._words(appointment.service, appointment.therapist),
                self._tail,
            )
        )

    def attachment(self, appointment: Appointment, stamp: datetime) -> Attachment:
        return Attachment(CONTENT_TYPE, FILENAME, self.ics(appointment, stamp))

    @staticmethod
    def _stamp_line(stamp: datetime) -> bytes:
        return _line("DTSTAMP", vDDDTypes(stamp.astimezone(UTC)))

    def _time_lines(self, starts_at: datetime) -> bytes:
        start = starts_at.astimezone(UTC)
        return _line("DTSTART", vDDDTypes(start)) + _line("DTEND", vDDDTypes(start + self.length))

    def _word_lines(self, service: str, therapist: str) -> bytes:
        name = self.services(service)
        name = name[:1].upper() + name[1:]  # it starts the entry: "Back pain massage with Sam"
        summary = f"{name} with {therapist}" if therapist else f"{name} at {self.clinic.name}"
        description = (
            f"{name}{f' with {therapist}' if therapist else ''} at {self.clinic.name}, "
            f"{self.clinic.address}.\nNeed to change the time? {self.clinic.booking_url}"
        )
        return _line("SUMMARY", vText(summary)) + _line("DESCRIPTION", vText(description))
