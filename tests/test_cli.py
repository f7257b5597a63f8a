"""The ``rebook`` command as a clinic owner uses it: init, check, segment."""

from __future__ import annotations

import json
import os

import pytest

from campaigns import resources

from .conftest import run_rebook
from .smtpd import free_port


def test_init_with_sample_data_gives_a_clinic_where_every_segment_has_members(tmp_path):
    result = run_rebook("init", "demo", "--sample-data", cwd=tmp_path)
    assert result.code == 0, result.err
    demo = tmp_path / "demo"
    assert (demo / "config.toml").read_text() == (resources.example_config().read_text())
    for kind in ("clients", "visits"):
        imported = run_rebook("import", kind, f"exports/{kind}.csv", cwd=demo)
        assert imported.code == 0 and "0 rejected" in imported.out, imported.err
    free = {"REBOOK_WEB__LISTEN": f"127.0.0.1:{free_port()}"}  # 8080 may be taken here
    check = run_rebook("check", cwd=demo, env=free)
    assert check.code == 0, check.err
    assert check.err == ""  # no warnings: every service and tag of the example exists
    for name in ("lapsed-back-pain", "back-pain-readers", "appointment-soon"):
        counted = run_rebook("segment", name, "--count", cwd=demo)
        assert counted.code == 0 and int(counted.out) > 0, (name, counted.out, counted.err)


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "config.toml").write_text("mine")
    result = run_rebook("init", "demo", "--sample-data", cwd=tmp_path)
    assert result.code == 2
    assert "config.toml: already exists" in result.err
    assert (tmp_path / "demo" / "config.toml").read_text() == "mine"
    assert not (tmp_path / "demo" / "exports").exists()


def test_init_templates_copies_the_defaults(tmp_path):
    result = run_rebook("init", "demo", "--templates", cwd=tmp_path)
    assert result.code == 0, result.err
    copied = tmp_path / "demo" / "templates"
    shipped = resources.default_templates()
    names = sorted(str(p.relative_to(shipped)) for p in shipped.rglob("*") if p.is_file())
    assert names and names == sorted(
        str(p.relative_to(copied)) for p in copied.rglob("*") if p.is_file()
    )


SEGMENTS = """
[segments.lapsed]
services = ["massage"]
last_visit_older_than = "6w"
booked = false

[segments.vip]
tags_any = ["vip"]
"""


def sample(clinic):
    clinic.write_config(SEGMENTS)
    clinic.write("clients.csv", """
        id,email,first_name,last_name,marketing_consent,tags
        1,a@example.com,Ann,Lee,yes,vip
        2,b@example.com,Bo,Tran,no,
        3,c@example.com,Cy,Ngata,yes,
    """)  # fmt: skip
    clinic.write("visits.csv", """
        id,client_id,starts_at,service,status
        v1,1,2020-01-01T10:00,massage,attended
        v2,2,2020-01-01T10:00,massage,attended
        v3,2,2099-01-01T10:00,massage,booked
        v4,3,2020-01-01T10:00,massage,cancelled
    """)  # fmt: skip
    for kind in ("clients", "visits"):
        assert clinic.rebook("import", kind, f"{kind}.csv").code == 0


def test_segment_count_table_and_json(sqlite_clinic):
    sample(sqlite_clinic)
    assert sqlite_clinic.rebook("segment", "lapsed", "--count").out == "1\n"
    table = sqlite_clinic.rebook("segment", "lapsed")
    assert table.code == 0
    assert (
        "lapsed: 1 client(s)" in table.out
        and "Ann Lee" in table.out
        and "2020-01-01 10:00" in table.out
    )
    data = json.loads(sqlite_clinic.rebook("segment", "lapsed", "--json").out)
    assert data["count"] == 1
    assert data["members"][0] | {"last_visit": None} == {
        "id": "1", "email": "a@example.com", "first_name": "Ann", "last_name": "Lee",
        "marketing_consent": True, "tags": ["vip"], "last_visit": None, "next_visit": None,
    }  # fmt: skip
    assert data["members"][0]["last_visit"] == "2020-01-01T02:00:00+00:00"  # 10:00 in Perth


def test_segment_limit(sqlite_clinic):
    sample(sqlite_clinic)
    sqlite_clinic.write_config(SEGMENTS + "\n[segments.everyone]\n")
    limited = sqlite_clinic.rebook("segment", "everyone", "--limit", "2")
    assert "everyone: 3 client(s), first 2" in limited.out
    assert (
        len(json.loads(sqlite_clinic.rebook("segment", "everyone", "--json").out)["members"]) == 3
    )


def test_unknown_segment_is_a_usage_error(sqlite_clinic):
    sample(sqlite_clinic)
    result = sqlite_clinic.rebook("segment", "lapsd")
    assert result.code == 2
    assert "no segment named 'lapsd' (defined: lapsed, vip)" in result.err


def test_check_flags_services_and_tags_no_data_has(sqlite_clinic):
    sample(sqlite_clinic)
    sqlite_clinic.write_config(
        SEGMENTS.replace('["massage"]', '["masage"]').replace('["vip"]', '["VIP-gold"]')
    )
    result = sqlite_clinic.rebook("check")
    assert result.code == 0
    assert "segments.lapsed: service 'masage' appears in no imported visit" in result.err
    assert "segments.vip: tag 'VIP-gold' is on no imported client" in result.err


def test_help_shows_an_example_for_every_command(sqlite_clinic):
    for command in (["init"], ["check"], ["import", "clients"], ["import", "visits"], ["segment"]):
        result = sqlite_clinic.rebook(*command, "--help")
        assert result.code == 0 and "rebook " in result.out.split("Example", 1)[1], command


ODD_ARGUMENTS = [
    (("plan", "--from", "9999-12-31T23:59"), "between the years 1971 and 2200"),
    (("plan", "--from", "0001-01-01T00:00"), "between the years 1971 and 2200"),
    (("plan", "--from", "2026-13-01T00:00"), "is not a local time like"),
    (("plan", "--runs", "0"), "--runs"),
    (("plan", "--runs", "-1"), "--runs"),
    (("plan", "--runs", "99999999999999999999"), "--runs"),
    (("segment", "lapsed", "--limit", "99999999999999999999"), "--limit"),
    (("segment", "lapsed", "--limit", "-1"), "--limit"),
    (("segment", ""), "no segment named ''"),
    (("report", "--html", ""), "'--html': is empty"),
    (("report", "--since", "99999999w"), "at most 36500d"),
    (("report", "--since", "-5d"), "--since"),
    (("report", "--campaign", ""), "no campaign named ''"),
    (("history", ""), "EMAIL is empty"),
    (("preview", "book", "--client", "@@"), "no client has the email address '@@'"),
    (("preview", "book", "--format", "pdf"), "--format"),
    (("send", ""), "no campaign named ''"),
    (("unsubscribe", ""), "email is empty"),
    (("forget", "", "--yes"), "email is empty"),
    (("import", "clients", ""), ". is not a regular file but a folder"),
    (("import", "clients", "/dev/zero"), "/dev/zero is not a regular file but a device"),
    (("import", "visits", "pipe.csv"), "pipe.csv is not a regular file but a FIFO"),  # never waited on
    (("--config", "", "check"), ". is not a regular file but a folder: expected a config file"),
    (("--config", "/proc/self/mem", "check"), "/proc/self/mem: cannot read: Input/output error"),
    (("init", ""), "'FOLDER': is empty"),
    (("init", "/proc/newclinic"), "cannot make the folder /proc/newclinic"),
    (("init", "n" * 300), "cannot make the folder nnn"),
    (("init", "/dev/null/clinic"), "cannot make the folder /dev/null/clinic: Not a directory"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "said"), ODD_ARGUMENTS, ids=lambda a: " ".join(a)[:40])
def test_odd_arguments_get_a_message_and_exit_2_never_a_traceback(sqlite_clinic, args, said):
    sample(sqlite_clinic)
    sqlite_clinic.write_config(
        SEGMENTS + "[campaigns.book]\nsegment = 'lapsed'\nsubject = 'Hi'\n"
        "template = 'reminders/book-next-massage'\nschedule = 'every 36500d'\n"
    )
    os.mkfifo(sqlite_clinic.folder / "pipe.csv")
    result = sqlite_clinic.rebook(*args)
    assert result.code == 2, (result.out, result.err)
    assert "Traceback" not in result.err and said in result.err


def test_plan_lists_the_runs_that_fit_before_the_calendar_ends(sqlite_clinic):
    sqlite_clinic.write_config(
        "[segments.all]\n[campaigns.rare]\nsegment = 'all'\nsubject = 'Hi'\n"
        "template = 'reminders/book-next-massage'\nschedule = 'every 36500d'\n"
    )
    result = sqlite_clinic.rebook("plan", "--runs", "1000", "--json")
    assert result.code == 0, result.err
    [rare] = json.loads(result.out)["campaigns"]
    assert 70 < len(rare["runs"]) < 81 and rare["runs"][-1]["at"].startswith("99")


def test_init_writes_nothing_when_a_file_cannot_be_written(tmp_path):
    """templates is a file in the way of the copies: config.toml is not left behind either."""
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "templates").write_text("mine")
    result = run_rebook("init", "demo", "--templates", "--sample-data", cwd=tmp_path)
    assert result.code == 2 and "Traceback" not in result.err
    assert "cannot write" in result.err
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["templates"]


def test_init_never_writes_through_a_dangling_link(tmp_path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "config.toml").symlink_to(tmp_path / "elsewhere.toml")
    result = run_rebook("init", "demo", cwd=tmp_path)
    assert result.code == 2 and "config.toml: already exists" in result.err
    assert not (tmp_path / "elsewhere.toml").exists()


def test_a_full_standard_output_is_one_line_and_exit_1(sqlite_clinic):
    import os
    import subprocess

    from .conftest import REBOOK

    environment = {k: v for k, v in os.environ.items() if not k.startswith("REBOOK_")}
    with open("/dev/full", "w") as full:
        for command in (["status"], ["report", "--html", "-"], ["plan", "--json"]):
            done = subprocess.run([str(REBOOK), *command], cwd=sqlite_clinic.folder, stdout=full,
                                  stderr=subprocess.PIPE, text=True, env=environment)  # fmt: skip
            assert done.returncode == 1, done.stderr
            assert done.stderr == "error: cannot write the output: No space left on device\n"
