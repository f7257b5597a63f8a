"""campaigns/content/plaintext.py: an article's Markdown as the text a client reads."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from campaigns.content.plaintext import markdown_to_text


def text_of(source: str) -> str:
    markdown = MarkdownIt("commonmark", {"html": False, "typographer": True})
    markdown.enable(["replacements", "smartquotes"])
    return markdown_to_text(markdown.parse(source))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("One line\nwrapped at\nthe source.", "One line wrapped at the source."),
        ("First.\n\nSecond.", "First.\n\nSecond."),
        ("# Title\n\nBody", "Title\n=====\n\nBody"),
        ("## Part two\nBody", "Part two\n--------\n\nBody"),
        ("See [our site](https://waso.example).", "See our site (https://waso.example)."),
        ("<https://waso.example>", "https://waso.example"),
        ("*Gently* and **slowly**, `now`", "Gently and slowly, now"),
        ('"Quoted" -- and a line  \nbreak', "“Quoted” – and a line\nbreak"),
        ("- one\n- two\n\nAfter", "- one\n- two\n\nAfter"),
        ("3. three\n4. four", "3. three\n4. four"),
        ("1. one\n   - inner\n2. two", "1. one\n   - inner\n2. two"),
        ("- loose\n\n  more of it\n\n- next", "- loose\n\n  more of it\n\n- next"),
        ("> Said once\n> and again", "> Said once and again"),
        ("    code  stays\n    as is", "    code  stays\n    as is"),
        ("Above\n\n---\n\nBelow", "Above\n\n----------\n\nBelow"),
        ("![A stretch](s.png)", "A stretch"),
    ],
)
def test_markdown_reads_as_plain_text(source, expected):
    assert text_of(source) == expected
