"""The text part of a message, for templates that have no ``.txt.j2`` of their own."""

from __future__ import annotations

import re

import html2text

_BLANK_LINES = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    """Readable text from an email's HTML: links kept as text with their address, no tags."""
    converter = html2text.HTML2Text()
    converter.body_width = 78  # plain-text mail reads best wrapped
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.ignore_tables = True  # tables lay out the email; their cells are the text
    converter.unicode_snob = True  # "Zoë", not "Zoe"
    converter.inline_links = True
    converter.protect_links = False
    converter.skip_internal_links = True
    text = converter.handle(html)
    lines = [line.rstrip() for line in text.splitlines()]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip() + "\n"
