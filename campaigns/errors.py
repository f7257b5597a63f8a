"""rebook's exceptions.

    RebookError
    ├── UserError            a mistake the clinic owner can fix; the CLI prints it, exit 2
    │   ├── ConfigError      config.toml or REBOOK_ environment variables
    │   ├── CsvError         an import file (carries every bad line)
    │   │   └── CutShort     one whose last line is cut: still being written, or a copy that stopped
    │   └── TemplateError    a template or article (file, line, name)
    ├── StorageError         the disk is full, or the database or a file is read-only: exit 1
    └── (later) delivery failures that are not the user's fault, exit 1

The CLI catches ``UserError`` and ``StorageError`` once, at its edge, and
prints ``str(error)`` without a traceback; everything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class RebookError(Exception):
    """Base of every error rebook raises on purpose."""


class DatabaseUnavailable(RebookError):
    """The database cannot be reached now: PostgreSQL down, restarting, refusing connections.

    Not a mistake in the config (a wrong name or password is a ``ConfigError``):
    the same command works once the database is back, so it exits 1, and
    ``rebook run`` waits for it rather than refusing to start.
    """


class StorageError(RebookError):
    """The machine refused a write: the disk is full, or the database or a file is read-only.

    Nothing is wrong with the data or the config; whoever runs rebook makes
    room (or gives it the right to write) and runs the command again. The
    message names the database or file and the reason.
    """


class UserError(RebookError):
    """Bad input: the message names the file, the key or line, and what was expected."""


class ConfigError(UserError):
    """The configuration cannot be used as written."""


@dataclass(frozen=True)
class BadRow:
    """One rejected row: a line of an import file, or a record named by what it is."""

    line: int | str  # 12, or "patient 1042" for a row of the practice software's API
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" if isinstance(self.line, int) else self.line
        return f"{where}: {self.reason}"


class CsvError(UserError):
    """An import file has rows that cannot be imported; nothing was written.

    A file of a million bad rows must not print a million lines: the first
    ``SHOWN_ROWS`` are listed and the rest counted (``total`` says how many
    there were when ``problems`` holds only the first ones).
    """

    SHOWN_ROWS = 20

    def __init__(
        self,
        path: object,
        problems: list[BadRow] | str,
        *,
        total: int | None = None,
        hint: str = "",
    ) -> None:
        self.path = path
        self.problems = [] if isinstance(problems, str) else problems
        if isinstance(problems, str):
            message = f"{path}: {problems}"
        else:
            total = len(problems) if total is None else total
            message = (
                f"{path}: {total} bad row(s), nothing imported "
                f"(--skip-invalid imports the rest):\n{bad_rows_text(path, problems, total)}"
            )
        if hint:
            message += f"\n{hint}"
        super().__init__(message)


def bad_rows_text(path: object, problems: list[BadRow], total: int) -> str:
    """The first bad rows, one a line, and how many more there were."""
    shown = problems[: CsvError.SHOWN_ROWS]
    lines = [f"  {path}: {problem}" for problem in shown]
    if total > len(shown):
        lines.append(f"  … and {total - len(shown)} more bad row(s)")
    return "\n".join(lines)


class CutShort(CsvError):
    """An import file ends in the middle of a line: still being written, or cut short.

    Nothing is imported. Unlike a bad row it says nothing about the data, so
    the ``[sync]`` pickup reports it apart and looks again at its next pass.
    """


class TemplateError(UserError):
    """A template or article cannot be rendered."""
