"""``rebook report``: the bookings that followed each campaign, counted exactly, on both backends.

The clinic is built in-process with a clock of the test's choosing (imports
stamp ``first_seen_at`` with it, a run stamps ``sent_at``), so that bookings
land inside and outside the window without waiting; the report itself is
read through the real command.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from campaigns.clients.importer import import_file
from campaigns.config import load_settings
from campaigns.delivery.run import run_campaign
from campaigns.delivery.suppression import unsubscribe_client
from campaigns.store.database import write_transaction

from .smtpd import SmtpServer

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # the first import
SENT = T0 + timedelta(days=1)  # the campaign goes out
CONFIG = """
[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
timeout = "2s"

[mail]
from = "Waso Physiotherapy <hello@waso.example>"
transport = "smtp"

[segments.everyone]
visits_at_least = 1

[campaigns.book]
segment = "everyone"
template = "reminders/book-next-massage"
subject = "Time for a massage?"
{campaign_extra}
"""


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


class Clinic:
    """A clinic whose clock the test moves: every import and run happens at a given time."""

    def __init__(self, clinic, port: int, people: int, campaign_extra: str = "") -> None:
        self.clinic = clinic
        config = clinic.write_config("")
        config.write_text(
            config.read_text().replace(
                '[mail]\nfrom = "Waso Physiotherapy <hello@waso.example>"\n', ""
            )
            + CONFIG.format(port=port, campaign_extra=campaign_extra)
        )
        self.settings = load_settings(clinic.config)
        self.engine = clinic.engine()
        self.visits = ["id,client_id,starts_at,service,status"]
        self.visits += [f"old{n},c{n:03d},2026-01-05T10:00,massage,attended" for n in range(people)]
        rows = ["id,email,first_name,last_name,marketing_consent"]
        rows += [f"c{n:03d},person{n}@example.com,Person{n},Test,yes" for n in range(people)]
        rows.append("x999,noconsent@example.com,No,Consent,no")
        self.visits.append("oldx,x999,2026-01-05T10:00,massage,attended")
        self.load("clients", rows, T0)
        self.load("visits", self.visits, T0)

    def load(self, kind: str, rows: list[str], at: datetime) -> None:
        path = self.clinic.write(f"{kind}.csv", "\n".join(rows) + "\n")
        zone = self.settings.clinic.timezone
        import_file(self.engine, kind, path, clinic_zone=zone, now=at)

    def book(self, at: datetime, *visits: str) -> None:
        """A later export: everything seen before, plus ``visits`` (id,client,start,…,status)."""
        self.visits += [visit.replace(",B,", ",massage,") for visit in visits]
        self.load("visits", self.visits, at)

    def send(self, at: datetime = SENT):
        return asyncio.run(run_campaign(self.engine, self.settings, "book", clock=lambda: at))

    def report(self, *args: str) -> dict:
        result = self.clinic.rebook("report", "--json", *args)
        assert result.code == 0, result.err
        return {c["name"]: c for c in json.loads(result.out)["campaigns"]}


def test_report_counts_exactly_the_bookings_that_followed_within_the_window(clinic, smtp):
    smtp.handler.script["person9@example.com"] = ["550 5.1.1 no such user"]
    built = Clinic(clinic, smtp.port, people=10)
    built.book(T0, "early,c005,2026-04-01T10:00,B,booked")  # already booked before the email
    report = built.send()
    assert report.outcomes["sent"] == 9 and report.outcomes["failed"] == 1
    with write_transaction(built.engine) as connection:
        unsubscribe_client(connection, "c006", "test", SENT + timedelta(days=2))
    built.book(
        SENT + timedelta(days=3),
        "a1,c000,2026-03-20T10:00,B,booked",
        "b1,c001,2026-03-20T10:00,B,booked",
        "b2,c001,2026-03-27T10:00,B,booked",  # two bookings, one client who booked
        "c1,c002,2026-03-20T10:00,B,cancelled",  # cancelled: not a booking
        "x1,x999,2026-03-20T10:00,B,booked",  # not a recipient
        "f1,c009,2026-03-20T10:00,B,booked",  # bounced: not a recipient either
    )
    built.book(SENT + timedelta(days=15), "late,c004,2026-04-10T10:00,B,booked")  # outside 14d
    book = built.report()["book"]
    assert {key: book[key] for key in ("sent", "failed", "bounced", "unsubscribed",
                                       "booked", "bookings", "undated_visits")} == {
        "sent": 9, "failed": 1, "bounced": 1, "unsubscribed": 1,
        "booked": 2, "bookings": 3, "undated_visits": 0,
    }  # fmt: skip
    assert book["booking_rate"] == 2 / 9
    assert book["control"] is None and book["difference"] is None
    assert [(w["week"], w["sent"], w["booked"]) for w in book["weeks"]] == [("2026-03-02", 9, 2)]
    wider = clinic.config.read_text() + '\n[report]\nwindow = "20d"\n'
    clinic.config.write_text(wider)
    assert built.report()["book"]["bookings"] == 4  # the late one falls inside 20 days
    assert built.report("--since", "1d")["book"]["sent"] == 0  # sent long before the last day


def test_the_table_says_followed_by_and_an_unknown_campaign_exits_2(sqlite_clinic, smtp):
    built = Clinic(sqlite_clinic, smtp.port, people=3)
    built.send()
    built.book(SENT + timedelta(days=1), "a1,c000,2026-03-20T10:00,B,booked")
    table = sqlite_clinic.rebook("report")
    assert table.code == 0, table.err
    assert "followed by, not caused by" in table.out
    assert "1 (33.3%)" in table.out
    unknown = sqlite_clinic.rebook("report", "--campaign", "nope")
    assert unknown.code == 2
    assert "no campaign named 'nope'" in unknown.err and "Traceback" not in unknown.err


def test_a_control_group_is_compared_with_the_recipients_over_the_same_window(clinic, smtp):
    from campaigns.stats import MEASURED, newcombe
    from campaigns.store.expressions import CONTROL_BUCKETS, control_bucket

    built = Clinic(clinic, smtp.port, people=100, campaign_extra="holdout = 0.5")
    ids = [f"c{n:03d}" for n in range(100)]
    control = [i for i in ids if control_bucket("book", i) < CONTROL_BUCKETS // 2]
    treated = [i for i in ids if i not in control]
    run = built.send()
    assert run.held_out == len(control) and run.outcomes["sent"] == len(treated)
    assert sorted(smtp.handler.addresses()) == sorted(f"person{int(i[1:])}@example.com"
                                                      for i in treated)  # fmt: skip
    built.book(
        SENT + timedelta(days=2),
        *(f"t{i},{i},2026-03-20T10:00,B,booked" for i in treated[:20]),
        *(f"k{i},{i},2026-03-20T10:00,B,booked" for i in control[:2]),
        f"kc,{control[2]},2026-03-20T10:00,B,cancelled",
    )
    built.book(SENT + timedelta(days=16), f"kl,{control[3]},2026-04-20T10:00,B,booked")
    book = built.report()["book"]
    assert (book["sent"], book["booked"]) == (len(treated), 20)
    assert (book["control"]["clients"], book["control"]["booked"]) == (len(control), 2)
    expected = newcombe(20, len(treated), 2, len(control))
    difference = book["difference"]
    assert difference["points"] == pytest.approx(expected.estimate * 100)
    assert difference["interval"] == pytest.approx([expected.low * 100, expected.high * 100])
    assert difference["bookings_won"] == pytest.approx(expected.estimate * len(treated))
    assert difference["verdict"] == MEASURED
    table = clinic.rebook("report", "--campaign", "book")
    assert f"2 of {len(control)} booked" in table.out
    assert "bookings won" in table.out


def test_too_few_clients_are_said_in_words_not_as_a_number(sqlite_clinic, smtp):
    built = Clinic(sqlite_clinic, smtp.port, people=20, campaign_extra="holdout = 0.5")
    built.send()
    book = built.report()["book"]
    assert book["difference"]["verdict"] == "not enough data yet"
    assert "not enough data yet" in sqlite_clinic.rebook("report").out


def test_an_html_report_that_cannot_be_written_says_why_and_leaves_the_old_one(sqlite_clinic, smtp):
    built = Clinic(sqlite_clinic, smtp.port, people=3)
    built.send()
    missing = sqlite_clinic.rebook("report", "--html", "no-such-folder/report.html")
    assert missing.code == 2 and "Traceback" not in missing.err
    assert "cannot write the report to 'no-such-folder/report.html'" in missing.err
    old = sqlite_clinic.write("report.html", "last week's report\n")
    written = sqlite_clinic.rebook("report", "--html", "report.html")
    assert written.code == 0 and "<svg" in old.read_text()
    assert [p.name for p in sqlite_clinic.folder.glob(".*partial")] == []


def test_no_data_is_null_in_json_and_a_dash_in_the_table_and_page_never_zero(sqlite_clinic, smtp):
    """Every email refused, a control group held out: the recipients' rate is no data, not 0%."""
    built = Clinic(sqlite_clinic, smtp.port, people=8, campaign_extra="holdout = 0.5")
    for n in range(8):
        smtp.handler.script[f"person{n}@example.com"] = ["550 5.1.1 no such user"]
    built.send()
    book = built.report()["book"]
    assert book["sent"] == 0 and book["failed"] > 0 and book["booking_rate"] is None
    assert book["recipients"]["rate"] is None and book["recipients"]["rate_interval"] is None
    assert book["control"]["clients"] > 0 and book["difference"] is None
    table = sqlite_clinic.rebook("report")
    [row] = [line for line in table.out.splitlines() if line.startswith("book ")]
    assert "—" in row and "0.0%" not in row.split("│")[5]
    sqlite_clinic.write_config("[segments.all]\n[campaigns.idle]\nsegment = 'all'\n"
                               "template = 'reminders/book-next-massage'\nsubject = 'Hi'\n")  # fmt: skip
    idle = json.loads(sqlite_clinic.rebook("report", "--json", "--campaign", "idle").out)
    [shown] = idle["campaigns"]
    assert shown["booking_rate"] is None and shown["recipients"]["rate_interval"] is None
    page = sqlite_clinic.rebook("report", "--html", "-", "--campaign", "idle").out
    assert "0 sent, 0 booked afterwards (—)" in page and "0.0%" not in page
