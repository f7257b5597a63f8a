"""``rebook import``: streamed, validated, atomic per file, idempotent, on both backends."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import textwrap
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select

from campaigns.store.tables import client_tags, clients, suppressions, visits

from .conftest import REBOOK, run_on_terminal

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
        CLIENTS.replace("no,,Australia", "yes,sports,Australia") + "    4,new@example.com,,,,,,\n",
    )
    result = clinic.rebook("import", "clients", str(changed))
    assert "1 inserted, 1 updated, 2 unchanged, 0 rejected" in result.out
    assert ("2", "sports") in clinic.rows(client_tags, "client_id", "tag")


def test_a_visit_keeps_the_time_it_was_first_seen_and_unchanged_rows_stay_unchanged(clinic):
    clinic.rebook("import", "clients", str(clinic.write("clients.csv", CLIENTS)))
    before = datetime.now(UTC)
    first = clinic.rebook("import", "visits", str(clinic.write("visits.csv", VISITS)))
    assert "3 inserted, 0 updated, 0 unchanged" in first.out, first.err
    seen = dict(clinic.rows(visits, "id", "first_seen_at"))
    assert all(before <= moment <= datetime.now(UTC) for moment in seen.values())
    later = VISITS.replace("remedial-massage,booked", "remedial-massage,attended")
    later += "    v4,3,2026-12-02T10:00,remedial-massage,booked,\n"
    again = clinic.rebook("import", "visits", str(clinic.write("visits.csv", later)))
    assert "1 inserted, 1 updated, 2 unchanged, 0 rejected" in again.out, again.err
    now_seen = dict(clinic.rows(visits, "id", "first_seen_at"))
    assert {key: now_seen[key] for key in seen} == seen  # the update kept v3's date
    assert now_seen["v4"] > max(seen.values())
    same = clinic.rebook("import", "visits", str(clinic.write("visits.csv", later)))
    assert "0 inserted, 0 updated, 4 unchanged" in same.out


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
        CLIENTS + "    4,not-an-address,A,B,yes,,,\n    5,e@example.com,A,B,perhaps,,,\n",
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


# Hardening (issue 9): what a hostile but fair user found, and its siblings.

VISITS_HEADER = "id,client_id,starts_at,service,status,therapist\n"


def import_visits(clinic, body: str, *options: str):
    clinic.rebook("import", "clients", str(clinic.write("clients.csv", CLIENTS)))
    path = clinic.write("visits.csv", VISITS_HEADER + textwrap.dedent(body).lstrip("\n"))
    return clinic.rebook("import", "visits", str(path), *options)


def test_visit_times_outside_1900_to_2200_are_rejected_not_a_crash(clinic):
    result = import_visits(
        clinic,
        """
        v1,1,0001-01-01T00:00,back-pain-massage,attended,Sam
        v2,1,9999-12-31T23:59-05:00,back-pain-massage,attended,Sam
        v3,1,1899-12-31T23:59,back-pain-massage,attended,Sam
        v4,1,1900-01-01T00:00,back-pain-massage,attended,Sam
        v5,1,2200-12-31T23:59+14:00,back-pain-massage,booked,Sam
        """,
        "--skip-invalid",
    )
    assert result.code == 0 and "Traceback" not in result.err, result.err
    for line, text in [(2, "0001-01-01T00:00"), (3, "9999-12-31T23:59-05:00"),
                       (4, "1899-12-31T23:59")]:  # fmt: skip
        assert f"line {line}: starts_at '{text}' is not between the years 1900 and 2200" in (
            result.err
        )
    assert clinic.rows(visits, "id", "starts_at") == [
        ("v4", datetime(1899, 12, 31, 16, 0, tzinfo=UTC)),  # Perth was UTC+8 then too
        ("v5", datetime(2200, 12, 31, 9, 59, tzinfo=UTC)),
    ]


def test_a_year_out_of_range_fails_the_whole_file_with_exit_2(clinic):
    result = import_visits(clinic, "v1,1,9999-12-31T23:59-05:00,back-pain-massage,attended,\n")
    assert result.code == 2 and "Traceback" not in result.err
    assert "1 bad row(s), nothing imported" in result.err
    assert count(clinic, visits) == 0


@pytest.mark.parametrize("date_only", ["2026-03-14", "20260314", "2026-W11-5"])
def test_a_visit_time_that_is_only_a_date_is_rejected(sqlite_clinic, date_only):
    result = import_visits(sqlite_clinic, f"v1,1,{date_only},back-pain-massage,attended,Sam\n")
    assert result.code == 2
    assert (
        f"line 2: starts_at '{date_only}' is a date without a time; "
        "write it like 2026-03-14T09:30" in result.err
    )
    assert count(sqlite_clinic, visits) == 0


def test_a_byte_that_is_not_utf8_is_reported_on_its_own_line(sqlite_clinic):
    """The decoder reads a buffer ahead of the CSV reader: the line must still be exact."""
    rows = b"".join(b"%d,person%d@example.com\r\n" % (n, n) for n in range(2, 2501))
    path = sqlite_clinic.folder / "clients.csv"
    path.write_bytes(b"id,email\r\n" + rows + b"2501,jos\xe9@example.com\r\n2502,b@example.com\r\n")
    result = sqlite_clinic.rebook("import", "clients", str(path))
    assert result.code == 2
    assert "clients.csv: line 2501: not UTF-8 text (byte 0xe9" in result.err
    assert count(sqlite_clinic, clients) == 0


def test_a_quoted_cell_over_several_lines_still_counts_lines(sqlite_clinic):
    path = sqlite_clinic.folder / "clients.csv"
    path.write_bytes(b'id,email,first_name\n1,a@example.com,"two\nlines"\n2,b@example.com,\xff\n')
    result = sqlite_clinic.rebook("import", "clients", str(path))
    assert result.code == 2 and "line 4: not UTF-8 text (byte 0xff" in result.err


def test_a_utf16_export_says_how_to_save_it(sqlite_clinic):
    path = sqlite_clinic.folder / "clients.csv"
    path.write_bytes("id,email\r\n1,a@example.com\r\n".encode("utf-16"))
    result = sqlite_clinic.rebook("import", "clients", str(path))
    assert result.code == 2
    assert "line 1: not UTF-8 text (byte 0xff" in result.err
    assert 'it looks like UTF-16: save it as "CSV UTF-8"' in result.err


def test_a_file_of_nul_bytes_gets_a_short_escaped_excerpt(sqlite_clinic):
    path = sqlite_clinic.folder / "clients.csv"
    path.write_bytes(b"\0" * 4096)
    result = sqlite_clinic.rebook("import", "clients", str(path))
    assert result.code == 2 and "Traceback" not in result.err
    assert "\0" not in result.err
    assert "line 1: missing column(s) id, email" in result.err
    assert "'\\x00\\x00" in result.err and "(4096 characters)" in result.err
    assert len(result.err) < 300


def test_every_echoed_cell_is_escaped_and_cut_short(sqlite_clinic):
    long = "x" * 300
    path = sqlite_clinic.write(
        "clients.csv",
        f"""
        id,email,first_name,last_name,marketing_consent,tags,timezone
        1,{long},,,,,
        2,a@example.com,,,maybe\u202e,,
        3,b@example.com,,,,,Europe/{"y" * 50}
        """,
    )
    result = sqlite_clinic.rebook("import", "clients", str(path))
    assert result.code == 2
    assert f"line 2: email '{'x' * 40}'… (300 characters) is not a valid address" in result.err
    assert "line 3: marketing_consent 'maybe\\u202e' is not one of" in result.err
    assert "line 4: timezone 'Europe/yyy" in result.err and "(57 characters)" in result.err
    assert "\u202e" not in result.err
    assert max(len(line) for line in result.err.splitlines()) < 400


def test_a_duplicate_id_in_one_file_names_both_lines(clinic):
    path = clinic.write(
        "clients.csv",
        CLIENTS + "    2,other@example.com,Jack,Other,yes,,,\n",
    )
    result = clinic.rebook("import", "clients", str(path))
    assert result.code == 2
    assert "line 5: id '2' is already on line 3; each id may appear once" in result.err
    assert count(clinic, clients) == 0
    result = clinic.rebook("import", "clients", str(path), "--skip-invalid")
    assert result.code == 0 and "3 inserted, 0 updated, 0 unchanged, 1 rejected" in result.out
    assert ("2", "jack@example.com") in clinic.rows(clients, "id", "email")  # the first one


def test_duplicate_visit_ids_far_apart_are_caught(sqlite_clinic):
    """Rows are written in batches of 2,000; a duplicate in a later batch is still one."""
    body = "".join(f"v{n},1,2026-03-14T09:30,massage,attended,\n" for n in range(5000))
    result = import_visits(sqlite_clinic, body + "v7,2,2026-03-15T09:30,massage,attended,\n")
    assert result.code == 2
    assert "1 bad row(s)" in result.err
    assert "line 5002: id 'v7' is already on line 9; each id may appear once" in result.err
    assert count(sqlite_clinic, visits) == 0


def test_visits_before_clients_list_20_lines_and_say_what_to_do(sqlite_clinic):
    body = "".join(f"v{n},c{n},2026-03-14T09:30,massage,attended,\n" for n in range(1749))
    sqlite_clinic.write("visits.csv", VISITS_HEADER + body)
    result = sqlite_clinic.rebook("import", "visits", "visits.csv")
    assert result.code == 2
    lines = result.err.splitlines()
    assert lines[0] == (
        "error: visits.csv: 1749 bad row(s), nothing imported (--skip-invalid imports the rest):"
    )
    assert lines[1] == "  visits.csv: line 2: client_id 'c0' is not an imported client"
    assert lines[20] == "  visits.csv: line 21: client_id 'c19' is not an imported client"
    assert lines[21] == "  … and 1729 more bad row(s)"
    assert lines[22] == (
        "1749 of the 1749 bad row(s) name a client that is not imported: "
        "import the clients file first (rebook import clients FILE)"
    )
    assert len(lines) == 23

    skipped = sqlite_clinic.rebook("import", "visits", "visits.csv", "--skip-invalid")
    assert skipped.code == 0 and "0 inserted, 0 updated, 0 unchanged, 1749 rejected" in skipped.out
    warnings = skipped.err.splitlines()
    assert len(warnings) == 22
    assert warnings[20] == "warning: visits.csv: skipped 1729 more bad row(s)"
    assert "import the clients file first" in warnings[21]


def test_a_few_unknown_clients_get_no_hint(sqlite_clinic):
    result = import_visits(
        sqlite_clinic,
        """
        v1,99,2026-03-14T09:30,back-pain-massage,attended,Sam
        v2,1,2026-03-14,back-pain-massage,attended,Sam
        """,
    )
    assert result.code == 2 and "is not an imported client" in result.err
    assert "import the clients file first" not in result.err


def test_two_imports_at_once_report_exact_counts(clinic):
    """Two real processes import the same file together: each says what it did."""
    body = "".join(f"{n},person{n}@example.com,A,B,yes,tag{n % 7},\n" for n in range(20_000))
    path = clinic.write("clients.csv", "id,email,first_name,last_name,marketing_consent,tags,"
                        "timezone\n" + body)  # fmt: skip
    clinic.engine().dispose()  # the schema exists before both start
    started = [start_rebook(clinic, "import", "clients", str(path)) for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in started]
    assert [process.returncode for process in started] == [0, 0], outputs
    summaries = sorted(out.strip().split(": ", 1)[1] for out, _ in outputs)
    assert summaries == [
        "imported 20000 clients: 0 inserted, 0 updated, 20000 unchanged, 0 rejected",
        "imported 20000 clients: 20000 inserted, 0 updated, 0 unchanged, 0 rejected",
    ]
    assert count(clinic, clients) == 20_000
    assert len(clinic.rows(client_tags, "client_id", "tag")) == 20_000


def test_a_column_twice_in_the_header_is_refused(sqlite_clinic):
    path = sqlite_clinic.write("clients.csv", "id,Email,email ,notes,notes\n1,a@x.com,b@x.com,,\n")
    result = sqlite_clinic.rebook("import", "clients", str(path))
    assert result.code == 2
    assert "clients.csv: line 1: column(s) email appear more than once" in result.err
    assert count(sqlite_clinic, clients) == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "line 1: missing column(s) id, email; a clients file needs id, email "
              "(found: an empty file)"),
        (b"\xef\xbb\xbf", "(found: an empty file)"),
        (b"id\r\n1\r\n", "line 1: missing column(s) email"),
        (b"id,email\r\n1,\"a@example.com\r\n", "line 2: unexpected end of data"),
        (b"id,email,notes\r\n1,a@example.com,\"" + b"n" * 200_000 + b"\"\r\n",
         "line 2: field larger than field limit (131072)"),
    ],
)  # fmt: skip
def test_file_level_mistakes_exit_2_and_write_nothing(sqlite_clinic, content, expected):
    path = sqlite_clinic.folder / "clients.csv"
    path.write_bytes(b"id,email\r\n0,zero@example.com\r\n")
    assert sqlite_clinic.rebook("import", "clients", str(path)).code == 0
    path.write_bytes(content)
    result = sqlite_clinic.rebook("import", "clients", str(path))
    assert result.code == 2 and "Traceback" not in result.err
    assert expected in result.err
    assert len(result.err) < 400
    assert clinic_ids(sqlite_clinic) == ["0"]


def clinic_ids(clinic) -> list[str]:
    return [client_id for (client_id,) in clinic.rows(clients, "id")]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("a b", "id 'a b' contains a space or an invisible character"),
        ("a\u00a0b", "id 'a\\xa0b' contains a space or an invisible character"),
        ("a\u200bb", "id 'a\\u200bb' contains a space or an invisible character"),
        ("a\tb", "id contains a line break or a control character"),
        ('"a\nb"', "id contains a line break or a control character"),
        ("x" * 65, "id is longer than 64 characters"),
    ],
)
def test_an_id_with_spaces_or_control_characters_is_a_bad_row(sqlite_clinic, cell, expected):
    path = sqlite_clinic.write("clients.csv", f"id,email\n{cell},a@example.com\n")
    result = sqlite_clinic.rebook("import", "clients", str(path))
    assert result.code == 2 and f"line 2: {expected}" in result.err
    assert count(sqlite_clinic, clients) == 0


def test_a_visit_client_id_with_a_space_is_a_bad_row(sqlite_clinic):
    result = import_visits(sqlite_clinic, "v1,1 ,2026-03-14T09:30,massage,attended,\nv2,1 2,"
                           "2026-03-14T09:30,massage,attended,\n")  # fmt: skip
    assert result.code == 2
    assert "line 3: client_id '1 2' contains a space" in result.err
    assert "line 2" not in result.err  # cells are trimmed: '1 ' is client 1


@pytest.mark.parametrize(
    "zone", ["Australia", "australia/perth", "localtime", "Factory", "../../etc/passwd",
             "/usr/share/zoneinfo/UTC", "Australia/Perth/", "posixrules", "right/UTC"],
)  # fmt: skip
def test_a_weird_timezone_is_a_bad_row(sqlite_clinic, zone):
    path = sqlite_clinic.write("clients.csv", f"id,email,timezone\n1,a@example.com,{zone}\n")
    result = sqlite_clinic.rebook("import", "clients", str(path))
    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert f"line 2: timezone {zone!r} is not an IANA name like 'Australia/Perth'" in result.err
    assert count(sqlite_clinic, clients) == 0


def start_rebook(clinic, *args: str) -> subprocess.Popen:
    """``rebook`` started and left running, for tests that need two at once."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REBOOK_")}
    return subprocess.Popen([str(REBOOK), *args], cwd=clinic.folder, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_a_wide_header_without_the_columns_lists_only_the_first_20(sqlite_clinic):
    header = ",".join(f"column{n}" for n in range(500))
    path = sqlite_clinic.write("clients.csv", header + "\n")
    result = sqlite_clinic.rebook("import", "clients", str(path))
    assert result.code == 2
    assert "'column19', …)" in result.err and "column20" not in result.err


@pytest.mark.timeout(100)
def test_an_import_that_waits_too_long_for_sqlite_says_so(sqlite_clinic):
    """Another writer holding SQLite's lock past the busy timeout: a clear error, not a traceback."""
    path = sqlite_clinic.write("clients.csv", CLIENTS)
    assert sqlite_clinic.rebook("import", "clients", str(path)).code == 0
    holder = sqlite3.connect(sqlite_clinic.folder / "rebook.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = sqlite_clinic.rebook("import", "clients", str(path))
    finally:
        holder.rollback()
        holder.close()
    assert result.code == 2 and "Traceback" not in result.err
    assert "clients.csv: nothing imported: the database stayed locked for 30 s" in result.err


TAGGED = "id,email,first_name,last_name,marketing_consent,tags\n"


def test_a_row_with_fewer_cells_than_the_header_is_a_bad_row(clinic):
    path = clinic.write(
        "clients.csv", TAGGED + "T1,t1@example.com,T,One,yes,\nT4,t4@example.com,T,Four\n"
    )
    result = clinic.rebook("import", "clients", str(path))
    assert result.code == 2 and "Traceback" not in result.err
    assert "line 3: 4 cell(s) where the header has 6 column(s)" in result.err
    assert count(clinic, clients) == 0
    skipped = clinic.rebook("import", "clients", str(path), "--skip-invalid")
    assert "1 inserted, 0 updated, 0 unchanged, 1 rejected" in skipped.out
    assert clinic_ids(clinic) == ["T1"]
    # a comma closing the header is no column: a row need not have a cell for it
    path.write_text(TAGGED.replace("\n", ",\n") + "T5,t5@example.com,T,Five,yes,vip\n")
    assert clinic.rebook("import", "clients", str(path)).code == 0


def test_a_row_with_more_cells_than_the_header_is_a_bad_row_unless_they_are_empty(clinic):
    """An unquoted comma in a name moves every cell after it: consent would read a surname."""
    path = clinic.write("clients.csv", TAGGED + "T1,t1@example.com,Smith, Jo,One,yes,vip\n"
                        "T2,t2@example.com,T,Two,yes,vip,,\n")  # fmt: skip
    result = clinic.rebook("import", "clients", str(path))
    assert result.code == 2 and "line 2: 7 cells where the header has 6 column(s)" in result.err
    skipped = clinic.rebook("import", "clients", str(path), "--skip-invalid")
    assert skipped.code == 0 and clinic_ids(clinic) == ["T2"]


@pytest.mark.parametrize(
    ("last_line", "expected"),
    [
        ("T2,t2@example.com,T,Two,yes,do-not-con",
         "line 3, the last, ends without a line break, so its last cell (tags 'do-not-con') may "
         "be cut: the file is still being written, or was cut short; nothing imported"),
        ("T2,t2@example.com,T,Two,yes,", "its last cell (tags '') may be cut"),
        ("T2,t2@example.com,T,Two,yes,\"do-not-con", "line 3: unexpected end of data"),
        ("T2,t2@example.com,T,Two,yes,do-not-con\"", "its last cell (tags 'do-not-con\"')"),
        ("T4,t4@example.com,T,Four",
         "line 3, the last, ends without a line break and has 4 of the header's 6 cells: the "
         "file is still being written, or was cut short; nothing imported"),
    ],
)  # fmt: skip
def test_a_last_line_cut_short_imports_nothing(sqlite_clinic, last_line, expected):
    """The export still being saved when it is read: its last cell may be cut, so none of it goes in."""
    path = sqlite_clinic.write(
        "clients.csv", TAGGED + "T2,t2@example.com,T,Two,yes,do-not-contact\n"
    )
    assert sqlite_clinic.rebook("import", "clients", str(path)).code == 0
    path.write_text(TAGGED + "T3,t3@example.com,T,Three,yes,\n" + last_line, encoding="utf-8")
    for options in ((), ("--skip-invalid",), ("--dry-run",)):
        result = sqlite_clinic.rebook("import", "clients", str(path), *options)
        assert result.code == 2 and "Traceback" not in result.err
        assert expected in result.err
    assert sqlite_clinic.rows(clients, "id", "tags") == [("T2", "do-not-contact")]


@pytest.mark.parametrize(
    "content",
    [
        TAGGED
        + 'T2,t2@example.com,T,Two,yes,"do-not-contact"',  # the last cell closed by its quote
        TAGGED + '"T2","t2@example.com","T","Two","yes","do-not-contact"',  # every cell quoted
        TAGGED.replace("tags", "tags,notes") + "T2,t2@example.com,T,Two,yes,do-not-contact,likes t",
        TAGGED.replace("\n", ",\n") + "T2,t2@example.com,T,Two,yes,do-not-contact,",
        TAGGED + "T2,t2@example.com,T,Two,yes,do-not-contact\r\n\r\n",
        TAGGED.replace("\n", "\r") + "T2,t2@example.com,T,Two,yes,do-not-contact\r",  # old Mac
    ],
)
def test_a_last_line_without_a_line_break_that_is_whole_is_imported(sqlite_clinic, content):
    path = sqlite_clinic.folder / "clients.csv"
    path.write_bytes(content.encode())
    result = sqlite_clinic.rebook("import", "clients", str(path))
    assert result.code == 0, result.err
    assert "1 inserted" in result.out
    assert sqlite_clinic.rows(clients, "id", "tags") == [("T2", "do-not-contact")]
