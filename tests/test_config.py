"""config.toml and REBOOK_ variables: one validated object, every mistake named."""

from __future__ import annotations

import json
import os
import re
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.config import load_settings
from campaigns.config.report import mask_secrets, mask_url
from campaigns.errors import ConfigError
from campaigns.resources import example_config
from campaigns.store.database import open_database

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


SEGMENT_AND_CAMPAIGN = """
[segments.a]
booked = false
[campaigns.c]
segment = "a"
template = "t"
subject = "s"
"""


def with_campaign(extra_campaign: str = "", extra: str = "") -> str:
    return SEGMENT_AND_CAMPAIGN + extra_campaign + "\n" + extra


@pytest.mark.parametrize(
    ("extra", "key", "expected"),
    [
        (with_campaign("repeat_after = '0d'"), "campaigns.c.repeat_after", "longer than zero"),
        (with_campaign("schedule = 'every 0s'"), "campaigns.c.schedule", "never waits"),
        ("[smtp]\ntimeout = '0s'\n", "smtp.timeout", "longer than zero"),
        ("[smtp]\nretry_backoff = '0m'\n", "smtp.retry_backoff", "longer than zero"),
        ("[sync]\nevery = '0m'\n", "sync.every", "longer than zero"),
        ("[segments.a]\nnext_visit_within = '0d'\n", "segments.a.next_visit_within", "zero"),
        ("[segments.a]\nlast_visit_newer_than = '0d'\n", "segments.a.last_visit_newer_than", "zero"),
        ("[segments.a]\nfirst_visit_newer_than = '0s'\n", "segments.a.first_visit_newer_than", "zero"),
        ("[smtp]\nmax_attempts = 100\n", "smtp", "lower max_attempts or retry_backoff"),
        ("[segments.a]\nvisits_at_least = 99999999999999999999\n", "segments.a.visits_at_least", "less than"),
        ("[policy]\nmax_marketing = '99999999999999999999/7d'\n", "policy.max_marketing", "too large"),
    ],
)  # fmt: skip
def test_values_that_would_crash_a_run_are_config_errors(tmp_path, extra, key, expected):
    message = error_of(write(tmp_path, extra))
    assert f"{key}: " in message and expected in message


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("[smtp]\ntimeout = '{}'\n", "smtp.timeout"),
        ("[smtp]\nretry_backoff = '{}'\n", "smtp.retry_backoff"),
        ("[smtp]\nrate_limit = '10/{}'\n", "smtp.rate_limit"),
        ("[policy]\nmax_marketing = '2/{}'\n", "policy.max_marketing"),
        ("[sync]\nevery = '{}'\n", "sync.every"),
        ("[segments.a]\nlast_visit_older_than = '{}'\n", "segments.a.last_visit_older_than"),
        ("[segments.a]\nlast_visit_newer_than = '{}'\n", "segments.a.last_visit_newer_than"),
        ("[segments.a]\nfirst_visit_newer_than = '{}'\n", "segments.a.first_visit_newer_than"),
        ("[segments.a]\nnext_visit_within = '{}'\n", "segments.a.next_visit_within"),
        (with_campaign("repeat_after = '{}'"), "campaigns.c.repeat_after"),
        (with_campaign("schedule = 'every {}'"), "campaigns.c.schedule"),
    ],
)
@pytest.mark.parametrize("huge", ["99999999999w", "99999999w"])
def test_every_duration_key_refuses_a_duration_too_long_to_compute_with(tmp_path, extra, key, huge):
    message = error_of(write(tmp_path, extra.replace("{}", huge)))
    assert f"{key}: " in message and "too long: at most 36500d" in message


def test_zero_age_is_any_past_visit(tmp_path):
    path = write(tmp_path, "[segments.a]\nlast_visit_older_than = '0s'\n")
    assert load_settings(path).segments["a"].last_visit_older_than.total_seconds() == 0


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("from", "a@x.example, b@y.example", "expected one address"),
        ("from", "a@x.example <b@y.example>", "expected one address"),
        ("from", "Waso, Physio <hello@waso.example>", "expected one address"),
        ("reply_to", "a@x.example, b@y.example", "expected one address"),
        ("reply_to", "frontdesk", "expected an address"),
        ("from", "Wasö <hellö@waso.example>", "must be plain ASCII"),
        ("from", "Wasö <hello@wasö.example>", "IDNA form, 'hello@xn--was-una.example'"),
        ("reply_to", "désk@waso.example", "must be plain ASCII"),
        ("unsubscribe_mailto", "unsubscribe", "expected an address"),
        ("unsubscribe_mailto", "a b@waso.example", "expected an address"),
    ],
)
def test_own_addresses_are_one_plain_ascii_address(tmp_path, key, value, expected):
    base = BASE_CONFIG.replace('from = "Waso Physiotherapy <hello@waso.example>"', "")
    extra = f'from = "Waso <hello@waso.example>"\n{key} = "{value}"\n'.replace(
        'from = "Waso <hello@waso.example>"\nfrom', "from"
    )
    message = error_of(write(tmp_path, extra, base=base))
    assert f"mail.{key}: " in message and expected in message


def test_a_display_name_may_be_non_ascii(tmp_path):
    base = BASE_CONFIG.replace("Waso Physiotherapy <", "Wasö Physiothérapie <")
    assert load_settings(write(tmp_path, base=base)).mail.from_.startswith("Wasö")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ftp://mail.waso.example", "expected an http(s) URL"),
        ("https://", "expected an http(s) URL"),
        ("mail.waso.example", "expected an http(s) URL"),
        ("https://mail waso.example", "expected an http(s) URL"),
        ("https://mail.waso.example:99999", "port"),
        ("https://mail.waso.example/?a=1", "without '?' or '#'"),
        ("https://mail.waso.example/#top", "without '?' or '#'"),
        ("https://mail.wasö.example", "IDNA form ('mail.xn--was-una.example')"),
        ("https://user:hunter2@mail.waso.example", "user name or password"),
    ],
)
def test_public_url_is_an_absolute_http_url_links_can_extend(tmp_path, url, expected):
    message = error_of(write(tmp_path, f"[web]\npublic_url = '{url}'\n"))
    assert "web.public_url: " in message and expected in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite://", "not a database file"),
        ("sqlite:///", "not a database file"),
        ("sqlite:///:memory:", "not a database file"),
        ("sqlite:///file:x?mode=memory&uri=true", "not a database file"),
        ("postgresql://", "names no database"),
        ("postgresql://clinic:hunter2@db.example", "names no database"),
        ("postgresql+psycopg://clinic:hunter2@db.example/", "names no database"),
        ("postgresql+psycopg://clinic:hunter2@db.example:five/clinic", "port"),
        ("postgresql+asyncpg://clinic:hunter2@db.example/clinic", "expected 'sqlite:///FILE'"),
        ("mysql://clinic:hunter2@db.example/clinic", "expected 'sqlite:///FILE'"),
    ],
)
def test_database_url_names_a_database_and_never_shows_its_password(tmp_path, url, expected):
    message = error_of(write(tmp_path, base=BASE_CONFIG.replace("{database}", url)))
    assert "database.url: " in message and expected in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    "url",
    ["sqlite:////var/lib/rebook/rebook.db", "postgresql:///clinic", "postgresql://h/?dbname=c"],
)
def test_database_urls_that_name_a_database_are_accepted(tmp_path, url):
    load_settings(write(tmp_path, base=BASE_CONFIG.replace("{database}", url)))


@pytest.mark.parametrize("secret", ["", "x", "fifteen-bytes!!"])
def test_a_short_web_secret_is_refused_without_echoing_it(tmp_path, monkeypatch, secret):
    monkeypatch.setenv("REBOOK_WEB__SECRET", secret)
    message = error_of(write(tmp_path))
    assert "REBOOK_WEB__SECRET (web.secret): too short" in message
    assert "config.toml" not in message and (not secret or secret not in message)


def test_a_web_secret_of_16_bytes_is_enough(tmp_path, monkeypatch):
    monkeypatch.setenv("REBOOK_WEB__SECRET", "sixteen-bytes!!!")
    assert load_settings(write(tmp_path)).web.secret.get_secret_value() == "sixteen-bytes!!!"


PEM_IN_FILE = '"""-----BEGIN PRIVATE KEY-----\nSEKRET0123\n-----END PRIVATE KEY-----"""'


@pytest.mark.parametrize(
    ("table", "key", "value", "variable", "rotate"),
    [
        ("smtp", "password", "'SEKRET0123'", "REBOOK_SMTP__PASSWORD", "mail provider"),
        ("web", "secret", "'SEKRET0123-long-enough-to-pass'", "REBOOK_WEB__SECRET", "a new one"),
        ("web", "secret", "'SEKRET0123'", "REBOOK_WEB__SECRET", "a new one"),
        ("dkim", "private_key", PEM_IN_FILE, "REBOOK_DKIM__PRIVATE_KEY", "new selector"),
        ("sync.cliniko", "api_key", "'SEKRET0123-au1'", "REBOOK_SYNC__CLINIKO__API_KEY", "Cliniko"),
    ],
)
def test_a_secret_written_in_the_file_is_refused_and_never_echoed(
    tmp_path, table, key, value, variable, rotate
):
    extra = f"[{table}]\n{key} = {value}\n"
    if table == "dkim":
        extra += 'domain = "waso.example"\nselector = "s1"\n'
    message = error_of(write(tmp_path, extra))
    assert f"  {table}.{key}: a secret is never written in the config file" in message
    assert f"set {variable} in rebook's environment" in message
    assert "if this file was shared" in message and rotate in message
    assert "SEKRET" not in message


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('[smtp]\nhost = ""\n', "smtp.host"),
        ('[smtp]\nhost = "relay example"\n', "smtp.host"),
        ('[smtp]\nhost = "127.0.0.1:2525"\n', "smtp.host"),
        ('[smtp]\nhost = "smtp://relay.example"\n', "smtp.host"),
        ('[smtp]\nhost = "[::1]"\n', "smtp.host"),
        ('[smtp]\nusername = ""\n', "smtp.username"),
        ('maildir = ""\n', "mail.maildir"),  # appended to [mail]
        ('templates = " "\n', "templates"),
        ('[sync]\nclients = ""\n', "sync.clients"),
        ("[segments.a]\ntags_any = ['']\n", "segments.a.tags_any.0"),
        ("[segments.a]\n[campaigns.c]\nsegment = 'a'\ntemplate = ''\nsubject = 'Hi'\n",
         "campaigns.c.template"),
        ("[segments.a]\n[campaigns.c]\nsegment = 'a'\narticles = 'a/*.md'\nsubject = ' '\n",
         "campaigns.c.subject"),
    ],
)  # fmt: skip
def test_an_empty_value_is_refused_where_it_would_mean_nothing(tmp_path, extra, key):
    message = error_of(write(tmp_path, extra))
    assert f"{key}: " in message, message


@pytest.mark.parametrize("key", ["name", "address"])
def test_a_clinic_without_a_name_or_address_is_refused(tmp_path, key):
    base = BASE_CONFIG.replace(f'{key} = "', f'{key} = "  ", old_{key} = "')
    base = re.sub(rf'{key} = "  ", old_{key} = "[^"]*"', f'{key} = "  "', base)
    assert f"clinic.{key}: is empty" in error_of(write(tmp_path, base=base))


def test_an_empty_smtp_password_in_the_environment_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("REBOOK_SMTP__PASSWORD", "")
    assert "REBOOK_SMTP__PASSWORD (smtp.password): is empty" in error_of(write(tmp_path))


@pytest.mark.parametrize("what", ["fifo", "device", "folder"])
def test_a_config_file_that_is_no_regular_file_is_refused_not_waited_on(tmp_path, what):
    path = {"fifo": tmp_path / "config.toml", "device": Path("/dev/zero"), "folder": tmp_path}[what]
    if what == "fifo":
        os.mkfifo(path)
    message = error_of(path)
    assert str(path) in message and {"fifo": "but a FIFO", "device": "but a device",
                                     "folder": "but a folder"}[what] in message  # fmt: skip


def test_export_files_and_templates_of_the_wrong_kind_are_refused(tmp_path):
    os.mkfifo(tmp_path / "clients.csv")
    (tmp_path / "templates").write_text("not a folder")
    message = error_of(write(tmp_path, "[sync]\nclients = 'clients.csv'\nvisits = 'later.csv'\n"))
    assert "sync.clients: " in message and "clients.csv is not a regular file but a FIFO" in message
    assert "templates: " in message and "is not a folder" in message
    assert "sync.visits" not in message  # an export yet to come is fine


@pytest.mark.parametrize(
    ("variable", "value", "named", "expected"),
    [
        ("REBOOK_SMTP__PORT", "abc", "REBOOK_SMTP__PORT (smtp.port)", "valid integer"),
        ("REBOOK_SMTP", "{bad", "REBOOK_SMTP", "not valid JSON"),
        ("REBOOK_SEGMENTS", "{", "REBOOK_SEGMENTS", "not valid JSON"),
        ("REBOOK_CAMPAIGNS__X", "{", "REBOOK_CAMPAIGNS__X (campaigns.x)", "not valid JSON"),
        ("REBOOK_SEGMENTS__A__SERVICES", "massage", "REBOOK_SEGMENTS__A__SERVICES", "valid list"),
        ("REBOOK_SMTP", '{"port": "x"}', "REBOOK_SMTP (smtp.port)", "valid integer"),
        ("REBOOK_MAIL__FROM", "a@x.example, b@y.example", "REBOOK_MAIL__FROM (mail.from)", "one"),
    ],
)
def test_environment_mistakes_name_the_variable(
    tmp_path, monkeypatch, variable, value, named, expected
):
    monkeypatch.setenv(variable, value)
    message = error_of(write(tmp_path))
    assert named in message and expected in message
    assert "config.toml" not in message


def test_a_file_mistake_beside_an_environment_one_names_both(tmp_path, monkeypatch):
    monkeypatch.setenv("REBOOK_SMTP__PORT", "abc")
    message = error_of(write(tmp_path, "[smtp]\ntimeout = 'soon'\n"))
    assert "config.toml: 2 problem(s)" in message
    assert "  smtp.timeout: expected a duration" in message
    assert "  REBOOK_SMTP__PORT (smtp.port): " in message


def test_a_table_made_by_variables_alone_says_so_when_a_key_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("REBOOK_CAMPAIGNS__X__ENABLED", "false")
    message = error_of(write(tmp_path))
    assert "campaigns.x.segment: required key is missing" in message
    assert "set in the environment: REBOOK_CAMPAIGNS__X__ENABLED" in message


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql+psycopg://clinic:s3cr%2Ft@db/clinic", "postgresql+psycopg://***@db/clinic"),
        ("got 'postgres://u:p@h/d' here", "got 'postgres://***@h/d' here"),
        ("host=db password=hunter2 user=x", "host=db password=*** user=x"),
        ("host=db password='hun ter2': refused", "host=db password=***: refused"),
        ("https://KEY0123@api.example/v1", "https://***@api.example/v1"),
        ("got 'postgresql://u:Tr0ub4dor@x9Secret@h/d'", "got 'postgresql://***@h/d'"),
        ("got 'postgresql://u:pass word@h:54x/d'", "got 'postgresql://***@h:54x/d'"),
    ],
)  # fmt: skip
def test_mask_secrets(text, masked):
    assert mask_secrets(text) == masked


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:pa/ss@h/d", "postgresql://***@h/d"),
        ("postgresql://u:p@ss w@rd@h:5432/d", "postgresql://***@h:5432/d"),
        ("postgresql:u:pw@h/d", "postgresql:***@h/d"),
        ("postgresql://h/d", "postgresql://h/d"),
    ],
)
def test_a_url_held_whole_is_masked_up_to_its_last_at(url, masked):
    assert mask_url(url) == masked
    assert mask_secrets(f"cannot open {url}: no", url) == f"cannot open {masked}: no"


PASSWORD_PART = st.from_regex(r"pw[A-Za-z0-9]{2,6}", fullmatch=True)
URL_SHAPES = st.tuples(
    st.sampled_from(["postgresql", "postgres", "postgresql+psycopg", "postgresql+asyncpg",
                     "sqlite", "mysql", "PostgreSQL", ""]),
    st.sampled_from(["://", "://", ":", ":/"]),
    st.sampled_from(["rebook", "", "a b", "u%40x", "rebook:"]),
    st.lists(st.tuples(PASSWORD_PART, st.sampled_from(
        ["@", "/", "?", "#", " ", ":", "%", "'", '"', "\\", "", "[", "]", "%40", "\t"]
    )), min_size=1, max_size=4),
    st.sampled_from(["127.0.0.1", "localhost", "[::1]", "[::1", ""]),
    st.sampled_from(["", ":1", ":54x", ":99999", ":", ":-1"]),
    st.sampled_from(["", "/db", "/", "/d b", "/db?sslmode=bogus", "?dbname=x", "/db?password=pwQQ"]),
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=URL_SHAPES)
def test_no_part_of_a_database_password_is_ever_shown_whatever_the_urls_shape(shape):
    """Fuzzed malformed URLs: the config's check, then opening the database as every command does."""
    scheme, separator, user, parts, host, port, path = shape
    password = "".join(part + glue for part, glue in parts)
    url = f"{scheme}{separator}{user}:{password}@{host}{port}{path}"
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "config.toml"
        body = BASE_CONFIG.replace('"{database}"', json.dumps(url)).format()
        config.write_text(body, encoding="utf-8")
        try:
            engine = open_database(load_settings(config).database)
        except ConfigError as error:
            message = str(error)
        else:  # nothing listens, or PostgreSQL knows no such role: it opened nothing
            engine.dispose()
            pytest.fail(f"{url!r} opened a database")
    assert "database.url" in message
    leaked = [part for part, _ in parts if part in message]
    assert not leaked, message


def test_services_map_export_slugs_to_names_and_phone_is_optional(tmp_path):
    base = BASE_CONFIG.replace("[database]", 'phone = " +61 8  9000 0000 "\n\n[database]')
    settings = load_settings(
        write(tmp_path, '[services]\nback-pain-massage = "back pain massage"\n', base)
    )
    assert settings.services == {"back-pain-massage": "back pain massage"}
    assert (
        settings.clinic.phone == "+61 8 9000 0000"
        and settings.clinic.phone_uri == "tel:+61890000000"
    )
    assert load_settings(write(tmp_path)).clinic.phone is None


@pytest.mark.parametrize(
    ("phone", "services", "key", "expected"),
    [
        ("call us", "", "clinic.phone", "expected a phone number like '08 9000 0000'"),
        ("12", "", "clinic.phone", "expected a phone number"),
        ("08 9000 0000", 'massage = ""', "services.massage", "expected a non-empty name"),
        ("08 9000 0000", f'massage = "{"x" * 61}"', "services.massage", "at most 60 characters"),
        ("08 9000 0000", 'massage = "a\\nb"', "services.massage", "expected one line"),
        ("08 9000 0000", "massage = 3", "services.massage", "string"),
    ],
)
def test_bad_phone_or_service_names_are_named(tmp_path, phone, services, key, expected):
    base = BASE_CONFIG.replace("[database]", f'phone = "{phone}"\n\n[database]')
    message = error_of(write(tmp_path, f"[services]\n{services}\n", base))
    assert f"{key}" in message and expected in message, message
