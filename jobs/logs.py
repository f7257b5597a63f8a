"""The service's log: one line per event, as text for people or JSON for journald or Loki.

Every event is logged with ``extra={"fields": {...}}``: the text form appends
them as ``key=value``, the JSON form as keys of the object. Nothing logged
ever holds a secret or a message body: the callers pass counts, names and
the server's replies only.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

LOGGER = "rebook"


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
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
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _text(value: object) -> str:
    text = str(value)
    quoted = not text or any(c in text for c in ' "=')
    return json.dumps(text, ensure_ascii=False) if quoted else text


def setup_logging(form: str = "text") -> logging.Logger:
    """rebook's logger, writing to stderr (journald reads it); nothing propagates further."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if form == "json" else TextFormatter())
    logger = logging.getLogger(LOGGER)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def event(logger: logging.Logger, message: str, level: int = logging.INFO, **fields) -> None:
    logger.log(level, message, extra={"fields": fields})
