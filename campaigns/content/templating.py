"""The Jinja environment templates render in, and errors that name the file and line.

Sandboxed (a template cannot reach Python internals), ``StrictUndefined`` (a
misspelt variable is an error, never an empty string in a client's email),
and HTML autoescaped. Templates are looked up in the clinic's folder first,
then in the packaged defaults, so a clinic overrides one file at a time.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    select_autoescape,
)
from jinja2 import (
    TemplateError as JinjaError,
)
from jinja2.sandbox import SandboxedEnvironment

from campaigns.errors import TemplateError
from campaigns.resources import default_templates


def search_path(clinic_templates: Path) -> list[Path]:
    """Where templates and articles are looked up, in order."""
    return [clinic_templates, default_templates()]


def template_loader(clinic_templates: Path) -> BaseLoader:
    return ChoiceLoader([FileSystemLoader(str(folder)) for folder in search_path(clinic_templates)])


class ViewSandbox(SandboxedEnvironment):
    """The sandbox, with a fast answer for the plain data views rebook hands templates.

    Jinja checks every attribute a template reads against Python's internals;
    for a frozen dataclass of rebook's own, whose fields are known, the answer
    is simply "a field, yes; anything else, no". Every other object gets the
    full check.
    """

    def __init__(self, views: Mapping[type, frozenset[str]], **options) -> None:
        super().__init__(**options)
        self.views = dict(views)

    def is_safe_attribute(self, obj: object, attr: str, value: object) -> bool:
        fields = self.views.get(type(obj))
        if fields is not None:
            return attr in fields
        return super().is_safe_attribute(obj, attr, value)


def view_attributes(*types: type) -> dict[type, frozenset[str]]:
    """The readable names of dataclass views: their fields and properties."""
    return {
        kind: frozenset(
            [field.name for field in dataclasses.fields(kind)]
            + [name for name, member in vars(kind).items() if isinstance(member, property)]
        )
        for kind in types
    }


def make_environment(
    loader: BaseLoader, views: Mapping[type, frozenset[str]] | None = None
) -> SandboxedEnvironment:
    environment = ViewSandbox(
        views or {},
        loader=loader,
        undefined=StrictUndefined,
        autoescape=select_autoescape(
            enabled_extensions=("html", "html.j2"), default_for_string=False
        ),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # a campaign run renders the files as they were when it began
    )
    environment.filters["date"] = format_date
    environment.filters["time"] = format_time
    return environment


def _moment(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    str(value)  # an undefined value raises its own error here, naming what was missing
    raise TypeError(f"expected a date and time, got {value!r}")


def format_date(moment: datetime, style: str = "long") -> str:
    """``Tuesday 3 March`` (long) or ``3 Mar`` (short), in the time zone the value carries."""
    moment = _moment(moment)
    if style == "short":
        return f"{moment.day} {moment:%b}"
    return f"{moment:%A} {moment.day} {moment:%B}"


def format_time(moment: datetime) -> str:
    """``9:30 am``: how a clinic writes appointment times."""
    moment = _moment(moment)
    hour = moment.hour % 12 or 12
    return f"{hour}:{moment:%M} {'am' if moment.hour < 12 else 'pm'}"


def describe_template_error(error: Exception, what: str) -> TemplateError:
    """Turn a Jinja failure into a message naming the file, the line and the problem."""
    if isinstance(error, TemplateNotFound):
        return TemplateError(f"{what}: template {error.name!r} not found")
    if isinstance(error, TemplateSyntaxError):
        where = error.filename or error.name or "(string)"
        return TemplateError(f"{where}, line {error.lineno}: {error.message} ({what})")
    filename, line = _template_frame(sys.exc_info()[2] or error.__traceback__)
    problem = str(error) if isinstance(error, JinjaError) else f"{type(error).__name__}: {error}"
    if filename is None:
        return TemplateError(f"{what}: {problem}")
    text = _source_line(filename, line)
    return TemplateError(f"{filename}, line {line}: {problem} ({what}){text}")


def _template_frame(trace: TracebackType | None) -> tuple[str | None, int]:
    """The innermost traceback frame that is a template (Jinja rewrites their file and line)."""
    found: tuple[str | None, int] = (None, 0)
    while trace is not None:
        filename = trace.tb_frame.f_code.co_filename
        if filename.endswith((".j2", ".md")) or filename == "<template>":
            found = (filename, trace.tb_lineno)
        trace = trace.tb_next
    return found


def _source_line(filename: str, line: int) -> str:
    try:
        text = Path(filename).read_text(encoding="utf-8").splitlines()[line - 1].strip()
    except (OSError, IndexError, UnicodeDecodeError):
        return ""
    return f"\n    {line} | {text}"
