"""Articles: Markdown files with TOML front matter between ``+++`` lines.

Looked up like templates (the clinic's folder, then the defaults), so the
packaged series is ``articles = "articles/*.md"`` and a clinic adds or
replaces one article by putting a file of the same name in its own folder.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from markupsafe import Markup

from campaigns.errors import TemplateError


@dataclass(frozen=True)
class Article:
    """One article, rendered once per campaign run."""

    name: str  # as the campaign names it, e.g. "articles/01-benefits.md": the ledger key
    path: Path
    title: str
    summary: str
    html: Markup
    text: str  # plain text for the text part: no Markdown syntax, one line a paragraph


def resolve_articles(pattern: str | list[str], folders: list[Path]) -> list[str]:
    """The article names a campaign's ``articles`` setting means, in series order."""
    if isinstance(pattern, list):
        return pattern
    if not any(ch in pattern for ch in "*?["):
        return [pattern]
    found = {
        str(path.relative_to(folder))
        for folder in folders
        if folder.is_dir()
        for path in folder.glob(pattern)
        if path.is_file() and fnmatch(str(path.relative_to(folder)), pattern)
    }
    return sorted(found, key=lambda name: (Path(name).parent.as_posix(), Path(name).name))


def find_article(name: str, folders: list[Path]) -> Path:
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    raise TemplateError(f"article {name!r} not found in {', '.join(str(f) for f in folders)}")


def load_article(
    name: str, folders: list[Path], render: Callable[[str], tuple[str, str]]
) -> Article:
    """Read and render one article; ``render`` turns Markdown into (HTML, plain text)."""
    path = find_article(name, folders)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TemplateError(f"{path}: cannot read: {error}") from None
    front, body = split_front_matter(path, source)
    title = front.get("title")
    if not isinstance(title, str) or not title.strip():
        raise TemplateError(f'{path}, line 2: the front matter needs a title = "…"')
    unknown = set(front) - {"title", "summary"}
    if unknown:
        raise TemplateError(f"{path}: unknown front matter key(s) {', '.join(sorted(unknown))}")
    summary = str(front.get("summary", ""))
    html, text = render(body)
    return Article(name, path, title.strip(), summary, Markup(html), text)


def split_front_matter(path: Path, source: str) -> tuple[dict, str]:
    lines = source.splitlines(keepends=True)
    if not lines or lines[0].strip() != "+++":
        raise TemplateError(f'{path}, line 1: an article starts with a +++ line, then title = "…"')
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "+++")
    except StopIteration:
        raise TemplateError(f"{path}: the front matter has no closing +++ line") from None
    try:
        front = tomllib.loads("".join(lines[1:end]))
    except tomllib.TOMLDecodeError as error:
        # the TOML parser counts from the line after the opening +++
        message = re.sub(r"line (\d+)", lambda m: f"line {int(m[1]) + 1}", str(error))
        raise TemplateError(f"{path}: front matter: {message}") from None
    return front, "".join(lines[end + 1 :])
