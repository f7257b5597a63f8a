"""Config mistakes as the clinic owner reads them: the key, the REBOOK_ variable, never a secret.

A value may come from config.toml or from a REBOOK_ variable; a message names
whichever set it. Every message passes through ``mask_secrets``, because a
validator may echo what it was given, and a database URL carries a password.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError
from pydantic_settings import SettingsError

ENV_PREFIX = "REBOOK_"
MASK = "***"
# A URL's user name and password: everything from "://" to its last "@" before the path,
# a quote or the end of the line. Spaces are allowed inside: a password may hold one.
_URL_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][\w+.-]*://)[^/?#'\"<>\r\n]*@")
_KEYWORD_PASSWORD = re.compile(
    r"""(?i)\b(?P<head>password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|"[^"]*"|[^\s&;'"]+)"""
)


def mask_url(url: str) -> str:
    """``url`` with everything between ``://`` and its last ``@`` shown as ``***``.

    For a URL held whole (the database's), whatever its shape: a password
    holding ``@``, ``/`` or a space is hidden entirely, and so is a user name,
    which may be a key itself (``https://KEY@host``).
    """
    head, separator, rest = url.partition("://")
    if not separator:
        head, separator, rest = url.partition(":")
    userinfo, at, tail = rest.rpartition("@")
    if not at:
        return url
    return f"{head}{separator}{MASK}@{tail}" if userinfo or separator else url


def mask_secrets(text: str, *urls: str) -> str:
    """Hide the user name and password of every URL (and ``password=``) a message may echo.

    ``urls`` are URLs the caller holds whole (the database's): each is first
    replaced by :func:`mask_url`, which needs no guess at where it ends.
    """
    for url in urls:
        if url and url != (masked := mask_url(url)):
            text = text.replace(url, masked)
    text = _URL_USERINFO.sub(lambda match: match["head"] + MASK + "@", text)
    return _KEYWORD_PASSWORD.sub(lambda match: match["head"] + MASK, text)


def environment() -> dict[tuple[str, ...], str]:
    """Each REBOOK_ variable by the key it sets, lower case as pydantic-settings reads it."""
    return {
        tuple(name[len(ENV_PREFIX) :].lower().split("__")): name
        for name in os.environ
        if name.upper().startswith(ENV_PREFIX)
    }


class Problem(NamedTuple):
    loc: tuple[str, ...]
    text: str
    missing: bool = False  # a missing key: the variables setting its table are suspects


@dataclass(frozen=True)
class Sources:
    """Where each key came from, so a message names the variable that set it, not the file."""

    path: Path
    variables: dict[tuple[str, ...], str]

    def variable(self, loc: tuple[str, ...]) -> str | None:
        """The REBOOK_ variable that set the value at ``loc``, if one did."""
        for size in range(len(loc), 0, -1):
            name = self.variables.get(loc[:size])
            if name is not None and _json_holds(os.environ[name], loc[size:]):
                return name
        return None

    def below(self, table: tuple[str, ...]) -> list[str]:
        """The variables that set keys inside ``table``: a table-wide problem may be theirs."""
        size = len(table)
        return sorted(name for key, name in self.variables.items() if key[:size] == table != key)

    def report(self, problems: list[Problem]) -> str:
        lines, from_file = [], False
        for loc, text, missing in problems:
            key, name = ".".join(loc) or "(top level)", self.variable(loc)
            from_file |= name is None
            if name is not None:
                lines.append(f"  {name} ({key}): {text}")
            elif below := self.below(loc[:-1] if missing else loc):
                lines.append(f"  {key}: {text} (set in the environment: {', '.join(below)})")
            else:
                lines.append(f"  {key}: {text}")
        where = self.path if from_file else "environment"
        return mask_secrets("\n".join([f"{where}: {len(problems)} problem(s):", *lines]))

    def undecodable(self, error: SettingsError) -> str:
        """pydantic-settings names only the field; name the variable and what JSON wants."""
        found = re.search(r'field "(\w+)"', str(error))
        field = found[1] if found else ""
        whole = self.variables.get((field,), f"{ENV_PREFIX}{field.upper()}")
        return mask_secrets(
            f"{whole}: not valid JSON ({error.__cause__}): a variable that "
            f"sets a whole table holds a JSON object; to set one key, use "
            f"{ENV_PREFIX}{field.upper()}__KEY"
        )


def _json_holds(value: str, rest: tuple[str, ...]) -> bool:
    """Whether a variable holding JSON sets the key ``rest`` below it (not the file)."""
    if not rest:
        return True
    try:
        data = json.loads(value)
    except ValueError:
        return False
    for part in rest:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return False
    return True


def problems_of(error: ValidationError, sources: Sources) -> list[Problem]:
    """Each pydantic error as a key and a message, the input shown only where it is safe."""
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(str(part) for part in item["loc"] if not str(part).startswith("function-"))
        explained = _explain(item, sources.variable(loc) is not None)
        problems.append(Problem(loc, explained, item["type"] == "missing"))
    return problems


def _explain(item: dict[str, Any], from_environment: bool) -> str:
    kind = item["type"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling against config.example.toml)"
    if kind == "missing":
        return "required key is missing"
    message = str(item["msg"]).removeprefix("Value error, ")
    if kind in ("literal_error", "string_pattern_mismatch"):
        return f"{message}, got {item.get('input')!r}"
    if from_environment and kind in _CONTAINERS and isinstance(item.get("input"), str):
        return f"{message}: {_json_problem(item['input'])}"
    return message


_CONTAINERS = ("model_type", "dict_type", "list_type")


def _json_problem(value: str) -> str:
    """Why a variable's value is not the JSON a table or list needs; never the value itself."""
    try:
        json.loads(value)
    except ValueError as error:
        return (
            f"a variable that sets a table or list holds JSON, and this is not valid JSON ({error})"
        )
    return "a variable that sets a table or list holds JSON of that shape"
