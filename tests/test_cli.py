"""The ``rebook`` command as a clinic owner uses it: init, check, segment."""

from __future__ import annotations

import json

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
