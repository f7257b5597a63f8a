"""Syncing from Cliniko's API, against a fake Cliniko serving the documented shapes.

In-process tests call ``sync_cliniko`` with the fake as an ASGI transport;
the command-line tests run the real ``rebook`` against the fake over HTTP.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from campaigns.cliniko.api import ClinikoError, ClinikoRefused
from campaigns.cliniko.pull import OVERLAP, sync_cliniko
from campaigns.config import load_settings
from campaigns.store.tables import app_state, clients, suppressions, visits

from .conftest import run_on_terminal
from .fake_cliniko import API_KEY, FakeCliniko, serving

KEY = {"REBOOK_SYNC__CLINIKO__API_KEY": API_KEY}
NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
DAY = timedelta(days=1)
LONG_AGO = NOW - 30 * DAY


def cliniko_table(base_url: str, extra: str = "") -> str:
    return f'\n[sync.cliniko]\nbase_url = "{base_url}"\n{extra}'


def account() -> FakeCliniko:
    """Two types (one archived), two practitioners (one inactive), six patients."""
    fake = FakeCliniko()
    fake.add_appointment_type(id=1, name="Remedial Massage (60 min)", updated_at=LONG_AGO)
    fake.add_appointment_type(id=2, name="Back Pain Assessment", archived=True, updated_at=LONG_AGO)
    fake.add_practitioner(id=1, first_name="Ann", last_name="Lee", label="Ann L.")
    fake.add_practitioner(id=2, first_name="Bo", last_name="Chan", active=False)
    patients = [
        dict(
            id=1001, first_name="Peter", preferred_first_name="Pete", time_zone="Australia/Sydney"
        ),
        dict(id=1002, accepted_email_marketing=None),
        dict(id=1003, accepted_email_marketing=False),
        dict(id=1004, archived_at=NOW - 3 * DAY),
        dict(id=1005, email=None),
        dict(id=1006, email="not-an-address@"),
    ]
    for patient in patients:
        fake.add_patient(**patient, updated_at=LONG_AGO, created_at=LONG_AGO)
    visits_ = [
        dict(id=1, starts_at=NOW - 10 * DAY, patient_arrived=True),
        dict(id=2, starts_at=NOW - 9 * DAY),  # past, never marked: attended
        dict(id=3, starts_at=NOW - 8 * DAY, did_not_arrive=True),
        dict(id=4, starts_at=NOW - 7 * DAY, cancelled_at=NOW - 8 * DAY),
        dict(id=5, starts_at=NOW + 2 * DAY, deleted_at=NOW - DAY),
        dict(id=6, starts_at=NOW + 3 * DAY, appointment_type_id=2, practitioner_id=2),
    ]
    for visit in visits_:
        visit = {"patient_id": 1001, "appointment_type_id": 1, "practitioner_id": 1, **visit}
        fake.add_appointment(**visit, updated_at=LONG_AGO, created_at=LONG_AGO)
    fake.add_appointment(id=7, patient_id=1005, starts_at=NOW - DAY, appointment_type_id=1,
                         practitioner_id=1, updated_at=LONG_AGO, created_at=LONG_AGO)  # fmt: skip
    return fake


def sync(clinic, fake: FakeCliniko, now: datetime = NOW, extra: str = "", **options):
    clinic.write_config(cliniko_table("https://cliniko.test/v1", extra))
    settings = load_settings(clinic.config).model_copy()
    cliniko = settings.sync.cliniko.model_copy(update={"api_key": _secret(API_KEY)})
    settings = settings.model_copy(
        update={"sync": settings.sync.model_copy(update={"cliniko": cliniko})}
    )
    transport = httpx.ASGITransport(app=fake.app)
    return asyncio.run(sync_cliniko(clinic.engine(), settings, now, transport=transport, **options))


def _secret(text: str):
    from pydantic import SecretStr

    return SecretStr(text)


def test_a_full_pull_maps_patients_and_appointments_as_the_docs_describe(clinic) -> None:
    report = sync(clinic, account(), extra='services = { "Back Pain Assessment" = "back-pain" }')
    assert clinic.rows(clients, "id", "first_name", "marketing_consent", "timezone") == [
        ("1001", "Pete", True, "Australia/Sydney"),
        ("1002", "Pat", False, None),  # no answer is no consent, by default
        ("1003", "Pat", False, None),
        ("1004", "Pat", False, None),  # archived
    ]
    assert clinic.rows(visits, "id", "client_id", "service", "status", "therapist") == [
        ("1", "1001", "remedial-massage-60-min", "attended", "Ann L."),
        ("2", "1001", "remedial-massage-60-min", "attended", "Ann L."),
        ("3", "1001", "remedial-massage-60-min", "no-show", "Ann L."),
        ("4", "1001", "remedial-massage-60-min", "cancelled", "Ann L."),
        ("5", "1001", "remedial-massage-60-min", "cancelled", "Ann L."),  # deleted
        ("6", "1001", "back-pain", "booked", "Bo Chan"),  # archived type, inactive practitioner
    ]
    assert report.full and report.no_email == 1 and report.left_out == 1
    assert (report.clients.inserted, report.visits.inserted) == (4, 6)
    assert [str(row) for row in report.clients.rejected] == [
        "patient 1006: email 'not-an-address@' is not a valid address: "
        "There must be something after the @-sign."
    ]


def test_the_owner_may_count_no_answer_as_consent(sqlite_clinic) -> None:
    sync(sqlite_clinic, account(), extra='consent = "unless-refused"')
    consent = dict(sqlite_clinic.rows(clients, "id", "marketing_consent"))
    assert consent == {"1001": True, "1002": True, "1003": False, "1004": False}


def test_later_syncs_ask_only_for_changes_and_see_bookings_become_visits(clinic) -> None:
    fake = account()
    sync(clinic, fake)
    fake.requests.clear()
    fake.touch("patients", 1002, accepted_email_marketing=True, updated_at=NOW + DAY)
    later = NOW + 4 * DAY  # booking 6 (in 3 days) has happened, untouched in Cliniko
    report = sync(clinic, fake, now=later)
    since = (NOW - OVERLAP).strftime("%Y-%m-%dT%H:%M:%SZ")
    listed = [r for r in fake.requests if r.path in ("/v1/patients", "/v1/individual_appointments")]
    assert all(f"updated_at:>{since}" in r.params["q[]"] or "starts_at" in r.params["q[]"][0]
               for r in listed)  # fmt: skip
    assert not report.full and report.requests == 11
    assert dict(clinic.rows(clients, "id", "marketing_consent"))["1002"] is True
    assert dict(clinic.rows(visits, "id", "status"))["6"] == "attended"
    assert (report.clients.updated, report.visits.updated) == (1, 1)
    unchanged = sync(clinic, fake, now=later + timedelta(minutes=15))
    assert (
        unchanged.clients.rows + unchanged.visits.rows
        == unchanged.clients.unchanged + unchanged.visits.unchanged
    )


def test_archived_and_deleted_patients_get_no_more_marketing(sqlite_clinic) -> None:
    fake = account()
    sync(sqlite_clinic, fake)
    fake.touch("patients", 1001, deleted_at=NOW + DAY, updated_at=NOW + DAY)
    report = sync(sqlite_clinic, fake, now=NOW + 2 * DAY)
    assert report.withdrawn == 1
    assert dict(sqlite_clinic.rows(clients, "id", "marketing_consent"))["1001"] is False


def test_the_suppression_list_wins_over_cliniko(sqlite_clinic) -> None:
    sqlite_clinic.write_config()
    done = sqlite_clinic.rebook("unsubscribe", "patient1001@example.org")
    assert done.code == 0, done.err
    report = sync(sqlite_clinic, account())
    assert report.clients.suppressed == 1
    assert sqlite_clinic.rows(suppressions, "address") == [("patient1001@example.org",)]


def test_a_forgotten_client_is_not_brought_back(sqlite_clinic) -> None:
    fake = account()
    sync(sqlite_clinic, fake)
    done = sqlite_clinic.rebook("forget", "patient1001@example.org", "--yes")
    assert done.code == 0, done.err
    report = sync(sqlite_clinic, fake, full=True)
    assert "1001" not in dict(sqlite_clinic.rows(clients, "id", "email"))
    assert report.clients.forgotten == 1 and report.visits.forgotten == 6


def test_a_429_is_waited_out_as_retry_after_says(sqlite_clinic) -> None:
    fake = account()
    fake.rate_limit(times=1, retry_after=1)
    started = time.monotonic()
    report = sync(sqlite_clinic, fake)
    assert time.monotonic() - started >= 1.0
    assert report.visits.inserted == 6 and len(fake.requests) == report.requests


def test_a_5xx_is_asked_again_and_the_sync_goes_on(sqlite_clinic) -> None:
    fake = account()
    fake.fail(path="/v1/patients", status=503, times=1)
    report = sync(sqlite_clinic, fake)
    assert report.clients.inserted == 4


def test_a_broken_page_writes_nothing_and_keeps_the_mark(sqlite_clinic) -> None:
    fake = account()
    sync(sqlite_clinic, fake)
    marks = sqlite_clinic.rows(app_state, "name", "value")
    fake.touch("patients", 1002, first_name="Changed", updated_at=NOW + DAY)
    fake.fail(path="/v1/individual_appointments/cancelled", status=None, times=5)
    with pytest.raises(ClinikoError, match="individual_appointments/cancelled, page 1: the answer"):
        sync(sqlite_clinic, fake, now=NOW + 2 * DAY)
    assert dict(sqlite_clinic.rows(clients, "id", "first_name"))["1002"] == "Pat"
    assert sqlite_clinic.rows(app_state, "name", "value") == marks


def test_a_wrong_key_is_refused_with_the_variable_named(sqlite_clinic) -> None:
    fake = account()
    fake.api_key = "wrong-au2"
    with pytest.raises(ClinikoRefused, match="REBOOK_SYNC__CLINIKO__API_KEY"):
        sync(sqlite_clinic, fake)


def test_a_next_link_to_another_host_is_not_followed() -> None:
    """The key goes with every request: a page must not send it elsewhere."""
    from campaigns.cliniko.api import ClinikoApi
    from campaigns.config import Cliniko

    def answer(request: httpx.Request) -> httpx.Response:
        page = {
            "patients": [{"id": 1}],
            "links": {"next": "https://evil.example/v1/patients?page=2"},
        }
        return httpx.Response(200, json=page)

    async def walk() -> None:
        settings = Cliniko(base_url="https://api.au1.cliniko.com/v1", api_key=_secret("k"))
        async with ClinikoApi(
            settings, "t (t@t.example)", transport=httpx.MockTransport(answer)
        ) as api:
            async for _ in api.listing("patients"):
                pass

    with pytest.raises(
        ClinikoError, match=r"a next link outside https://api\.au1\.cliniko\.com/v1"
    ):
        asyncio.run(walk())


# -- the command line, over real HTTP ---------------------------------------------------------


def five_pages_of_appointments(fake: FakeCliniko) -> None:
    for number in range(450):
        fake.add_appointment(id=10_000 + number, patient_id=1001, starts_at=NOW - number * DAY,
                             appointment_type_id=1, practitioner_id=1)  # fmt: skip


def test_rebook_sync_pulls_and_a_failure_on_page_3_of_5_writes_nothing(sqlite_clinic) -> None:
    fake = account()
    five_pages_of_appointments(fake)
    fake.fail(path="/v1/individual_appointments", page=3, status=500, times=3)
    with serving(fake) as base_url:
        sqlite_clinic.write_config(cliniko_table(base_url))
        failed = sqlite_clinic.rebook("sync", env=KEY)
        assert failed.code == 1, failed.err
        assert "Cliniko's individual_appointments, page 3: HTTP 500" in failed.err
        assert "nothing from Cliniko was written" in failed.err
        assert sqlite_clinic.rows(clients, "id") == [] and sqlite_clinic.rows(visits, "id") == []
        done = sqlite_clinic.rebook("sync", env=KEY)
    assert done.code == 0, done.err
    assert "imported 456 visits: 456 inserted" in done.out
    assert "skipped patient 1006: email 'not-an-address@'" in done.err
    pages = [r.params.get("page", ["1"])[0] for r in fake.requests
             if r.path == "/v1/individual_appointments"]  # fmt: skip
    assert pages[-5:] == ["1", "2", "3", "4", "5"]


def test_a_wrong_key_exits_2_naming_the_variable_not_the_key(sqlite_clinic) -> None:
    with serving(account()) as base_url:
        sqlite_clinic.write_config(cliniko_table(base_url))
        done = sqlite_clinic.rebook("sync", env={"REBOOK_SYNC__CLINIKO__API_KEY": "s3cret-au2"})
        checked = sqlite_clinic.rebook(
            "check", "--sync", env={"REBOOK_SYNC__CLINIKO__API_KEY": "s3cret-au2"}
        )
    for result in (done, checked):
        assert result.code == 2, result.err
        assert "rejected the API key (HTTP 401): check REBOOK_SYNC__CLINIKO__API_KEY" in result.err
        assert "s3cret" not in result.out + result.err and "Traceback" not in result.err


def test_check_sync_names_the_account_it_reached(sqlite_clinic) -> None:
    fake = account()
    with serving(fake) as base_url:
        sqlite_clinic.write_config(cliniko_table(base_url))
        done = sqlite_clinic.rebook("check", "--sync", env=KEY)
    assert done.code == 0, done.err
    assert (
        f"cliniko: reached {base_url} as 'rebook for Waso Physiotherapy (hello@waso.example)'"
        in done.out
    )
    assert "1 business(es)" in done.out
    assert {r.user_agent for r in fake.requests} == {
        "rebook for Waso Physiotherapy (hello@waso.example)"
    }


def test_the_key_is_never_read_from_the_file(sqlite_clinic) -> None:
    sqlite_clinic.write_config(cliniko_table("https://api.au1.cliniko.com/v1", 'api_key = "k-au1"'))
    done = sqlite_clinic.rebook("check")
    assert done.code == 2
    assert "sync.cliniko.api_key: a secret is never written in the config file" in done.err
    assert "REBOOK_SYNC__CLINIKO__API_KEY in rebook's environment" in done.err
    sqlite_clinic.write_config()
    done = sqlite_clinic.rebook("check", env=KEY)
    assert done.code == 2
    assert "has no [sync.cliniko] table" in done.err


def test_sync_and_run_without_the_key_exit_2(sqlite_clinic) -> None:
    sqlite_clinic.write_config(cliniko_table("https://api.au1.cliniko.com/v1"))
    for command in ("sync", "run"):
        done = sqlite_clinic.rebook(command)
        assert done.code == 2, done.err
        assert "REBOOK_SYNC__CLINIKO__API_KEY" in done.err
    checked = sqlite_clinic.rebook("check")
    assert checked.code == 0, checked.err
    assert "REBOOK_SYNC__CLINIKO__API_KEY is not set here" in checked.err


def test_a_terminal_shows_progress(sqlite_clinic) -> None:
    fake = account()
    five_pages_of_appointments(fake)
    with serving(fake) as base_url:
        sqlite_clinic.write_config(cliniko_table(base_url))
        done, drawn = run_on_terminal("sync", "--full", cwd=sqlite_clinic.folder, env=KEY)
    assert done.returncode == 0
    assert b"reading individual_appointments" in drawn


def test_the_service_pulls_every_interval(sqlite_clinic) -> None:
    from .service import RunningService

    fake = account()
    with serving(fake) as base_url:
        sqlite_clinic.write_config(cliniko_table(base_url, 'every = "1s"'))
        with RunningService(sqlite_clinic.folder, "--log-format", "json", env=KEY) as service:
            service.wait_for('"cliniko synced"')
            fake.add_patient(id=2001, updated_at=datetime.now(UTC))
            deadline = time.monotonic() + 20
            while "2001" not in dict(sqlite_clinic.rows(clients, "id", "email")):
                assert time.monotonic() < deadline, service.log()
                time.sleep(0.2)
            assert service.stop() == 0
    assert '"inserted": 4' in service.log() or '"inserted":4' in service.log()


def test_rows_that_are_not_records_are_rejected_and_the_rest_synced(sqlite_clinic) -> None:
    fake = account()
    odd = fake.add_appointment(id=8, patient_id=1001, starts_at=NOW, appointment_type_id=1,
                               practitioner_id=1, updated_at=LONG_AGO, created_at=LONG_AGO)  # fmt: skip
    odd["starts_at"] = "next tuesday"
    fake.add_appointment(id=9, patient_id=1001, starts_at=NOW, appointment_type_id=99,
                         practitioner_id=1, updated_at=LONG_AGO, created_at=LONG_AGO)  # fmt: skip
    report = sync(sqlite_clinic, fake)
    reasons = sorted(str(row) for row in report.visits.rejected)
    assert reasons[0].startswith("appointment 8: starts_at 'next tuesday' is not an ISO 8601 time")
    assert reasons[1] == "appointment 9: appointment type 99 is in neither of Cliniko's type lists"
    assert report.visits.inserted == 6


def test_a_listing_of_odd_json_is_rejected_row_by_row() -> None:
    from campaigns.cliniko import mapping

    for row in (None, 7, [1], "x"):
        with pytest.raises(ValueError, match="is not a JSON object"):
            mapping.as_record(row)
    assert mapping.cliniko_id(1042, "id") == "1042"  # the 2022 docs' numbers
    for bad in (True, -1, "12a", "1" * 20, None):
        with pytest.raises(ValueError, match="is not a Cliniko id"):
            mapping.cliniko_id(bad, "id")


def test_a_forgotten_patient_stays_forgotten_under_a_new_address(sqlite_clinic) -> None:
    fake = account()
    sync(sqlite_clinic, fake)
    assert sqlite_clinic.rebook("forget", "patient1001@example.org", "--yes").code == 0
    fake.touch("patients", 1001, email="new1001@example.org", updated_at=NOW + DAY)
    report = sync(sqlite_clinic, fake, now=NOW + 2 * DAY)
    assert "1001" not in dict(sqlite_clinic.rows(clients, "id", "email"))
    assert report.clients.forgotten == 1


def test_a_forgotten_address_under_a_new_patient_is_left_out_with_its_appointments(
    sqlite_clinic,
) -> None:
    """The person who asked, entered again as a new patient: counted as forgotten, not absent."""
    fake = account()
    sync(sqlite_clinic, fake)
    assert sqlite_clinic.rebook("forget", "patient1001@example.org", "--yes").code == 0
    fake.add_patient(id=2001, email="Patient1001@example.org", updated_at=NOW + DAY)
    fake.add_appointment(id=21, patient_id=2001, starts_at=NOW + 2 * DAY, appointment_type_id=1,
                         practitioner_id=1, updated_at=NOW + DAY)  # fmt: skip
    report = sync(sqlite_clinic, fake, now=NOW + 2 * DAY)
    assert "2001" not in dict(sqlite_clinic.rows(clients, "id", "email"))
    assert (report.clients.forgotten, report.visits.forgotten, report.left_out) == (1, 1, 0)
    fake.touch("patients", 2001, email="new2001@example.org", updated_at=NOW + 3 * DAY)
    report = sync(sqlite_clinic, fake, now=NOW + 4 * DAY)
    assert "2001" not in dict(sqlite_clinic.rows(clients, "id", "email"))


def test_a_changed_consent_rule_reads_everyone_again(sqlite_clinic) -> None:
    fake = account()
    sync(sqlite_clinic, fake, extra='consent = "unless-refused"')
    assert dict(sqlite_clinic.rows(clients, "id", "marketing_consent"))["1002"] is True
    report = sync(sqlite_clinic, fake, now=NOW + DAY)  # back to the default, "accepted"
    assert report.full
    assert dict(sqlite_clinic.rows(clients, "id", "marketing_consent"))["1002"] is False


def test_a_sync_that_began_earlier_does_not_write_over_a_later_one(sqlite_clinic) -> None:
    fake = account()
    sync(sqlite_clinic, fake, now=NOW)
    with pytest.raises(ClinikoError, match="a sync that began later"):
        sync(sqlite_clinic, fake, now=NOW - timedelta(minutes=1), full=True)


def test_a_listing_that_never_ends_is_stopped() -> None:
    from campaigns.cliniko.api import ClinikoApi
    from campaigns.config import Cliniko

    def answer(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        more = f"https://api.au1.cliniko.com/v1/patients?page={page + 1}"
        return httpx.Response(200, json={"patients": [{"id": 1}], "total_entries": 1,
                                         "links": {"next": more}})  # fmt: skip

    async def walk() -> int:
        settings = Cliniko(base_url="https://api.au1.cliniko.com/v1", api_key=_secret("k"))
        transport = httpx.MockTransport(answer)
        async with ClinikoApi(settings, "t (t@t.example)", transport=transport) as api:
            return len([page async for page in api.listing("patients")])

    with pytest.raises(ClinikoError, match="offers yet another page"):
        asyncio.run(walk())


def test_the_key_goes_only_over_https_and_is_trimmed(sqlite_clinic) -> None:
    sqlite_clinic.write_config(cliniko_table("http://api.au2.cliniko.com/v1"))
    done = sqlite_clinic.rebook("check", env=KEY)
    assert done.code == 2 and "would cross the network in clear; use https" in done.err
    sqlite_clinic.write_config(cliniko_table("https://api.au2.cliniko.com/v1"))
    done = sqlite_clinic.rebook("check", env={"REBOOK_SYNC__CLINIKO__API_KEY": "  "})
    assert (
        done.code == 2
        and "REBOOK_SYNC__CLINIKO__API_KEY (sync.cliniko.api_key): is empty" in done.err
    )
    settings = load_settings(sqlite_clinic.config)
    from campaigns.config import Cliniko

    assert Cliniko(api_key=_secret(' "abc-uk1"\n')).api_url == "https://api.uk1.cliniko.com/v1"
    assert settings.sync.cliniko.api_key is None
