"""The text part of a message: from a template's HTML, or from an article's Markdown.

A text part is read on phones as often as on desktops, where lines
hard-wrapped at 76 columns break raggedly: paragraphs here are one line
each, separated by a blank line, and the mail reader wraps them to its width.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import html2text
from markdown_it.token import Token

_BLANK_LINES = re.compile(r"\n{3,}")
UNDERLINE = {"h1": "="}  # other headings underline with "-"
RULE = "-" * 10


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


@dataclass
class _List:
    ordered: bool
    number: int  # the next item's, in an ordered list
    width: int = 2  # of the current item's marker: its later lines line up under its text


def markdown_to_text(tokens: list[Token]) -> str:
    """Plain text from markdown-it's tokens (the same ones its HTML comes from).

    Paragraphs one line each; headings as a line underlined with ``=`` or
    ``-``; list items as ``- item`` or ``1. item``, indented two spaces per
    level; links as ``text (url)``; block quotes behind ``> ``; code kept as
    written, indented four spaces. No Markdown syntax is left for a client
    to read around.
    """
    blocks: list[str] = []
    lists: list[_List] = []
    quote, heading, marker, after_item, tight = 0, None, None, False, False

    def add(text: str, *, tight: bool = False) -> None:
        nonlocal after_item
        base = "".join(" " * outer.width for outer in lists[:-1])
        first = base + (marker or " " * lists[-1].width) if lists else ""
        rest = base + " " * lists[-1].width if lists else ""
        lines = [(first if n == 0 else rest) + line for n, line in enumerate(text.split("\n"))]
        block = "\n".join(("> " * quote + line).rstrip() for line in lines)
        if blocks:
            blocks.append("\n" if tight and after_item else "\n\n")
        blocks.append(block)
        after_item = bool(lists)

    for token in tokens:
        kind = token.type
        if kind == "heading_open":
            heading = token.tag
        elif kind in ("bullet_list_open", "ordered_list_open"):
            lists.append(_List(kind == "ordered_list_open", int(token.attrGet("start") or 1)))
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif kind == "list_item_open":
            current = lists[-1]
            marker = f"{current.number}. " if current.ordered else "- "
            current.number, current.width = current.number + 1, len(marker)
        elif kind == "paragraph_open":
            tight = token.hidden  # markdown-it hides the <p> of a tight list's items
        elif kind == "blockquote_open":
            quote += 1
        elif kind == "blockquote_close":
            quote -= 1
        elif kind == "inline":
            text = inline_text(token.children or [])
            if heading is not None:
                text += "\n" + UNDERLINE.get(heading, "-") * len(text.split("\n")[-1])
                heading = None
            add(text, tight=tight)
            marker, tight = None, False
        elif kind in ("fence", "code_block"):
            code = "\n".join("    " + line for line in token.content.rstrip("\n").split("\n"))
            add(code)
        elif kind == "hr":
            add(RULE)
    return "".join(blocks).strip("\n")


def inline_text(children: list[Token]) -> str:
    """An inline run's text: emphasis dropped, links as ``text (url)``, images as their alt."""
    parts: list[str] = []
    links: list[tuple[str, int]] = []  # (href, where its text starts)
    for child in children:
        kind = child.type
        if kind in ("text", "code_inline"):
            parts.append(child.content)
        elif kind == "softbreak":
            parts.append(" ")
        elif kind == "hardbreak":
            parts.append("\n")
        elif kind == "image":
            parts.append(child.content)
        elif kind == "link_open":
            links.append((str(child.attrGet("href") or ""), len(parts)))
        elif kind == "link_close" and links:
            href, start = links.pop()
            shown = "".join(parts[start:])
            if href and href not in (shown, f"mailto:{shown}"):
                parts.append(f" ({href})")
    return "".join(parts)
