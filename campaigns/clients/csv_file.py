"""Reading an export file: its encoding, its header and the line each record starts on.

What a person sees when the file itself is wrong (not UTF-8, a quote left
open, a column missing or twice, a last line cut short) is decided here,
before any row is parsed (``csv_rows``) or written (``importer``).

A file whose last line has no line break is one still being written (the
sync picked it up while the practice software was saving it) or a copy that
stopped: its last cell may be cut (``do-not-con``, ``jo@example.co``), and
importing it would put wrong data in as if they were right. Exports end
every line with a line break (Excel's "CSV UTF-8" ends with CRLF; Python's
and Ruby's CSV writers end each row too), so such a file is refused,
unless its last line is whole beyond doubt: every column there, and the last
cell closed by a quote or in a column rebook does not read. A file cut just
after a line break cannot be told from a whole one, but that costs only the
rows not yet written, which an upsert picks up at the next import.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from campaigns.clients import csv_rows
from campaigns.errors import CsvError, CutShort

Kind = Literal["clients", "visits"]
Progress = Callable[[int, int], None]  # (bytes read, file size)


def read_csv(path: Path, kind: Kind, progress: Progress | None) -> Iterator[tuple[int, dict, str]]:
    """``(first line number, row, problem)`` for each record; ``problem`` is "" or why it is bad.

    The header is checked and the text is UTF-8, or a clear error; a last line
    cut short raises ``CutShort`` once every other row was read.
    """
    try:
        raw = path.open("rb")
    except OSError as error:
        raise CsvError(path, f"cannot open: {error.strerror}") from None
    size = path.stat().st_size
    with raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
        lines = _Lines(text)
        # strict: a quote left open would otherwise swallow the rest of the file into one cell
        reader = csv.reader(lines, strict=True)
        end = 0  # the last line of the previous record
        try:
            header = _header(path, kind, next(reader, []))
            width = _width(header)
            end, last = reader.line_num, None
            for number, values in enumerate(reader):
                start, end = end + 1, reader.line_num  # a quoted cell may span lines
                if values:  # blank lines are skipped
                    if last is not None:
                        yield _record(header, width, *last)
                    last = (start, values, lines.take())
                if progress and number % 1000 == 0:
                    progress(raw.tell(), size)
        except UnicodeDecodeError as error:
            raise CsvError(path, _not_utf8(path, error)) from None
        except csv.Error as error:
            raise CsvError(path, f"line {end + 1}: {error}") from None
    if last is not None:
        _refuse_cut_short(path, kind, header, width, *last)
        yield _record(header, width, *last)
    if progress:
        progress(size, size)


class _Lines:
    """The file's lines for the CSV reader, keeping those of the record it is reading.

    Only the last record's are ever looked at: did the file end with a line
    break, and if not, can its last cell have been cut?
    """

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._text = text
        self._taken: list[str] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._text)
        self._taken.append(line)
        return line

    def take(self) -> list[str]:
        """The lines read since the last call: one record's (a quoted cell may span several)."""
        taken, self._taken = self._taken, []
        return taken


def _width(header: list[str]) -> int:
    """The cells a row must have: up to the header's last named column (a trailing comma
    in the header is not a column)."""
    return max((number + 1 for number, name in enumerate(header) if name), default=0)


def _record(header: list[str], width: int, start: int, values: list[str], _lines) -> tuple:
    problem = ""
    if len(values) < width:
        problem = (
            f"{len(values)} cell(s) where the header has {width} column(s): "
            "a cell or a comma is missing, so the cells may be in the wrong columns"
        )
    elif any(cell.strip() for cell in values[len(header) :]):  # trailing empty cells are fine
        problem = (
            f"{len(values)} cells where the header has {len(header)} column(s): a comma inside "
            "a value that is not in quotes? The cells may be in the wrong columns"
        )
    return start, dict(zip(header, map(str.strip, values), strict=False)), problem


def _refuse_cut_short(
    path: Path, kind: Kind, header: list[str], width: int, start: int, values: list[str],
    lines: list[str],
) -> None:  # fmt: skip
    """Raise ``CutShort`` unless the last record is whole (see the module's docstring)."""
    if lines[-1].endswith(("\n", "\r")):
        return
    where = f"line {start}, the last, ends without a line break"
    advice = (
        "the file is still being written, or was cut short; nothing imported. Import it once "
        "it is complete (a [sync] file is tried again at the next sync)"
    )
    if len(values) < width:
        cells = f"{len(values)} of the header's {width} cells"
        raise CutShort(path, f"{where} and has {cells}: {advice}")
    column = header[len(values) - 1] if len(values) <= len(header) else ""
    columns = csv_rows.CLIENT_COLUMNS if kind == "clients" else csv_rows.VISIT_COLUMNS
    if column not in columns or _closed_by_a_quote(lines):
        return
    raise CutShort(
        path,
        f"{where}, so its last cell ({column} {csv_rows.excerpt(values[-1].strip())}) may be "
        f"cut: {advice}. If it is complete already, end it with a line break",
    )


def _closed_by_a_quote(lines: list[str]) -> bool:
    """Whether the record's last cell was quoted and its closing quote is there.

    A letter after a closing quote is an error to the strict reader; after an
    unquoted cell (even one ending in a stray ``"``) it is more of that cell.
    """
    try:
        for _ in csv.reader([*lines[:-1], lines[-1] + "x"], strict=True):
            pass
    except csv.Error:
        return True
    return False


def _header(path: Path, kind: Kind, cells: list[str]) -> list[str]:
    """The column names, lower case; a required one missing or a column twice is fatal."""
    required = (
        csv_rows.REQUIRED_CLIENT_COLUMNS if kind == "clients" else csv_rows.REQUIRED_VISIT_COLUMNS
    )
    header = [name.strip().lower() for name in cells]
    missing = [name for name in required if name not in header]
    if missing:
        found = ", ".join(csv_rows.excerpt(name) for name in header[:20]) or "an empty file"
        found += ", …" if len(header) > 20 else ""
        raise CsvError(
            path,
            f"line 1: missing column(s) {', '.join(missing)}; a {kind} file needs "
            f"{', '.join(required)} (found: {found})",
        )
    columns = csv_rows.CLIENT_COLUMNS if kind == "clients" else csv_rows.VISIT_COLUMNS
    twice = sorted({name for name in header if name in columns and header.count(name) > 1})
    if twice:
        raise CsvError(
            path,
            f"line 1: column(s) {', '.join(twice)} appear more than once; "
            "which one holds the data is unclear",
        )
    return header


def _not_utf8(path: Path, error: UnicodeDecodeError) -> str:
    """Where the first byte that is not UTF-8 is, counted again from the file's start.

    The decoder reads ahead of the CSV reader by a whole buffer, so the
    reader's line number is wrong here; this runs only when the file is bad.
    """
    line = 1
    with path.open("rb") as raw:
        for chunk in raw:  # chunks end at b"\n"; a UTF-8 character never contains one
            try:
                chunk.decode("utf-8")
            except UnicodeDecodeError as bad:
                line += _bare_returns(chunk[: bad.start])
                error = bad
                break
            line += 1 + _bare_returns(chunk)
    byte = error.object[error.start : error.start + 1].hex()
    text = f"line {line}: not UTF-8 text (byte 0x{byte}: {error.reason})"
    if line == 1 and error.object[:2] in (b"\xff\xfe", b"\xfe\xff"):
        text += '; it looks like UTF-16: save it as "CSV UTF-8"'
    return text


def _bare_returns(chunk: bytes) -> int:
    """Line ends that are a lone CR (old Mac exports), which the CSV reader also counts."""
    return chunk.count(b"\r") - chunk.count(b"\r\n")
