"""``rebook preview`` and the template half of ``rebook check``, through the real command."""

from __future__ import annotations

import email
import email.policy
import json
import subprocess

import pytest

from campaigns.resources import example_config

from .conftest import REBOOK, run_rebook


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The sample clinic of ``rebook init --sample-data``, imported."""
    root = tmp_path_factory.mktemp("preview")
    assert run_rebook("init", "demo", "--sample-data", cwd=root).code == 0
    folder = root / "demo"
    for kind in ("clients", "visits"):
        assert run_rebook("import", kind, f"exports/{kind}.csv", cwd=folder).code == 0
    return folder


def test_preview_text_is_for_the_first_client_the_campaign_would_send_to(demo):
    members = run_rebook("segment", "lapsed-back-pain", "--json", "--limit", "1", cwd=demo)
    first_member = json.loads(members.out)["members"][0]
    assert not first_member["marketing_consent"]  # the segment's first would never get it
    plan = json.loads(run_rebook("plan", "--json", cwd=demo).out)
    [campaign] = [c for c in plan["campaigns"] if c["name"] == "book-next-massage"]
    first = campaign["reach"]["sample"][0]["email"]
    result = run_rebook("preview", "book-next-massage", cwd=demo)
    assert result.code == 0, result.err
    assert result.err == f"previewing for {first}, the first client this campaign would send to\n"
    assert result.out.startswith("How is your back, Linh?") and first.startswith("linh.")
    assert "Book your next massage: https://waso.example/book" in result.out


def test_preview_skips_whom_a_run_would_skip_and_says_when_nobody_would_get_it(sqlite_clinic):
    sqlite_clinic.write("clients.csv", """
        id,email,first_name,last_name,marketing_consent,tags,timezone
        A1,ann@example.com,Ann,One,no,,
        B2,bo@example.com,Bo,Two,yes,,
        C3,cy@example.com,Cy,Three,yes,,
    """)  # fmt: skip
    sqlite_clinic.write_config(
        '[segments.all]\n[campaigns.c]\nsegment = "all"\ntemplate = "reminders/book-next-massage"\n'
        'subject = "Hi"\n'
    )
    assert sqlite_clinic.rebook("import", "clients", "clients.csv").code == 0
    result = sqlite_clinic.rebook("preview", "c")
    assert result.code == 0 and result.out.startswith("How is your back, Bo?")  # Ann: no consent
    assert sqlite_clinic.rebook("unsubscribe", "bo@example.com").code == 0
    result = sqlite_clinic.rebook("preview", "c")
    assert result.out.startswith("How is your back, Cy?"), result.err
    assert (
        result.err
        == "previewing for cy@example.com, the first client this campaign would send to\n"
    )
    assert sqlite_clinic.rebook("unsubscribe", "cy@example.com").code == 0
    result = sqlite_clinic.rebook("preview", "c")
    assert result.code == 0 and result.out.startswith("How is your back, Ann?")
    assert (
        "warning: this campaign would send to nobody now (segment 'all' has 3; no marketing consent: 1; "
        "unsubscribed or bounced: 2): previewing for ann@example.com, the segment's first member"
    ) in result.err


def test_preview_eml_is_the_whole_message_for_a_chosen_client(demo):
    result = subprocess.run(
        [str(REBOOK), "preview", "back-pain-articles", "--client", "LEO.TRAN.2@example.com", "--format", "eml"],
        cwd=demo, capture_output=True, check=True,
    )  # fmt: skip
    message = email.message_from_bytes(result.stdout, policy=email.policy.default)
    assert message["To"].addresses[0].addr_spec == "leo.tran.2@example.com"
    assert message["Subject"] == "The benefits of massage therapy for lower back pain"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = message["List-Unsubscribe"].strip().strip("<>")  # folded onto its own line
    assert unsubscribe.startswith("http://127.0.0.1:8080/unsubscribe/")
    html = message.get_body(("html",)).get_content()
    assert unsubscribe in html and "1 Example Street, Perth WA 6000" in html


def test_preview_html_of_a_transactional_reminder(demo):
    result = run_rebook("preview", "appointment-reminder", "--format", "html", cwd=demo)
    assert result.code == 0 and "Manage my booking" in result.out and "nsubscribe" not in result.out


def test_preview_mistakes_exit_2(demo):
    unknown = run_rebook("preview", "book-next", cwd=demo)
    assert unknown.code == 2 and "no campaign named 'book-next'" in unknown.err
    nobody = run_rebook("preview", "book-next-massage", "--client", "nobody@example.com", cwd=demo)
    assert nobody.code == 2 and "no client has the email address 'nobody@example.com'" in nobody.err


def test_preview_of_an_empty_segment_shows_a_made_up_client(sqlite_clinic):
    sqlite_clinic.write_config(
        '[segments.none]\nvisits_at_least = 99\n[campaigns.c]\nsegment = "none"\ntemplate = "reminders/book-next-massage"\nsubject = "Hi {{ client.first_name }}"\n'
    )
    result = sqlite_clinic.rebook("preview", "c")
    assert result.code == 0
    assert "showing a made-up client" in result.err and "How is your back, Alex?" in result.out


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            "<p>\n{{ client.frist_name }}</p>",
            "mine.html.j2, line 4: 'campaigns.content.context.ClientView object' has no attribute 'frist_name'",
        ),
        (
            "<p>{% if client.first_name %}</p>",
            "mine.html.j2, line 4: Encountered unknown tag 'endblock'",
        ),
        (
            "{{ last_visit.started }}",
            "mine.html.j2, line 3: 'campaigns.content.context.VisitView object' has no attribute 'started'",
        ),
    ],
)
def test_check_names_template_file_line_and_problem(sqlite_clinic, template, expected):
    sqlite_clinic.write(
        "templates/mine.html.j2",
        "{% extends 'layout.html.j2' %}\n{% block content %}\n" + template + "\n{% endblock %}\n",
    )
    sqlite_clinic.write_config(
        '[segments.all]\nvisits_at_least = 1\n[campaigns.mine]\nsegment = "all"\ntemplate = "mine"\nsubject = "Hi"\n'
    )
    result = sqlite_clinic.rebook("check")
    assert result.code == 2
    assert expected in result.err
    assert "Traceback" not in result.err


def test_check_names_a_missing_template(sqlite_clinic):
    sqlite_clinic.write("templates/mine.html.j2", "{% extends 'nope.html.j2' %}")
    sqlite_clinic.write_config('[segments.all]\n[campaigns.mine]\nsegment = "all"\ntemplate = "mine"\nsubject = "Hi"\n'
                               '[campaigns.gone]\nsegment = "all"\ntemplate = "gone"\nsubject = "Hi"\n')  # fmt: skip
    result = sqlite_clinic.rebook("check")
    assert result.code == 2
    assert "campaigns.mine: template 'nope.html.j2' not found" in result.err
    assert "campaigns.gone: template 'gone.html.j2' not found" in result.err


def test_check_catches_a_template_that_needs_a_visit_its_segment_does_not_guarantee(sqlite_clinic):
    sqlite_clinic.write(
        "templates/mine.html.j2",
        "{% extends 'layout.html.j2' %}{% block content %}{{ next_visit.starts_at | date }}{% endblock %}",
    )
    sqlite_clinic.write_config(
        '[segments.all]\n[campaigns.mine]\nsegment = "all"\ntemplate = "mine"\nsubject = "Hi"\n'
    )
    result = sqlite_clinic.rebook("check")
    assert (
        result.code == 2
        and "mine.html.j2, line 1: 'None' has no attribute 'starts_at'" in result.err
    )
    sqlite_clinic.write_config(
        '[segments.all]\nbooked = true\n[campaigns.mine]\nsegment = "all"\ntemplate = "mine"\nsubject = "Hi"\n'
    )
    assert sqlite_clinic.rebook("check").code == 0


def test_check_names_a_bad_subject_and_a_bad_article(sqlite_clinic):
    sqlite_clinic.write_config(
        '[segments.all]\n[campaigns.c]\nsegment = "all"\ntemplate = "reminders/book-next-massage"\nsubject = "Hi {{ client.nickname }}"\n'
    )
    result = sqlite_clinic.rebook("check")
    assert result.code == 2 and "campaigns.c.subject" in result.err and "nickname" in result.err
    sqlite_clinic.write("templates/news/01-a.md", "+++\ntitle = 'A'\n+++\nBody\n")
    sqlite_clinic.write("templates/news/02-b.md", "+++\nsummary = 'no title'\n+++\nBody\n")
    sqlite_clinic.write_config(
        '[segments.all]\n[campaigns.news]\nsegment = "all"\narticles = "news/*.md"\n'
    )
    result = sqlite_clinic.rebook("check")
    assert result.code == 2 and "news/02-b.md, line 2: the front matter needs a title" in result.err


def test_example_config_passes_check_as_shipped(tmp_path):
    (tmp_path / "config.toml").write_text(example_config().read_text())
    result = run_rebook("check", cwd=tmp_path)
    assert result.code == 0, result.err
    assert "no first name" not in result.err  # the defaults read well without one


def test_check_warns_of_what_reads_badly_without_a_first_name(sqlite_clinic):
    sqlite_clinic.write(
        "templates/mine.html.j2",
        "{% extends 'layout.html.j2' %}{% block content %}"
        "<p>Hi {{ client.first_name }},</p><p>Fine , as written.</p>{% endblock %}",
    )
    sqlite_clinic.write_config(
        '[segments.all]\n[campaigns.mine]\nsegment = "all"\ntemplate = "mine"\n'
        'subject = "{{ client.first_name }}, how is your back?"\n'
    )
    result = sqlite_clinic.rebook("check")
    assert result.code == 0, result.err  # a warning: the owner decides
    assert (
        "campaigns.mine: for a client with no first name the subject reads ', how is your back?'"
        in result.err
    )
    assert (
        "campaigns.mine: for a client with no first name a line of the HTML part reads 'Hi ,'"
        in result.err
    )
    assert "Fine , as written" not in result.err  # the name does not change it: not flagged


def test_check_fails_a_template_that_cannot_render_without_a_first_name(sqlite_clinic):
    sqlite_clinic.write(
        "templates/mine.html.j2",
        "{% extends 'layout.html.j2' %}{% block content %}\n{{ client.first_name[0] }}.{% endblock %}",
    )
    sqlite_clinic.write_config(
        '[segments.all]\n[campaigns.mine]\nsegment = "all"\ntemplate = "mine"\nsubject = "Hi"\n'
    )
    result = sqlite_clinic.rebook("check")
    assert result.code == 2 and "Traceback" not in result.err
    assert (
        "mine.html.j2, line 2" in result.err and "(for a client with no first name)" in result.err
    )
