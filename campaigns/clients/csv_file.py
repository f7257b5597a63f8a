"""Reading an export file: its encoding, its header and the line each record starts on.

What a person sees when the file itself is wrong (not UTF-8, a quote left
open, a column missing or twice) is decided here, before any row is parsed
(``csv_rows``) or written (``importer``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from campaigns.clients import csv_rows
from campaigns.errors import CsvError

Kind = Literal["clients", "visits"]
Progress = Callable[[int, int], None]  # (bytes read, file size)


def read_csv(path: Path, kind: Kind, progress: Progress | None) -> Iterator[tuple[int, dict]]:
    """``(first line number, row)`` for each record; the header checked, UTF-8 or a clear error."""
    try:
        raw = path.open("rb")
    except OSError as error:
        raise CsvError(path, f"cannot open: {error.strerror}") from None
    size = path.stat().st_size
    with raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
        # strict: a quote left open would otherwise swallow the rest of the file into one cell
        reader = csv.reader(text, strict=True)
        end = 0  # the last line of the previous record
        try:
            header = _header(path, kind, next(reader, []))
            end = reader.line_num
            for number, values in enumerate(reader):
                start, end = end + 1, reader.line_num  # a quoted cell may span lines
                if values:  # blank lines are skipped; cells past the header are ignored
                    yield start, dict(zip(header, map(str.strip, values), strict=False))
                if progress and number % 1000 == 0:
                    progress(raw.tell(), size)
        except UnicodeDecodeError as error:
            raise CsvError(path, _not_utf8(path, error)) from None
        except csv.Error as error:
            raise CsvError(path, f"line {end + 1}: {error}") from None
    if progress:
        progress(size, size)


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
