"""Appointment reminders carry their visit as an ``appointment.ics`` a calendar can keep.

Delivered through the real ``rebook send`` to aiosmtpd and read back with
``icalendar``, as a mail client's "add to calendar" would.
"""

from __future__ import annotations

import email
import email.policy
import subprocess
from datetime import UTC, datetime, timedelta

import icalendar

from campaigns.config import Clinic, Mail
from campaigns.content.calendar import CalendarMaker
from campaigns.content.context import Appointment
from campaigns.content.message import MessageComposer, sender_from
from campaigns.content.render import Rendered

from .conftest import REBOOK
from .smtpd import SmtpServer
from .test_message import parse

CONFIG = """
appointment_length = "45m"

[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
timeout = "5s"

[mail]
from = "Waso Physiotherapy <hello@waso.example>"
transport = "smtp"

[segments.soon]
next_visit_within = "2d"

[campaigns.reminder]
segment = "soon"
kind = "transactional"
template = "reminders/appointment"
subject = "See you soon"

[campaigns.last-call]
segment = "soon"
kind = "transactional"
template = "reminders/appointment"
subject = "See you tomorrow"
"""


def a_clinic_with_a_booking(clinic, port: int) -> datetime:
    """One client with a back-pain massage booked tomorrow; returns when it starts (UTC)."""
    config = clinic.config.read_text().replace(
        '[mail]\nfrom = "Waso Physiotherapy <hello@waso.example>"\n', ""
    )
    config = config.replace('booking_url = "https://waso.example/book"\n',
                            'booking_url = "https://waso.example/book"\n' + CONFIG.format(port=port))  # fmt: skip
    clinic.config.write_text(config)
    clinic.write("clients.csv", "id,email,first_name,last_name\nc1,ana@example.com,Ana,Silva\n")
    starts = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)
    assert clinic.rebook("import", "clients", "clients.csv").code == 0
    book(clinic, starts)
    return starts


def book(clinic, starts: datetime) -> None:
    clinic.write(
        "visits.csv",
        "id,client_id,starts_at,service,status,therapist\n"
        f"v42,c1,{starts.isoformat()},back-pain-massage,booked,Sam Carter\n",
    )
    result = clinic.rebook("import", "visits", "visits.csv")
    assert result.code == 0, result.err


def calendar_of(message) -> tuple[email.message.EmailMessage, icalendar.Calendar]:
    [attached] = list(message.iter_attachments())
    return attached, icalendar.Calendar.from_ical(attached.get_content())


def test_a_reminder_carries_its_appointment_as_a_calendar_entry(sqlite_clinic):
    with SmtpServer() as smtp:
        starts = a_clinic_with_a_booking(sqlite_clinic, smtp.port)
        result = sqlite_clinic.rebook("send", "reminder")
        assert result.code == 0, result.err
        [received] = smtp.handler.received
    message = received.message
    assert message.get_content_type() == "multipart/mixed"
    assert "Sam Carter" in message.get_body(("plain",)).get_content()  # the reminder itself
    attached, calendar = calendar_of(message)
    assert attached.get_content_type() == "text/calendar"
    assert attached.get_param("method") == "PUBLISH"
    assert attached.get_filename() == "appointment.ics"
    assert calendar["METHOD"] == "PUBLISH" and calendar["VERSION"] == "2.0"
    [event] = calendar.walk("VEVENT")
    assert event["UID"] == "visit-v42@waso.example"
    assert event.decoded("DTSTART") == starts
    assert event.decoded("DTEND") == starts + timedelta(minutes=45)  # [clinic] appointment_length
    assert event["SUMMARY"] == "Back pain massage with Sam Carter"
    assert "Back pain massage with Sam Carter at Waso Physiotherapy" in event["DESCRIPTION"]
    assert event["LOCATION"] == "1 Example Street, Perth WA 6000"
    assert event["ORGANIZER"] == "mailto:hello@waso.example"
    assert event["ORGANIZER"].params["CN"] == "Waso Physiotherapy"
    assert "ATTENDEE" not in event  # a reminder, not an invitation: nothing to answer
    assert event.decoded("DTSTAMP") == message["Date"].datetime
    assert event["SEQUENCE"] > 0


def test_reminders_of_one_visit_share_its_uid_and_a_moved_visit_raises_the_sequence(
    sqlite_clinic,
):
    with SmtpServer() as smtp:
        starts = a_clinic_with_a_booking(sqlite_clinic, smtp.port)
        assert sqlite_clinic.rebook("send", "reminder").code == 0
        moved = starts + timedelta(hours=2)
        book(sqlite_clinic, moved)  # the same visit, rescheduled
        assert sqlite_clinic.rebook("send", "last-call").code == 0
        first, second = (calendar_of(r.message)[1] for r in smtp.handler.received)
    [before], [after] = first.walk("VEVENT"), second.walk("VEVENT")
    assert before["UID"] == after["UID"] == "visit-v42@waso.example"
    assert after["SEQUENCE"] > before["SEQUENCE"]  # a calendar replaces the entry
    assert (before.decoded("DTSTART"), after.decoded("DTSTART")) == (starts, moved)


def test_preview_eml_of_a_reminder_is_the_message_with_its_calendar(sqlite_clinic):
    with SmtpServer() as smtp:
        starts = a_clinic_with_a_booking(sqlite_clinic, smtp.port)
    shown = subprocess.run(
        [str(REBOOK), "preview", "reminder", "--format", "eml"],
        cwd=sqlite_clinic.folder, capture_output=True, check=True,
    ).stdout  # fmt: skip
    _, calendar = calendar_of(email.message_from_bytes(shown, policy=email.policy.default))
    [event] = calendar.walk("VEVENT")
    assert event["UID"] == "visit-v42@waso.example" and event.decoded("DTSTART") == starts


def test_a_non_ascii_calendar_travels_in_base64_beside_the_unchanged_parts():
    sender = sender_from(Mail(**{"from": "Waso Physiotherapy <hello@waso.example>"}))
    content = Rendered("See you soon", "<p>Zoë, see you soon</p>", "Zoë, see you soon\n")
    now = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    appointment = Appointment("v1", now + timedelta(days=1), "remedial-massage", "Zoë Ng", now)
    clinic = Clinic(name="Waso", address="1 Example Street", timezone="Australia/Perth",
                    booking_url="https://waso.example/book")  # fmt: skip
    attachment = CalendarMaker(clinic, sender).attachment(appointment, now)
    raw = MessageComposer(sender).compose(
        content, to_name="Ana Silva", to_email="ana@example.com", message_id="<1@waso.example>",
        date=now, attachment=attachment,
    )  # fmt: skip
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    message = parse(raw)
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text.get_content() == "Zoë, see you soon\r\n" and "Zoë" in html.get_content()
    attached, calendar = calendar_of(message)
    assert attached.get_content().encode() == attachment.data
    [event] = calendar.walk("VEVENT")
    assert event["SUMMARY"] == "Remedial massage with Zoë Ng"
    named = CalendarMaker(clinic, sender, {"remedial-massage": "remedial massage (60 min)"})
    [event] = icalendar.Calendar.from_ical(named.ics(appointment, now)).walk("VEVENT")
    assert event["SUMMARY"] == "Remedial massage (60 min) with Zoë Ng"  # [services], capitalised
