"""Rendering: sandboxed templates, CSS inlined once, text parts, clinic overrides, articles."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from campaigns.config import load_settings
from campaigns.content.context import sample_client
from campaigns.content.plaintext import html_to_text
from campaigns.content.render import CampaignRenderer
from campaigns.errors import TemplateError

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
CAMPAIGNS = """
[segments.lapsed]
last_visit_older_than = "6w"

[segments.soon]
next_visit_within = "2d"

[segments.everyone]

[campaigns.book]
segment = "lapsed"
template = "reminders/book-next-massage"
subject = "{{ client.first_name }}, how is your back?"

[campaigns.reminder]
segment = "soon"
kind = "transactional"
template = "reminders/appointment"
subject = "Your appointment on {{ next_visit.starts_at | date }}"

[campaigns.series]
segment = "everyone"
articles = "articles/*.md"
"""


def renderer(clinic, name, extra=""):
    clinic.write_config(CAMPAIGNS + extra)
    return CampaignRenderer(load_settings(clinic.config), name)


def render(clinic, name, extra="", **changes):
    client, last, upcoming = sample_client(
        NOW, load_settings(clinic.write_config(CAMPAIGNS + extra)).clinic.timezone
    )
    made = renderer(clinic, name, extra)
    article = made.articles[0] if made.articles else None
    values = {
        "client": client,
        "last_visit": last,
        "next_visit": upcoming,
        "unsubscribe_url": "https://u.example/unsubscribe/T",
        "article": article,
    } | changes
    return made.render(**values)


def test_marketing_reminder_renders_with_inlined_css_and_footer(sqlite_clinic):
    out = render(sqlite_clinic, "book")
    assert out.subject == "Alex, how is your back?"
    assert '<a href="https://waso.example/book" style="' in out.html  # the button, styled inline
    assert re.search(
        r'<p style="margin: 0 0 16px 0;">It has been a few weeks since your remedial massage with Sam Carter',
        out.html,
    )
    style_blocks = re.findall(r"<style>(.*?)</style>", out.html, re.S)
    assert style_blocks and all(
        block.strip().startswith("@media") for block in style_blocks
    )  # only phone rules stay
    assert (
        "1 Example Street, Perth WA 6000" in out.html
        and "https://u.example/unsubscribe/T" in out.html
    )
    assert "{{" not in out.html and "{%" not in out.html
    assert "Book your next massage: https://waso.example/book" in out.text
    assert "Unsubscribe with one click: https://u.example/unsubscribe/T" in out.text


def test_transactional_reminder_has_no_unsubscribe_and_local_times(sqlite_clinic):
    out = render(sqlite_clinic, "reminder")
    assert (
        out.subject == "Your appointment on Thursday 26 November"
    )  # 14:00 Perth, the day after NOW
    assert (
        "Thursday 26 November at 2:00 pm" in out.html
        and "Thursday 26 November at 2:00 pm" in out.text
    )
    assert "unsubscribe" not in out.html.lower() and "unsubscribe" not in out.text.lower()
    assert "1 Example Street, Perth WA 6000" in out.text


def test_series_renders_articles_in_file_order(sqlite_clinic):
    made = renderer(sqlite_clinic, "series")
    titles = [article.title for article in made.articles]
    assert titles[0] == "The benefits of massage therapy for lower back pain"
    assert len(titles) >= 3
    out = render(sqlite_clinic, "series")
    assert out.subject == titles[0]
    assert re.search(
        r"<h2 style=\"[^\"]+\">Easing tight, overworked muscles</h2>", out.html
    )  # article CSS inlined too
    assert "Easing tight, overworked muscles\n--------------------------------\n" in out.text
    assert "##" not in out.text  # Markdown read as plain text, not shown as syntax


def test_an_article_text_part_has_one_line_per_paragraph(sqlite_clinic):
    out = render(sqlite_clinic, "series")
    title = "The benefits of massage therapy for lower back pain"
    assert out.text.startswith(f"{title}\n{'=' * len(title)}\n\nLower back pain is one")
    paragraph = next(line for line in out.text.splitlines() if line.startswith("Lower back pain"))
    assert paragraph.endswith("alongside staying gently active.")  # unwrapped: the reader wraps
    assert "Hi Alex" not in out.text and "Hi Alex" not in out.html  # an article needs no greeting
    assert "emergency department now" in out.text and "**" not in out.text


def test_service_slugs_read_as_the_names_in_services(sqlite_clinic):
    named = '\n[services]\nremedial-massage = "Remedial massage (60 min)"\n'
    out = render(sqlite_clinic, "book", named)
    assert "since your Remedial massage (60 min) with Sam Carter" in out.html
    assert "since your Remedial massage (60 min) with Sam Carter" in out.text
    out = render(sqlite_clinic, "reminder", named)  # back-pain-massage has no entry
    assert "Your back pain massage with Sam Carter" in out.text
    assert "back-pain-massage" not in out.html and "back-pain-massage" not in out.text


def test_the_clinic_phone_is_in_the_footer_as_a_tel_link(sqlite_clinic):
    sqlite_clinic.write_config(CAMPAIGNS)
    config = sqlite_clinic.config.read_text()
    sqlite_clinic.config.write_text(
        config.replace("[database]", 'phone = "(08) 9000 0000"\n\n[database]')
    )
    settings = load_settings(sqlite_clinic.config)
    client, last, upcoming = sample_client(NOW, settings.clinic.timezone)
    out = CampaignRenderer(settings, "book").render(client, last, upcoming, "https://u.example/u/T")
    assert '<a href="tel:0890000000" style="' in out.html and ">(08) 9000 0000</a>" in out.html
    assert (
        "\n-- \nWaso Physiotherapy\n1 Example Street, Perth WA 6000\n(08) 9000 0000\n" in out.text
    )
    assert "tel:" not in render(sqlite_clinic, "book").html  # no phone set, none shown


@pytest.mark.parametrize("name", ["book", "reminder", "series"])
def test_default_emails_read_well_without_a_first_name(sqlite_clinic, name):
    client, _, _ = sample_client(
        NOW, load_settings(sqlite_clinic.write_config(CAMPAIGNS)).clinic.timezone
    )
    out = render(sqlite_clinic, name, client=type(client)(client.id, "", "", client.email, ()))
    first = out.text.splitlines()[0]
    assert first in (
        "How is your back?",
        "See you soon",
        "The benefits of massage therapy for lower back pain",
    )
    for text in (out.text, html_to_text(out.html)):
        assert not re.search(r"\s[,?!.]|,,|there\?", text), text


def test_the_layout_keeps_outlook_conditionals_and_a_bulletproof_button(sqlite_clinic):
    for name in ("book", "reminder", "series"):  # the MSO comments survive inlining ahead
        assert not renderer(sqlite_clinic, name)._loader.needs_inlining_after_render
    out = render(sqlite_clinic, "book")
    assert out.html.count("<!--[if mso]>") == 2 and out.html.count("<![endif]-->") == 2
    assert '<table role="presentation" width="600" align="center"' in out.html  # Outlook's width
    button = re.search(
        r'<td class="button" bgcolor="#2f5d50" style="([^"]+)"><a [^>]*>Book your', out.html
    )
    assert button and "padding: 14px 28px" in button[1] and "background-color: #2f5d50" in button[1]
    assert '<meta name="color-scheme" content="light dark">' in out.html
    assert '<meta name="supported-color-schemes" content="light dark">' in out.html
    assert "@media (prefers-color-scheme: dark)" in out.html


def test_a_clinic_overrides_one_template_and_keeps_the_default_layout(sqlite_clinic):
    sqlite_clinic.write("templates/reminders/book-next-massage.html.j2", """
        {% extends "layout.html.j2" %}
        {% block content %}<p>Our own words for {{ client.first_name }} &amp; <a href="{{ booking_url }}">a link</a></p>{% endblock %}
    """)  # fmt: skip
    out = render(sqlite_clinic, "book")
    assert "Our own words for Alex" in out.html and "1 Example Street" in out.html
    # the default text template is still used: the clinic only replaced the HTML
    assert "Book your next massage: https://waso.example/book" in out.text


def test_text_is_derived_from_html_when_there_is_no_text_template(sqlite_clinic):
    sqlite_clinic.write("templates/custom.html.j2", """
        {% extends "layout.html.j2" %}
        {% block content %}<h1>Hello {{ client.first_name }}</h1><p>Fish &amp; chips &mdash; on us. <a href="{{ booking_url }}">Book here</a></p>{% endblock %}
    """)  # fmt: skip
    extra = '\n[campaigns.custom]\nsegment = "everyone"\ntemplate = "custom"\nsubject = "Hi"\n'
    out = render(sqlite_clinic, "custom", extra)
    assert "Hello Alex" in out.text and "Fish & chips — on us." in out.text
    assert "https://waso.example/book" in out.text and "Book here" in out.text
    assert not re.search(r"<[a-z/!]", out.text) and not re.search(r"&[a-z]+;|&#\d+;", out.text)


def test_a_template_that_cannot_be_inlined_ahead_is_inlined_after_render(sqlite_clinic):
    sqlite_clinic.write("templates/odd.html.j2", """
        {% extends "layout.html.j2" %}
        {% block content %}<p {% if client.first_name %}class="x"{% endif %}>Hi {{ client.first_name }}</p>{% endblock %}
    """)  # fmt: skip
    extra = '\n[campaigns.odd]\nsegment = "everyone"\ntemplate = "odd"\nsubject = "Hi"\n'
    out = render(sqlite_clinic, "odd", extra)
    assert re.search(r'<p class="x" style="margin: 0 0 16px 0;">Hi Alex</p>', out.html)


def test_html_is_autoescaped_and_subject_is_one_line(sqlite_clinic):
    client, _, _ = sample_client(
        NOW, load_settings(sqlite_clinic.write_config(CAMPAIGNS)).clinic.timezone
    )
    hostile = type(client)(client.id, "<b>Eve</b>\r\nBcc: x@evil.example", "X", client.email, ())
    out = render(sqlite_clinic, "book", client=hostile)
    assert "&lt;b&gt;Eve&lt;/b&gt;" in out.html and "<b>Eve</b>" not in out.html
    assert out.subject == "<b>Eve</b> Bcc: x@evil.example, how is your back?"
    assert "\n" not in out.subject and "\r" not in out.subject


def test_the_sandbox_blocks_python_internals(sqlite_clinic):
    sqlite_clinic.write(
        "templates/evil.html.j2",
        "{{ client.__class__.__mro__ }}{{ ''.__class__.__subclasses__() }}",
    )
    extra = '\n[campaigns.evil]\nsegment = "everyone"\ntemplate = "evil"\nsubject = "Hi"\n'
    with pytest.raises(TemplateError, match=r"unsafe|__class__"):
        render(sqlite_clinic, "evil", extra)
