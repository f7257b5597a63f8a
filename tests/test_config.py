"""config.toml and REBOOK_ variables: one validated object, every mistake named."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from campaigns.config import load_settings
from campaigns.errors import ConfigError
from campaigns.resources import example_config

from .conftest import BASE_CONFIG


def write(tmp_path: Path, extra: str = "", base: str = BASE_CONFIG) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(base.format(database="sqlite:///rebook.db") + textwrap.dedent(extra))
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    return str(caught.value)


def test_example_config_loads_with_its_defaults():
    settings = load_settings(example_config())
    assert settings.mail.transport == "maildir"
    assert settings.database.url.startswith("sqlite:///")
    assert settings.campaigns["book-next-massage"].segment == "lapsed-back-pain"
    assert settings.segments["lapsed-back-pain"].last_visit_older_than.days == 42


def test_minimal_config_uses_embedded_defaults(tmp_path):
    settings = load_settings(write(tmp_path))
    assert settings.mail.transport == "maildir"
    assert settings.smtp.max_attempts == 5
    assert settings.policy.quiet_hours is None and settings.sync is None


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("[smtp]\nmax_atempts = 3\n", "smtp.max_atempts"),
        ("colour = 'blue'\n", "colour"),
        (
            "[segments.a]\nbooked = true\nlast_vist_older_than = '6w'\n",
            "segments.a.last_vist_older_than",
        ),
        ("[policy]\nquiet = '20:00-08:00'\n", "policy.quiet"),
    ],
)
def test_unknown_keys_at_any_depth_are_named(tmp_path, extra, key):
    message = error_of(write(tmp_path, extra))
    assert f"{key}: unknown key" in message


@pytest.mark.parametrize(
    ("extra", "key", "expected"),
    [
        ("[smtp]\ntimeout = '30 seconds'\n", "smtp.timeout", 'expected a duration like "30s"'),
        ("[smtp]\nrate_limit = 'fast'\n", "smtp.rate_limit", 'expected a rate like "10/s"'),
        ("[smtp]\nsecurity = 'ssl'\n", "smtp.security", "'none', 'starttls' or 'tls'"),
        ("[policy]\nquiet_hours = '8pm-8am'\n", "policy.quiet_hours", "expected a window"),
        (
            "[segments.a]\nbooked = false\n[campaigns.c]\nsegment = 'a'\ntemplate = 't'\n"
            "subject = 's'\nschedule = '61 10 * * tue'\n",
            "campaigns.c.schedule",
            "the minute field '61'",
        ),
        (
            "[segments.a]\nbooked = false\n[campaigns.c]\nsegment = 'a'\ntemplate = 't'\n",
            "campaigns.c",
            "needs a 'subject'",
        ),
        (
            "[segments.a]\nvisits_at_least = -1\n",
            "segments.a.visits_at_least",
            "greater than or equal to 0",
        ),
    ],
)
def test_bad_values_name_the_key_and_what_was_expected(tmp_path, extra, key, expected):
    message = error_of(write(tmp_path, extra))
    assert f"{key}: " in message
    assert expected in message


def test_time_zone_is_checked(tmp_path):
    path = write(tmp_path, base=BASE_CONFIG.replace("Australia/Perth", "Perth/Australia"))
    assert "clinic.timezone: unknown time zone 'Perth/Australia'" in error_of(path)


def test_campaign_must_name_an_existing_segment(tmp_path):
    path = write(tmp_path, "[campaigns.c]\nsegment = 'nope'\ntemplate = 't'\nsubject = 's'\n")
    assert "campaigns.c.segment: no segment named 'nope'" in error_of(path)


def test_toml_syntax_error_names_line_and_column(tmp_path):
    path = write(tmp_path, "[smtp\nport = 25\n")
    broken_line = BASE_CONFIG.count("\n") + 1
    message = error_of(path)
    assert str(path) in message and f"line {broken_line}, column 6" in message


def test_missing_file_says_how_to_make_one(tmp_path):
    assert "rebook init" in error_of(tmp_path / "nope.toml")


def test_environment_wins_over_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("REBOOK_SMTP__PORT", "2525")
    monkeypatch.setenv("REBOOK_SMTP__PASSWORD", "hunter2")
    monkeypatch.setenv("REBOOK_CLINIC__NAME", "Env Clinic")
    settings = load_settings(write(tmp_path, "[smtp]\nport = 587\n"))
    assert settings.smtp.port == 2525
    assert settings.clinic.name == "Env Clinic"
    assert settings.smtp.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())


def test_bad_environment_value_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("REBOOK_SMTP__TIMEOUT", "soon")
    assert "smtp.timeout" in error_of(write(tmp_path))


def test_relative_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    extra = "[sync]\nclients = 'exports/c.csv'\n"
    settings = load_settings(write(tmp_path, extra))
    assert settings.templates == tmp_path / "templates"
    assert settings.mail.maildir == tmp_path / "sent-mail"
    assert settings.sync.clients == tmp_path / "exports/c.csv"
    assert settings.database.url == f"sqlite:///{tmp_path}/rebook.db"


def test_plain_postgresql_url_uses_psycopg(tmp_path, monkeypatch):
    monkeypatch.setenv("REBOOK_DATABASE__URL", "postgresql://postgres@db/clinic")
    assert load_settings(write(tmp_path)).database.url == "postgresql+psycopg://postgres@db/clinic"


def test_cli_reports_config_errors_with_exit_2_and_no_traceback(sqlite_clinic):
    sqlite_clinic.write_config("[smtp]\nmax_atempts = 3\n")
    result = sqlite_clinic.rebook("check")
    assert result.code == 2
    assert "config.toml" in result.err and "smtp.max_atempts: unknown key" in result.err
    assert "Traceback" not in result.err


def test_cli_finds_config_through_rebook_config(sqlite_clinic, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = sqlite_clinic.rebook("check", env={"REBOOK_CONFIG": str(sqlite_clinic.config)})
    assert result.code == 0, result.err
    missing = sqlite_clinic.rebook("--config", str(elsewhere / "none.toml"), "check")
    assert missing.code == 2 and "none.toml: no such config file" in missing.err
