"""The service's log: one line per event, as text for people or JSON for journald or Loki.

Every event is logged with ``extra={"fields": {...}}``: the text form appends
them as ``key=value``, the JSON form as keys of the object. Nothing logged
ever holds a secret or a message body: the callers pass counts, names and
the server's replies only.

Every other library's logger (uvicorn, asyncio, APScheduler, httpx,
SQLAlchemy) and Python's warnings (``py.warnings``) go through the same
handler, warnings and errors only, each naming its ``logger``; so with
``--log-format json`` every line the process writes is one JSON object, a
traceback included as a field. uvicorn's warnings about what a client sent
(an invalid request, too many connections) are said at most once a minute
(``OncePerMinute``): a client cannot fill the journal.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

LOGGER = "rebook"
CLIENTS_EVERY = 60.0  # seconds between two lines of one uvicorn warning about clients


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        pairs = " ".join(f"{key}={_text(value)}" for key, value in fields.items())
        line = f"{record.levelname.lower()}: {record.getMessage()}" + (f" {pairs}" if pairs else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _fields(record: logging.LogRecord) -> dict:
    fields = getattr(record, "fields", {})
    if record.name != LOGGER and not record.name.startswith(LOGGER + "."):
        fields = {"logger": record.name, **fields}
    return fields


def _text(value: object) -> str:
    text = str(value)
    quoted = not text or any(c in text for c in ' "=\n')
    return json.dumps(text, ensure_ascii=False) if quoted else text


class OncePerMinute(logging.Filter):
    """Each message at most once per ``every`` seconds; the next one says how many were held."""

    def __init__(self, every: float = CLIENTS_EVERY, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.every, self.clock = every, clock
        self.last: dict[str, tuple[float, int]] = {}  # message: (when said, held since)

    def filter(self, record: logging.LogRecord) -> bool:
        key, now = str(record.msg), self.clock()
        said, held = self.last.get(key, (-self.every, 0))
        if now - said < self.every:
            self.last[key] = (said, held + 1)
            return False
        self.last[key] = (now, 0)
        if held:
            record.fields = {**getattr(record, "fields", {}), "also_in_the_last_minute": held}
        return True


def setup_logging(form: str = "text") -> logging.Logger:
    """Every logger of the process writes through one handler to stderr (journald reads it).

    rebook's own events from INFO up; every other library's warnings and errors.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if form == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.captureWarnings(True)  # warnings.warn(...) reaches the "py.warnings" logger
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # in case they were configured
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.filters[:] = [OncePerMinute()]
    # A database that goes away mid-run: rebook's loops say it once, with the reason
    # (jobs.loops); the pool's failed rollback and psycopg's broken pipeline would each add
    # a traceback or a warning per connection, saying the same.
    logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
    logging.getLogger("psycopg").setLevel(logging.ERROR)
    logger = logging.getLogger(LOGGER)
    logger.handlers.clear()
    logger.setLevel(logging.INFO)
    logger.propagate = True
    return logger


def event(logger: logging.Logger, message: str, level: int = logging.INFO, **fields) -> None:
    logger.log(level, message, extra={"fields": fields})
