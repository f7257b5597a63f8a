"""CSS inlining done once per template, not once per client.

Email clients ignore most ``<style>`` rules, so the layout's CSS must end up
in ``style=""`` attributes. Inlining every rendered message would repeat the
same CSS work for each of 100,000 clients. Instead, the loader inlines each
``.html.j2`` *source* once, when Jinja first loads it: Jinja's tags are
swapped for HTML comments (which an HTML parser leaves where they are, even
between table rows), css-inline inlines the layout's CSS, and the tags are
put back. If the tags do not come back exactly, in order (a tag inside a
start tag, or Jinja inside the CSS), that template is served as written and
``needs_inlining_after_render`` tells the renderer to inline its output
per message instead: slower, never wrong.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

import css_inline
from jinja2 import BaseLoader, Environment

LAYOUT = "layout.html.j2"
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_TITLE = re.compile(r"(<title[^>]*>)(.*?)(</title>)", re.S | re.I)
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.S | re.I)
_OPTIONS = {"keep_at_rules": True, "load_remote_stylesheets": False}


def layout_css(source: str) -> str:
    """The CSS of the layout's ``<style>`` blocks."""
    return "\n".join(_STYLE.findall(source))


def document_inliner(extra_css: str | None = None) -> css_inline.CSSInliner:
    """Inlines a whole document's ``<style>`` (and ``extra_css``), keeping ``@media`` for phones."""
    return css_inline.CSSInliner(extra_css=extra_css, **_OPTIONS)


def inline_fragment(html: str, css: str) -> str:
    """Inline ``css`` into a piece of HTML, such as a rendered article."""
    return css_inline.inline_fragment(html, css, **_OPTIONS)


def inline_template_source(source: str, inline: Callable[[str], str]) -> str | None:
    """``source`` with CSS inlined around its Jinja tags, or None if that cannot be done safely."""
    marker = f"rebook-{secrets.token_hex(6)}"
    tags: list[str] = []

    def protect(match: re.Match) -> str:
        tags.append(match.group(0))
        return f"<!--{marker}-{len(tags) - 1}-->"

    protected = _TITLE.sub(_as_text_placeholders, _JINJA.sub(protect, source))
    if any(marker in css for css in _STYLE.findall(protected)):
        return None  # Jinja inside the CSS: leave this template alone
    inlined = inline(protected)
    placeholder = re.compile(rf"(?:<!--|\[\[){marker}-(\d+)(?:-->|\]\])")
    found = placeholder.findall(inlined)
    if found != [str(index) for index in range(len(tags))]:
        return None
    return placeholder.sub(lambda m: tags[int(m.group(1))], inlined)


def _as_text_placeholders(title: re.Match) -> str:
    """``<title>`` holds only text, where a comment would be escaped: use brackets there."""
    return title[1] + title[2].replace("<!--", "[[").replace("-->", "]]") + title[3]


class InliningLoader(BaseLoader):
    """Serves ``.html.j2`` templates with the layout's CSS already inlined."""

    def __init__(self, base: BaseLoader) -> None:
        self.base = base
        self.not_inlined: set[str] = set()
        self._css: str | None = None

    def get_source(self, environment: Environment, template: str):
        source, filename, uptodate = self.base.get_source(environment, template)
        if not template.endswith(".html.j2"):
            return source, filename, uptodate
        if template == LAYOUT:
            inlined = inline_template_source(source, document_inliner().inline)
        else:
            css = self.css(environment)
            inlined = inline_template_source(source, lambda html: inline_fragment(html, css))
        if inlined is None:
            self.not_inlined.add(template)
            return source, filename, uptodate
        return inlined, filename, uptodate

    def css(self, environment: Environment) -> str:
        if self._css is None:
            self._css = layout_css(self.base.get_source(environment, LAYOUT)[0])
        return self._css

    @property
    def needs_inlining_after_render(self) -> bool:
        return bool(self.not_inlined)
