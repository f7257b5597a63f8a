"""``rebook status`` and ``rebook plan``, through the real command, on both backends."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.config import load_settings
from campaigns.delivery.run import run_campaign
from campaigns.store.tables import runs, sends

from .test_delivery import clinic_with, smtp  # noqa: F401  (the smtp fixture)

NIGHTLY = """
[segments.everyone]
visits_at_least = 0

[campaigns.nightly]
segment = "everyone"
template = "reminders/book-next-massage"
subject = "Hello"
schedule = "30 1 * * *"
"""

CONSENTING = ["person0@example.com", "person2@example.com", "person4@example.com"]


def in_london(clinic) -> None:
    clinic.write_config(NIGHTLY)
    text = clinic.config.read_text().replace("Australia/Perth", "Europe/London")
    clinic.config.write_text(text)


def planned_json(clinic, *args: str) -> dict:
    result = clinic.rebook("plan", "--json", *args)
    assert result.code == 0, result.err
    return {campaign["name"]: campaign for campaign in json.loads(result.out)["campaigns"]}


def run_now(clinic, name: str, settings=None) -> None:
    settings = settings or load_settings(clinic.config)
    engine = clinic.engine()
    asyncio.run(run_campaign(engine, settings, name, clock=lambda: datetime.now(UTC)))


def with_config(clinic, old: str, new: str) -> None:
    clinic.config.write_text(clinic.config.read_text().replace(old, new, 1))


def test_plan_lists_a_daily_run_once_when_the_clocks_go_back(sqlite_clinic):
    in_london(sqlite_clinic)
    plan = planned_json(sqlite_clinic, "--from", "2026-10-24T00:00", "--runs", "3")["nightly"]
    assert [run["at"] for run in plan["runs"]] == [
        "2026-10-24T01:30:00+01:00",
        "2026-10-25T01:30:00+01:00",
        "2026-10-26T01:30:00+00:00",
    ]
    assert plan["state"] == "scheduled" and plan["reach"] is None
    table = sqlite_clinic.rebook("plan", "--from", "2026-10-24T00:00", "--runs", "3")
    assert table.code == 0, table.err
    assert "run times from Sat 2026-10-24 00:00 BST (Europe/London)" in table.out
    for shown in (
        "Sat 2026-10-24 01:30 BST",
        "Sun 2026-10-25 01:30 BST",
        "Mon 2026-10-26 01:30 GMT",
    ):
        assert shown in table.out
    assert "Sun 2026-10-25 01:30 GMT" not in table.out


def test_plan_runs_at_the_jump_when_the_time_does_not_exist(sqlite_clinic):
    in_london(sqlite_clinic)
    plan = planned_json(sqlite_clinic, "--from", "2026-03-28T00:00", "--runs", "3")["nightly"]
    assert [run["at"] for run in plan["runs"]] == [
        "2026-03-28T01:30:00+00:00",
        "2026-03-29T02:00:00+01:00",
        "2026-03-30T01:30:00+01:00",
    ]


def test_plan_from_a_time_with_an_offset_counts_from_that_instant(sqlite_clinic):
    in_london(sqlite_clinic)
    # The second 01:30 of 25 October: that day's run was the first one, an hour before.
    plan = planned_json(sqlite_clinic, "--from", "2026-10-25T01:30+00:00", "--runs", "1")
    assert [run["at"] for run in plan["nightly"]["runs"]] == ["2026-10-26T01:30:00+00:00"]
    inclusive = planned_json(sqlite_clinic, "--from", "2026-10-25T01:30", "--runs", "1")
    assert [run["at"] for run in inclusive["nightly"]["runs"]] == ["2026-10-25T01:30:00+01:00"]


def test_plan_refuses_a_time_it_cannot_read(sqlite_clinic):
    in_london(sqlite_clinic)
    for bad in ("23/10/2026", "2026-13-01T00:00", "tomorrow"):
        result = sqlite_clinic.rebook("plan", "--from", bad)
        assert result.code == 2, result
        assert "'--from'" in result.err and "2026-10-23T00:00" in result.err
        assert "Traceback" not in result.err
    assert sqlite_clinic.rebook("plan", "--runs", "0").code == 2


def test_plan_counts_who_a_run_would_reach_now_and_shows_a_sample(clinic):
    clinic_with(clinic, 1, transport="maildir")
    book = planned_json(clinic)["book"]
    assert book["state"] == "by hand only" and book["runs"] == [] and book["next_run"] is None
    reach = book["reach"]
    assert (reach["members"], reach["count"], reach["held"]) == (6, 3, 0)
    assert reach["left_out"] == {"no marketing consent": 3}
    assert reach["sample"] == [{"email": email, "key": "once"} for email in CONSENTING]

    run_now(clinic, "book")
    after = planned_json(clinic)["book"]["reach"]
    assert after["count"] == 0 and after["sample"] == []
    assert after["left_out"] == {"no marketing consent": 3, "already sent": 3}
    table = clinic.rebook("plan")
    assert table.code == 0, table.err
    assert "0 of 6" in table.out and "already sent 3" in table.out


def test_plan_applies_quiet_hours_at_the_next_run_and_the_marketing_cap(clinic):
    clinic_with(clinic, 1, transport="maildir")
    with_config(clinic, 'subject = "{{ client.first_name }}, how is your back?"\n',
                'subject = "Hi"\nschedule = "0 10 * * *"\n')  # fmt: skip
    with open(clinic.config, "a") as config:
        config.write('\n[policy]\nquiet_hours = "09:00-11:00"\nmax_marketing = "1/7d"\n')
    book = planned_json(clinic)["book"]
    next_run = book["next_run"]
    assert next_run.endswith("T10:00:00+08:00")  # the clinic's time, Perth
    day = next_run[:10]
    assert len(book["runs"]) == 3  # plan shows the next three by default
    assert book["runs"][0] == {"at": next_run, "held_until": f"{day}T11:00:00+08:00"}
    assert (book["reach"]["count"], book["reach"]["held"]) == (3, 3)
    assert book["reach"]["held_until"] == f"{day}T11:00:00+08:00"
    table = clinic.rebook("plan")
    assert "3 held for quiet hours until" in table.out and f"{day} 11:00 AWST" in table.out

    run_now(clinic, "series")  # one marketing email each: the cap is reached
    capped = planned_json(clinic)["book"]["reach"]
    assert capped["count"] == 0
    capped_out = {r.split(" of ")[0]: n for r, n in capped["left_out"].items()}
    assert capped_out == {"no marketing consent": 3, "reached the marketing cap": 3}


def test_plan_and_status_show_disabled_and_by_hand_campaigns(sqlite_clinic):
    clinic_with(sqlite_clinic, 1, transport="maildir")
    with_config(
        sqlite_clinic, 'kind = "transactional"\n', 'kind = "transactional"\nenabled = false\n'
    )
    plans = planned_json(sqlite_clinic)
    assert plans["reminder"]["state"] == "disabled" and plans["reminder"]["reach"] is None
    status = json.loads(sqlite_clinic.rebook("status", "--json").out)
    states = {c["name"]: (c["state"], c["next_run"]) for c in status["campaigns"]}
    assert states["reminder"] == ("disabled", None) and states["book"] == ("by hand only", None)
    table = sqlite_clinic.rebook("status").out
    assert "disabled" in table and "by hand only" in table


def test_plan_names_a_campaign_that_could_not_run_and_exits_2(sqlite_clinic):
    clinic_with(sqlite_clinic, 1, transport="maildir")
    with_config(sqlite_clinic, 'articles = "articles/*.md"', 'articles = "missing/*.md"')
    result = sqlite_clinic.rebook("plan", "--json")
    assert result.code == 2
    plans = {c["name"]: c for c in json.loads(result.out)["campaigns"]}
    assert "campaigns.series.articles" in plans["series"]["problem"]
    assert plans["book"]["reach"]["count"] == 3  # the others are still planned
    assert "campaigns.series.articles: 'missing/*.md' matches no article" in result.err


def test_status_shows_last_run_ledger_counts_and_suppressions(clinic, smtp):  # noqa: F811
    settings, engine = clinic_with(clinic, smtp.port)
    with_config(clinic, 'subject = "{{ client.first_name }}, how is your back?"\n',
                'subject = "Hi"\nschedule = "0 10 * * tue"\n')  # fmt: skip
    smtp.handler.script["person2@example.com"] = ["450 4.2.0 try later"]
    smtp.handler.script["person4@example.com"] = ["550 5.1.1 no such user"]
    run_now(clinic, "book", settings)
    now = datetime.now(UTC).replace(microsecond=0)
    scheduled = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # Tuesday 10:00 in Perth
    with engine.begin() as connection:
        connection.execute(runs.insert().values(
            campaign="book", scheduled_for=scheduled, started_at=scheduled, finished_at=scheduled,
            worker="box:1", outcome="done", members=6, enqueued=3, sent=1, deferred=1, failed=1,
        ))  # fmt: skip
        connection.execute(sends.insert().values(
            campaign="series", client_id="c000", key="articles/x.md", marketing=True,
            email="person0@example.com", status="queued", created_at=now, updated_at=now,
            next_attempt_at=now + timedelta(hours=12),
        ))  # fmt: skip
    assert clinic.rebook("unsubscribe", "person1@example.com").code == 0

    result = clinic.rebook("status", "--json")
    assert result.code == 0, result.err
    status = json.loads(result.out)
    book = {c["name"]: c for c in status["campaigns"]}["book"]
    assert {k: book["counts"][k] for k in ("sent", "deferred", "failed", "held")} == {
        "sent": 1, "deferred": 1, "failed": 1, "held": 0,
    }  # fmt: skip
    assert book["last_run"]["scheduled_for"] == "2026-11-24T10:00:00+08:00"
    assert book["last_run"]["outcome"] == "done" and book["last_sent_at"] is not None
    assert book["state"] == "scheduled" and book["next_run"].endswith("T10:00:00+08:00")
    series = {c["name"]: c for c in status["campaigns"]}["series"]
    assert series["counts"]["held"] == 1 and series["counts"]["queued"] == 0
    assert status["suppressed"] == {
        "addresses": 2, "clients": 1, "addresses_by_reason": {"bounced": 1, "manual": 1},
    }  # fmt: skip

    table = clinic.rebook("status")
    assert table.code == 0, table.err
    assert "Tue 2026-11-24 10:00 AWST" in table.out and "done" in table.out
    assert "suppressed: 2 address(es) (bounced 1, manual 1), 1 client(s)" in table.out


def test_a_schedule_that_matches_no_date_is_a_config_error(sqlite_clinic):
    clinic_with(sqlite_clinic, 1, transport="maildir")
    with_config(sqlite_clinic, 'subject = "See you soon"\n',
                'subject = "See you soon"\nschedule = "0 9 30 2 *"\n')  # fmt: skip
    expected = "campaigns.reminder.schedule: cron '0 9 30 2 *' matches no date"
    for args in (("check",), ("status",), ("plan",), ("run",)):
        result = sqlite_clinic.rebook(*args)
        assert result.code == 2 and expected in result.err and "Traceback" not in result.err


def test_plan_reads_quiet_hours_on_a_clients_own_clock(sqlite_clinic):
    clinic_with(sqlite_clinic, 1, transport="maildir")
    with_config(sqlite_clinic, 'subject = "{{ client.first_name }}, how is your back?"\n',
                'subject = "Hi"\nschedule = "0 10 * * *"\n')  # fmt: skip
    with open(sqlite_clinic.config, "a") as config:
        config.write('\n[policy]\nquiet_hours = "09:00-11:00"\n')
    # 10:00 in Perth is 02:00 or 03:00 in London: outside London's quiet hours.
    sqlite_clinic.write(
        "clients.csv",
        "id,email,first_name,last_name,marketing_consent,timezone\n"
        "c000,person0@example.com,Person0,Test,yes,Europe/London\n",
    )
    assert sqlite_clinic.rebook("import", "clients", "clients.csv").code == 0
    reach = planned_json(sqlite_clinic)["book"]["reach"]
    assert (reach["count"], reach["held"]) == (3, 2)


def test_a_day_of_month_and_a_weekday_both_must_match_and_check_and_plan_show_it(sqlite_clinic):
    """APScheduler ANDs them where crontab ORs: kept, said, and the next runs shown."""
    sqlite_clinic.write_config(NIGHTLY.replace("30 1 * * *", "0 9 1 * mon"))
    times = planned_json(sqlite_clinic, "--from", "2027-01-01T00:00")["nightly"]["runs"]
    assert [run["at"][:10] for run in times] == ["2027-02-01", "2027-03-01", "2027-11-01"]
    note = "note: campaigns.nightly.schedule '0 9 1 * mon' runs only on days that match both"
    for command in ("check", "plan"):
        result = sqlite_clinic.rebook(command)
        assert result.code == 0, result.err
        assert note in result.out
        runs = re.findall(r"(\w{3}) \d{4}-\d\d-(\d\d) 09:00 AWST", result.out)
        assert runs == [("Mon", "01")] * 3  # the next three runs, each a Monday the 1st
    first_mondays = NIGHTLY.replace("30 1 * * *", "0 9 1-7 * mon")
    sqlite_clinic.write_config(first_mondays)
    times = planned_json(sqlite_clinic, "--from", "2027-01-01T00:00")["nightly"]["runs"]
    assert [run["at"][:10] for run in times] == ["2027-01-04", "2027-02-01", "2027-03-01"]
    early = planned_json(sqlite_clinic, "--from", "1971-02-01T00:00")["nightly"]["runs"]
    assert early[0]["at"][:10] == "1971-02-01"  # not the first Monday of 1970, nor later


@settings(max_examples=60, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 12, 31, 23, 59)),
    zone=st.sampled_from(["Australia/Perth", "Pacific/Kiritimati", "Pacific/Pago_Pago",
                          "Europe/London", "America/Los_Angeles"]),
    schedule=st.sampled_from(["every 36500d", "every 1s", "0 9 29 2 mon", "59 23 31 12 *",
                              "0 0 1 1 *", "30 1 * * *"]),
    count=st.integers(1, 1000),
)  # fmt: skip
def test_any_start_plan_accepts_lists_runs_without_a_traceback(start, zone, schedule, count):
    """--from between 1971 and 2200, --runs up to 1000: the calendar may end, never the command."""
    from zoneinfo import ZoneInfo

    from campaigns.config import Campaign
    from campaigns.planning import upcoming
    from campaigns.timing import local_instant

    campaign = Campaign(segment="s", template="t", subject="Hi", schedule=schedule)
    zone = ZoneInfo(zone)
    times = upcoming(campaign, zone, local_instant(start, zone) - timedelta(microseconds=1), count)
    assert times == sorted(set(times)) and 0 < len(times) <= count
