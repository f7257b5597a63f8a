"""Output for people: Rich tables and progress bars, imported only when drawn.

Rich costs tens of milliseconds to import; ``rebook segment --count`` and
piped output never pay for it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    # Piped output is not folded to 80 columns: whole rows are easier to grep.
    Console(width=None if sys.stdout.isatty() else 250).print(table)


def error(message: str) -> None:
    sys.stderr.write(f"error: {_masked(message)}\n")


def warn(message: str) -> None:
    sys.stderr.write(f"warning: {_masked(message)}\n")


def _masked(message: str) -> str:
    """Whatever a message quotes (a driver's error, a URL), no user name or password in it."""
    from campaigns.config.report import mask_secrets

    return mask_secrets(message)


def send_summary(report, held_until: str = "", ignoring: bool = False) -> list[str]:
    """A campaign run in a few lines: what happened, and what was skipped and why.

    ``held_until``: when held mail goes, as the clinic reads it; ``ignoring``:
    the owner asked to send inside quiet hours.
    """
    outcomes = report.outcomes
    verb = "would send" if report.dry_run else "sent"
    count = len(report.would_send) if report.dry_run else outcomes["sent"]
    head = f"{report.campaign}: {report.members} in the segment; {verb} {count}"
    if not report.dry_run:
        head += f", deferred {outcomes['deferred']}, failed {outcomes['failed']}"
        if report.bounced:
            head += f" ({report.bounced} hard bounce(s), now suppressed)"
    lines = [head]
    if report.held_out:
        verb = "would hold" if report.dry_run else "held"
        lines.append(
            f"  {verb} out {report.held_out} as the control group (not sent; "
            "rebook report compares their bookings)"
        )
    if report.held:
        lines.append(
            f"  held {report.held} for quiet hours ({report.quiet_hours}) until "
            f"{held_until}: rebook run sends them then (or rebook send, run again after)"
        )
    elif report.quiet_hours and ignoring:
        done = "would go" if report.dry_run else "went"
        lines.append(
            f"  note: within quiet hours ({report.quiet_hours}); it {done} because you asked"
        )
    elif report.quiet_hours and report.dry_run:
        lines.append(f"  note: within quiet hours ({report.quiet_hours}): it would be held")
    if report.left_out:
        reasons = ", ".join(f"{reason} {number}" for reason, number in report.left_out.items())
        lines.append(f"  skipped {sum(report.left_out.values())}: {reasons}")
    if report.recovered:
        lines.append(f"  recovered {report.recovered} message(s) left behind by a stopped run")
    if outcomes["skipped"]:
        lines.append(
            f"  not sent {outcomes['skipped']}: unsubscribed, bounced or withdrew consent "
            "after they were queued"
        )
    lines += _listed("failed", report.failures)
    if report.errors:
        lines.append(
            f"  not sent {len(report.errors)}: fix the cause (a template, the configuration, or "
            "the client's data in the export) and they go at the next run"
        )
        lines += _listed("not sent", report.errors)
    return lines


def _one_line(text: str) -> str:
    """Data shown as it is, except what would break the line (CR, LF, other controls)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _listed(label: str, entries: list[tuple[str, str]], shown: int = 20) -> list[str]:
    lines = [
        f"  {label}: {_one_line(address)}: {_one_line(reply)}" for address, reply in entries[:shown]
    ]
    if len(entries) > shown:
        lines.append(f"  … and {len(entries) - shown} more (rebook history EMAIL)")
    return lines


@contextmanager
def progress_bar(label: str, unit: str = "items") -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on a terminal, nothing when stderr is piped.

    Yields ``update(done, total)``; ``unit="bytes"`` shows sizes, else counts.
    """
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    amount = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
    columns = (TextColumn("{task.description}"), BarColumn(), amount, TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@contextmanager
def progress_steps() -> Iterator[Callable[[str, int, int], None] | None]:
    """Progress bars for work in named steps (a bar per step), nothing when stderr is piped.

    Yields ``update(step, done, total)``; a step seen for the first time gets its bar.
    """
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, object] = {}

        def update(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done, total=total)

        yield update
