"""``rebook run`` wakes when work falls due: each retry on its backoff, held mail at the window's end.

The real service in a subprocess and a real SMTP server; the server notes
when each attempt arrives, and the gaps are compared with what the backoff
and the quiet hours promise.
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from .service import RunningService
from .smtpd import SmtpServer
from .test_delivery import clinic_with
from .test_service import add_campaign

PERTH = ZoneInfo("Australia/Perth")  # the test clinic's time zone


def with_backoff(clinic, backoff: str, attempts: int) -> None:
    text = clinic.config.read_text()
    text = text.replace('retry_backoff = "1m"', f'retry_backoff = "{backoff}"')
    clinic.config.write_text(text.replace("max_attempts = 3", f"max_attempts = {attempts}"))


def test_each_retry_leaves_on_its_backoff_not_a_minute_later(sqlite_clinic):
    with SmtpServer() as smtp:
        smtp.handler.script["person0@example.com"] = ["451 4.3.0 try later"] * 3
        clinic_with(sqlite_clinic, smtp.port)
        with_backoff(sqlite_clinic, "2s", 6)
        add_campaign(sqlite_clinic, "tick", "every 1h")
        with RunningService(sqlite_clinic.folder) as service:
            deadline = time.monotonic() + 40
            while "person0@example.com" not in smtp.handler.addresses():
                assert time.monotonic() < deadline, service.log()
                time.sleep(0.1)
            assert service.stop() == 0, service.log()
        tries = [at for address, at in smtp.handler.attempts if address == "person0@example.com"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(tries)]
    print("gaps between attempts (s):", [round(gap, 2) for gap in gaps])
    assert len(gaps) == 3
    for number, gap in enumerate(gaps):  # 2 s, 4 s, 8 s, each ±20%, plus a little work
        promised = 2 * 2**number
        assert 0.8 * promised - 0.2 <= gap <= 1.2 * promised + 1.5, gaps


def window_ending_soon(now: datetime) -> tuple[str, datetime]:
    """Quiet hours that hold mail now and end at a minute mark at least 8 s away."""
    end = (now + timedelta(seconds=68)).replace(second=0, microsecond=0)
    local_end = end.astimezone(PERTH)
    start = local_end - timedelta(hours=1)
    return f"{start:%H:%M}-{local_end:%H:%M}", end


def test_mail_held_for_quiet_hours_leaves_when_the_window_ends(sqlite_clinic):
    with SmtpServer() as smtp:
        clinic_with(sqlite_clinic, smtp.port)
        window, end = window_ending_soon(datetime.now(UTC))
        sqlite_clinic.config.write_text(
            sqlite_clinic.config.read_text() + f'\n[policy]\nquiet_hours = "{window}"\n'
        )
        add_campaign(sqlite_clinic, "tick", "every 1h")
        with RunningService(sqlite_clinic.folder) as service:
            service.wait_for("held=3")
            assert smtp.handler.received == []
            deadline = time.monotonic() + (end - datetime.now(UTC)).total_seconds() + 15
            while len(smtp.handler.received) < 3:
                assert time.monotonic() < deadline, service.log()
                time.sleep(0.1)
            assert service.stop() == 0, service.log()
    late = [item.wall - end.timestamp() for item in smtp.handler.received]
    print("seconds after the window's end:", [round(each, 2) for each in late])
    assert all(0 <= each <= 3 for each in late), late
