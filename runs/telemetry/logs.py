"""Log records with the run and step they concern, one JSON object a line when asked.

Named in ``settings.LOGGING``; imports no model (logging is configured before apps load).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from runs.telemetry.context import RUN_ID, STEP

# Answers that refuse a request on purpose: logged as one line, never with a traceback.
EXPECTED_REFUSALS = frozenset({400, 401, 403, 404, 405, 409, 422})
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class ContextFilter(logging.Filter):
    """Adds ``run_id`` and ``step`` (None outside a run) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "run_id", None) is None:
            record.run_id = RUN_ID.get()
        if getattr(record, "step", None) is None:
            record.step = STEP.get()
        return True


class RefusalFilter(logging.Filter):
    """Drops the traceback Django attaches to a 403 or 404 it answers: it is not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) in EXPECTED_REFUSALS:
            record.exc_info = None
            record.exc_text = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, run and step ids, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "run_id": getattr(record, "run_id", None),
            "step": getattr(record, "step", None),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in entry and key != "request":
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """The plain line, with ``run=<id> step=<key>`` appended when they apply."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [
            f"{name}={value}"
            for name in ("run_id", "step")
            if (value := getattr(record, name, None)) is not None
        ]
        if not ids:
            return line
        head, sep, rest = line.partition("\n")
        return f"{head} [{' '.join(ids)}]{sep}{rest}"
