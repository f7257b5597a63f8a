"""The fake Cliniko API itself: paging, filters, auth, armed trouble, the generated account."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from .fake_cliniko import ENDPOINTS, FakeCliniko, Periodic, Query, render, serving

UA = "rebook tests (tests@example.org)"
T0 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
APPOINTMENTS = "/v1/individual_appointments"


def client(fake: FakeCliniko, key: str | None = None, ua: str = UA) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fake.app), base_url="http://cliniko.test",
        auth=(key or fake.api_key, ""), headers={"User-Agent": ua, "Accept": "application/json"},
    )  # fmt: skip


async def crawl(fake: FakeCliniko, path: str, **params) -> tuple[list[dict], list[dict]]:
    """Every row of a list by following links.next, and each page's answer."""
    rows, pages = [], []
    async with client(fake) as http:
        url: str | None = path
        while url:
            answer = await http.get(url, params=params if url == path else None)
            assert answer.status_code == 200, answer.text
            page = answer.json()
            pages.append(page)
            rows += page[ENDPOINTS[path][0]]
            url = page["links"].get("next")
    return rows, pages


def get(fake: FakeCliniko, path: str, key: str | None = None, ua: str = UA, **params):
    async def one() -> httpx.Response:
        async with client(fake, key, ua) as http:
            return await http.get(path, params=params)

    return asyncio.run(one())


def a_clinic() -> FakeCliniko:
    fake = FakeCliniko()
    fake.add_appointment_type(id=2, name="Initial Consultation", duration_in_minutes=60)
    fake.add_appointment_type(id=3, name="Dry Needling", archived=True)
    fake.add_practitioner(id=7, first_name="Randy", last_name="Savage", label="Dr Randy")
    fake.add_practitioner(id=8, first_name="Andy", last_name="Savage", active=False)
    return fake


def test_paging_follows_next_to_the_end_and_sees_every_row_once():
    fake = FakeCliniko()
    for n, hours in enumerate([5, 1, 3, 3, 0, 6, 2]):  # created out of id order, one tie
        fake.add_patient(id=1001 + n, created_at=T0 + timedelta(hours=hours), updated_at=T0)
    query = {"per_page": 3, "q[]": "updated_at:>=2024-01-02T03:04:05Z"}
    rows, pages = asyncio.run(crawl(fake, "/v1/patients", **query))
    assert [r["id"] for r in rows] == ["1005", "1002", "1007", "1003", "1004", "1001", "1006"]
    assert [p["total_entries"] for p in pages] == [7, 7, 7]
    first, _, last = (p["links"] for p in pages)
    assert "previous" not in first and "next" not in last
    assert first["next"].startswith("http://cliniko.test/v1/patients?")
    assert httpx.URL(first["next"]).params.multi_items() == [
        ("per_page", "3"), ("q[]", "updated_at:>=2024-01-02T03:04:05Z"), ("page", "2")]  # fmt: skip
    assert httpx.URL(last["previous"]).params["page"] == "2"
    patient = rows[0]
    assert patient["links"]["self"] == "http://cliniko.test/v1/patients/1005"
    assert patient["email"] == "patient1005@example.org" and patient["archived_at"] is None
    assert patient["created_at"] == "2024-01-02T03:04:05Z" and patient["time_zone"] is None


def test_per_page_defaults_to_50_and_stops_at_100():
    fake = FakeCliniko()
    for n in range(120):
        fake.add_patient(id=2000 + n, created_at=T0)
    assert len(get(fake, "/v1/patients").json()["patients"]) == 50
    assert len(get(fake, "/v1/patients", per_page=100).json()["patients"]) == 100
    assert get(fake, "/v1/patients", per_page=100, page=2).json()["patients"][-1]["id"] == "2119"
    assert get(fake, "/v1/patients", per_page=100, page=3).json()["patients"] == []
    for bad in ({"per_page": 101}, {"per_page": 0}, {"page": "x"}, {"sort": "created_at"}):
        answer = get(fake, "/v1/patients", **bad)
        assert answer.status_code == 400 and answer.json()["message"], bad


def test_updated_at_filter_and_a_touched_row():
    fake = FakeCliniko()
    fake.add_patient(id=1, created_at=T0, updated_at=T0)
    fake.add_patient(id=2, created_at=T0, updated_at=T0 + timedelta(hours=1))

    def ids(*filters: str) -> list[str]:
        answer = get(fake, "/v1/patients", **{"q[]": list(filters)})
        assert answer.status_code == 200, answer.text
        return [p["id"] for p in answer.json()["patients"]]

    assert ids("updated_at:>2024-01-02T03:04:05Z") == ["2"]
    assert ids("updated_at:>=2024-01-02T03:04:05Z") == ["1", "2"]
    assert ids("updated_at:>2024-01-02T03:04:04.999Z", "updated_at:<2024-01-02T04:00:00Z") == ["1"]
    single = get(fake, "/v1/patients", q="updated_at:<=2024-01-02T03:04:05Z").json()["patients"]
    assert [p["id"] for p in single] == ["1"]
    fake.touch("patients", 1, updated_at=T0 + timedelta(hours=2), first_name="Renamed")
    assert ids("updated_at:>2024-01-02T03:04:05Z") == ["1", "2"]
    later = T0 + timedelta(hours=3)
    fake.touch("patients", 2, archived_at=later, updated_at=later)
    assert ids() == ["1"]
    assert fake.total("/v1/patients/archived", "updated_at:>2024-01-02T06:00:00Z") == 1
    for bad in ("updated_at:>2024-01-02", "updated_at:=2024-01-02T03:04:05Z",
                "updated_at:>2024-01-02T03:04:05+00:00", "archived_at:*", "email:=a@b.c", "nonsense"):  # fmt: skip
        answer = get(fake, "/v1/patients", **{"q[]": bad})
        assert answer.status_code == 400 and "message" in answer.json(), bad


def test_each_list_holds_its_own_rows_in_the_documented_shapes():
    fake = a_clinic()
    fake.add_patient(id=1, first_name="Ann", last_name="Lee", accepted_email_marketing=None)
    fake.add_patient(id=2, archived_at=T0, merged_at=T0, merged_with_patient_id=1)
    fake.add_patient(id=3, deleted_at=T0, email=None)
    for n, changes in enumerate([{}, {"cancelled_at": T0}, {"deleted_at": T0}], 10):
        fake.add_appointment(id=n, patient_id=1, starts_at=T0, appointment_type_id=2,
                             practitioner_id=7, **changes)  # fmt: skip
    lists = {path: get(fake, path).json() for path in ENDPOINTS}
    assert {path: [r.get("id") for r in page[ENDPOINTS[path][0]]] for path, page in lists.items()} == {
        "/v1/patients": ["1"], "/v1/patients/archived": ["2"], "/v1/patients/deleted": [None],
        APPOINTMENTS: ["10"], APPOINTMENTS + "/cancelled": ["11"], APPOINTMENTS + "/deleted": ["12"],
        "/v1/appointment_types": ["2"], "/v1/appointment_types/archived": ["3"],
        "/v1/practitioners": ["7"], "/v1/practitioners/inactive": ["8"], "/v1/businesses": ["1"],
    }  # fmt: skip
    v1, t0 = "http://cliniko.test/v1", "2024-01-02T03:04:05Z"
    deleted = lists["/v1/patients/deleted"]["patients"]
    assert deleted == [{"deleted_at": t0, "links": {"self": f"{v1}/patients/3"}}]
    archived = lists["/v1/patients/archived"]["patients"][0]
    assert archived["merged_with_patient"] == {"links": {"self": f"{v1}/patients/1"}}
    [visit] = lists[APPOINTMENTS]["individual_appointments"]
    assert "patient_id" not in visit and visit["patient_name"] == "Ann Lee"
    assert visit["patient"]["links"]["self"] == f"{v1}/patients/1"
    assert visit["appointment_type"]["links"]["self"] == f"{v1}/appointment_types/2"
    assert visit["practitioner"]["links"]["self"] == f"{v1}/practitioners/7"
    assert (visit["starts_at"], visit["ends_at"]) == (t0, "2024-01-02T04:04:05Z")
    assert (visit["cancelled_at"], visit["did_not_arrive"], visit["notes"]) == (None, False, None)
    [cancelled] = lists[APPOINTMENTS + "/cancelled"]["individual_appointments"]
    assert cancelled["cancelled_at"] == t0
    assert lists["/v1/practitioners"]["practitioners"][0]["label"] == "Dr Randy"
    assert "label" not in lists["/v1/practitioners/inactive"]["practitioners"][0]  # as documented
    assert lists["/v1/businesses"]["businesses"][0]["business_name"] == "Healthy Times"


def test_patient_id_filter_on_appointments():
    fake = a_clinic()
    for n in range(9):
        fake.add_appointment(id=100 + n, patient_id=1001 + n % 3, starts_at=T0 + timedelta(days=n),
                             appointment_type_id=2, practitioner_id=7, created_at=T0)  # fmt: skip
    filters = ["patient_id:=1001,1003", "starts_at:>2024-01-03T00:00:00Z"]
    found = get(fake, APPOINTMENTS, **{"q[]": filters}).json()["individual_appointments"]
    assert [a["id"] for a in found] == ["102", "103", "105", "106", "108"]
    for bad in ("patient_id:=x", "patient_id:>1001"):
        assert get(fake, APPOINTMENTS, q=bad).status_code == 400
    assert get(fake, "/v1/patients", q="patient_id:=1001").status_code == 400


def test_auth_user_agent_and_the_record_of_requests():
    fake = FakeCliniko(api_key="MS0xLWFiY2RlZg-au2")
    wrong = get(fake, "/v1/patients", key="MS0xLWFiY2RlZg-au3")
    assert wrong.status_code == 401 and "message" in wrong.json()
    assert get(fake, "/v1/patients", key="MS0xLWFiY2RlZg").status_code == 200  # no shard suffix
    assert get(fake, "/v1/patients", ua="python-httpx/0.28").status_code == 403

    async def bare() -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app)) as http:
            answer = await http.get("http://cliniko.test/v1/patients", headers={"User-Agent": UA})
            return answer.status_code

    assert asyncio.run(bare()) == 401
    assert get(fake, "/v1/nothing").status_code == 404
    assert [(r.path, r.status, r.authorization) for r in fake.requests] == [
        ("/v1/patients", 401, True), ("/v1/patients", 200, True), ("/v1/patients", 403, True),
        ("/v1/patients", 401, False), ("/v1/nothing", 404, True)]  # fmt: skip
    assert fake.requests[0].user_agent == UA and fake.requests[2].user_agent == "python-httpx/0.28"
    get(fake, APPOINTMENTS, per_page=5, **{"q[]": "patient_id:=1"})
    assert fake.requests[-1].params == {"per_page": ["5"], "q[]": ["patient_id:=1"]}


def test_rate_limit_answers_429_with_the_reset_time():
    fake = FakeCliniko()
    fake.rate_limit(times=2, retry_after=3)
    before = time.time()
    first, second, third = (get(fake, "/v1/patients") for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.headers["Retry-After"] == "3"
    assert before + 3 <= int(first.headers["X-RateLimit-Reset"]) <= math.ceil(time.time() + 3)


def test_a_failure_on_page_3_then_a_broken_page():
    fake = a_clinic()
    for n in range(7):
        fake.add_appointment(id=n + 1, patient_id=1, starts_at=T0, appointment_type_id=2,
                             practitioner_id=7, created_at=T0)  # fmt: skip
    fake.fail(path=APPOINTMENTS, page=3, status=500, times=1)
    statuses = [get(fake, APPOINTMENTS, per_page=2, page=page).status_code for page in (1, 2, 3, 3)]
    assert statuses == [200, 200, 500, 200]
    fake.fail(path=APPOINTMENTS, status=None, body=b'{"individual_appointments": [')
    broken = get(fake, APPOINTMENTS)
    assert broken.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        broken.json()
    assert get(fake, APPOINTMENTS).json()["total_entries"] == 7


def test_the_generated_account_pages_by_arithmetic():
    fake = FakeCliniko.generated(patients=100_000, appointments=1_000_000, seed=1, now=NOW)
    total = fake.total(APPOINTMENTS)
    assert 930_000 < total < 950_000
    assert 40_000 < fake.total(APPOINTMENTS + "/cancelled") < 60_000
    first = get(fake, APPOINTMENTS, per_page=100).json()
    assert first["total_entries"] == total
    assert first["individual_appointments"][0]["id"] == "10000000"
    pages = math.ceil(total / 100)
    last = get(fake, APPOINTMENTS, per_page=100, page=pages).json()
    assert "next" not in last["links"] and last["links"]["previous"].endswith(f"page={pages - 1}")
    rows = last["individual_appointments"]
    assert len(rows) == total - 100 * (pages - 1) and rows[-1]["id"] == "10999999"
    assert rows[-1]["starts_at"] > NOW.strftime("%Y-%m-%dT%H:%M:%SZ")  # a month ahead
    patients = get(fake, "/v1/patients", per_page=100).json()["patients"]
    assert patients[0]["id"] == "1000" and patients[0]["email"] == "client0@example.org"
    started = time.perf_counter()
    empty = get(fake, APPOINTMENTS, q="updated_at:>" + NOW.strftime("%Y-%m-%dT%H:%M:%SZ")).json()
    assert empty["total_entries"] == 0 and empty["individual_appointments"] == []
    assert time.perf_counter() - started < 0.5  # a scan of a million rows takes seconds
    assert fake.generated_updated_at < NOW
    with pytest.raises(TypeError):
        fake.add_patient(id=1)


@pytest.mark.parametrize("seed", [0, 5])
def test_the_generated_arithmetic_matches_a_scan(seed):
    fake = FakeCliniko.generated(patients=250, appointments=1_000, seed=seed, now=NOW)
    cut = fake.generated_updated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    either = [[], [f"updated_at:>={cut}"], [f"updated_at:>{cut}"],
              ["created_at:>2024-03-01T00:00:00Z", "created_at:<=2025-02-01T00:00:00.5Z"]]  # fmt: skip
    appointments_only = [["starts_at:>2025-06-01T00:00:00Z"], ["patient_id:=1003,1040,9999"],
                         ["starts_at:<=2025-06-01T00:00:00Z", "patient_id:=1005"]]  # fmt: skip
    for path, (kind, state) in ENDPOINTS.items():
        source = fake.sources[kind]
        if not isinstance(source, Periodic):
            continue
        for texts in either + (appointments_only if kind == "individual_appointments" else []):
            query = Query.parse(kind, texts)
            total, fetch = source.select(state, query)
            expected = [i for i in range(source.n) if holds(source.record(i), state, query)]
            assert fetch(0, 10**9) == expected and total == len(expected), (path, texts)
            assert expected or texts, path  # each list has rows
            assert fetch(3, 5) == expected[3:8]
        for i in source.select(state, Query())[1](0, 10**9):  # the fast text = the reference
            reference = render(kind, state, source.record(i), "http://h:1")
            assert json.loads(source.encode(i, state, "http://h:1")) == reference


def holds(record: dict, state: str, query: Query) -> bool:
    """The filters of ``query`` and the list ``state``, checked on one record."""
    lists = [name for name in ("deleted", "cancelled", "archived") if record.get(name + "_at")]
    if (lists[0] if lists else "active") != state:
        return False
    if query.patient_ids is not None and int(record["patient_id"]) not in query.patient_ids:
        return False
    moments = {name: datetime.fromisoformat(record[name]).timestamp() for name, _, _ in query.times}
    return all(
        {">": moments[name] > v, ">=": moments[name] >= v, "<": moments[name] < v,
         "<=": moments[name] <= v}[op]
        for name, op, v in query.times
    )  # fmt: skip


def test_serving_over_real_http():
    fake = a_clinic()
    fake.add_patient(id=1001)
    with serving(fake) as base_url:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        answer = httpx.get(
            f"{base_url}/patients", auth=(fake.api_key, ""), headers={"User-Agent": UA}
        )
        assert answer.status_code == 200
        assert answer.json()["patients"][0]["links"]["self"] == f"{base_url}/patients/1001"
        assert answer.json()["links"]["self"] == f"{base_url}/patients?page=1"
    assert fake.requests[-1].path == "/v1/patients"


def test_the_command_serves_a_generated_account_until_stopped():
    command = [sys.executable, "-m", "tests.fake_cliniko", "--patients", "10", "--appointments", "100",
               "--port", "0", "--api-key", "k-uk1"]  # fmt: skip
    root = Path(__file__).parents[1]
    server = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:") and line.rstrip().endswith("/v1")
        url = line.split()[-1] + "/individual_appointments"
        answer = httpx.get(url, auth=("k-uk1", ""), headers={"User-Agent": UA})
        expected = FakeCliniko.generated(patients=10, appointments=100).total(APPOINTMENTS)
        assert answer.status_code == 200 and answer.json()["total_entries"] == expected
    finally:
        server.terminate()
        assert server.wait(10) == 0  # SIGTERM is a clean stop
        server.stdout.close()
