"""``rebook import``: streamed, validated, atomic per file, idempotent, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, insert, select

from campaigns.store.tables import client_tags, clients, suppressions, visits

from .conftest import run_on_terminal

CLIENTS = """
    id,email,first_name,last_name,marketing_consent,tags,timezone,notes
    1,Olivia@Example.com,Olivia,Smith,yes,Back-Pain; VIP,,likes tea
    2,jack@example.com,Jack,Nguyễn,no,,Australia/Sydney,
    3,zoe@example.com,Zoë,O'Brien,1,neck-pain,,
"""
VISITS = """
    id,client_id,starts_at,service,status,therapist
    v1,1,2026-03-14T09:30,back-pain-massage,attended,Sam
    v2,1,2026-03-21T09:30+00:00,back-pain-massage,Attended,Sam
    v3,2,2026-12-01T10:00,remedial-massage,booked,
"""


def count(clinic, table):
    return len(clinic.rows(table, *[c.name for c in table.primary_key]))


def test_clients_import_and_normalise(clinic):
    path = clinic.write("clients.csv", CLIENTS)
    result = clinic.rebook("import", "clients", str(path))
    assert result.code == 0, result.err
    assert result.out.strip().endswith(
        "imported 3 clients: 3 inserted, 0 updated, 0 unchanged, 0 rejected"
    )
    assert result.err == ""  # no progress bar when piped
    assert clinic.rows(clients, "id", "email", "marketing_consent", "tags") == [
        ("1", "olivia@example.com", True, "back-pain;vip"),
        ("2", "jack@example.com", False, ""),
        ("3", "zoe@example.com", True, "neck-pain"),
    ]
    assert clinic.rows(client_tags, "client_id", "tag") == [
        ("1", "back-pain"),
        ("1", "vip"),
        ("3", "neck-pain"),
    ]


def test_importing_twice_changes_nothing_and_changes_are_counted(clinic):
    path = clinic.write("clients.csv", CLIENTS)
    clinic.rebook("import", "clients", str(path))
    again = clinic.rebook("import", "clients", str(path))
    assert "0 inserted, 0 updated, 3 unchanged, 0 rejected" in again.out
    changed = clinic.write(
        "clients.csv",
        CLIENTS.replace("no,,Australia", "yes,sports,Australia") + "    4,new@example.com,,,,,\n",
    )
    result = clinic.rebook("import", "clients", str(changed))
    assert "1 inserted, 1 updated, 2 unchanged, 0 rejected" in result.out
    assert ("2", "sports") in clinic.rows(client_tags, "client_id", "tag")


def test_visit_times_without_offset_are_clinic_local(clinic):
    clinic.rebook("import", "clients", str(clinic.write("clients.csv", CLIENTS)))
    result = clinic.rebook("import", "visits", str(clinic.write("visits.csv", VISITS)))
    assert "3 inserted" in result.out, result.err
    found = dict(
        (
            (visit_id, (at, status))
            for visit_id, at, status in clinic.rows(visits, "id", "starts_at", "status")
        )
    )
    assert found["v1"] == (datetime(2026, 3, 14, 1, 30, tzinfo=UTC), "attended")  # Perth is UTC+8
    assert found["v2"] == (datetime(2026, 3, 21, 9, 30, tzinfo=UTC), "attended")


def test_a_file_with_bad_rows_imports_nothing_and_names_every_line(clinic):
    clinic.rebook("import", "clients", str(clinic.write("clients.csv", CLIENTS)))
    bad = clinic.write(
        "visits.csv",
        """
        id,client_id,starts_at,service,status,therapist
        v1,1,2026-03-14T09:30,back-pain-massage,attended,Sam
        v2,1,14/03/2026,back-pain-massage,attended,Sam
        v3,99,2026-03-14T09:30,back-pain-massage,attended,Sam
        v4,1,2026-03-14T09:30,back-pain-massage,maybe,Sam
        ,1,2026-03-14T09:30,back-pain-massage,attended,Sam
        """,
    )
    result = clinic.rebook("import", "visits", str(bad))
    assert result.code == 2
    assert "Traceback" not in result.err
    assert "visits.csv: 4 bad row(s), nothing imported" in result.err
    assert "line 3: starts_at '14/03/2026' is not an ISO 8601 time" in result.err
    assert "line 4: client_id '99' is not an imported client" in result.err
    assert "line 5: status 'maybe' is not one of booked, attended, cancelled, no-show" in result.err
    assert "line 6: id is empty" in result.err
    assert count(clinic, visits) == 0


def test_skip_invalid_imports_the_rest_and_reports(clinic):
    bad = clinic.write(
        "clients.csv",
        CLIENTS + "    4,not-an-address,A,B,yes,,\n    5,e@example.com,A,B,perhaps,,\n",
    )
    result = clinic.rebook("import", "clients", str(bad), "--skip-invalid")
    assert result.code == 0
    assert "3 inserted, 0 updated, 0 unchanged, 2 rejected" in result.out
    assert "line 5: email 'not-an-address' is not a valid address" in result.err
    assert "line 6: marketing_consent 'perhaps' is not one of true/false, yes/no, 1/0" in result.err
    assert count(clinic, clients) == 3


def test_dry_run_counts_and_writes_nothing(clinic):
    result = clinic.rebook(
        "import", "clients", str(clinic.write("clients.csv", CLIENTS)), "--dry-run"
    )
    assert "would import 3 clients: 3 inserted" in result.out
    assert count(clinic, clients) == 0


def test_suppressed_addresses_stay_suppressed(clinic):
    engine = clinic.engine()
    with engine.begin() as connection:
        connection.execute(
            insert(suppressions).values(
                address="olivia@example.com", reason="unsubscribed", created_at=datetime.now(UTC)
            )
        )
    result = clinic.rebook("import", "clients", str(clinic.write("clients.csv", CLIENTS)))
    assert "(1 suppressed address(es) stay suppressed)" in result.out
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(suppressions)).scalar() == 1
    engine.dispose()


def test_file_level_problems_are_clear(sqlite_clinic):
    missing = sqlite_clinic.write("visits.csv", "id,client,when\n1,2,3\n")
    result = sqlite_clinic.rebook("import", "visits", str(missing))
    assert result.code == 2
    assert (
        "visits.csv: line 1: missing column(s) client_id, starts_at, service, status" in result.err
    )
    latin1 = sqlite_clinic.folder / "latin1.csv"
    latin1.write_bytes("id,email\n1,jos\xe9@example.com\n".encode("latin-1"))
    result = sqlite_clinic.rebook("import", "clients", str(latin1))
    assert result.code == 2 and "not UTF-8 text" in result.err
    result = sqlite_clinic.rebook("import", "clients", "nowhere.csv")
    assert result.code == 2 and "nowhere.csv: cannot open" in result.err


def test_excel_byte_order_mark_is_accepted(sqlite_clinic):
    path = sqlite_clinic.folder / "bom.csv"
    path.write_bytes("\ufeffid,email\r\n1,a@example.com\r\n".encode())
    result = sqlite_clinic.rebook("import", "clients", str(path))
    assert result.code == 0 and "1 inserted" in result.out, result.err


def test_a_terminal_sees_a_progress_bar(sqlite_clinic):
    """stderr on a pseudo-terminal gets Rich's bar; the summary still goes to stdout."""
    path = sqlite_clinic.write("clients.csv", CLIENTS)
    done, drawn = run_on_terminal("import", "clients", str(path), cwd=sqlite_clinic.folder)
    assert done.returncode == 0
    assert "3 inserted" in done.stdout
    assert b"importing clients.csv" in drawn
