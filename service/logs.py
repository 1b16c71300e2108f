"""Structured logs: one JSON object per line, with the request id when there is a request.

Used for the app's access and application logs, and (through gunicorn's logconfig_dict) for
gunicorn's own error log, so everything a worker or the master writes is machine-readable.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime

# Attributes every LogRecord has; anything else was passed with `extra=` and goes into the line.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Format a record as a single JSON line: time, level, logger, message, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or _current_request_id()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(entry, default=str)


def _current_request_id() -> str | None:
    # Imported lazily: the formatter is also used by the gunicorn master, which has no Flask app.
    from flask import g, has_app_context

    return g.get("request_id") if has_app_context() else None


class _StderrHandler(logging.StreamHandler):
    """A stream handler that writes to whatever sys.stderr is *now* (it may be replaced later)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass  # always sys.stderr


def configure(level: str) -> None:
    """Send the `service` loggers to stderr as JSON lines (idempotent)."""
    logger = logging.getLogger("service")
    logger.setLevel(level)
    if not any(getattr(h, "_service_json", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(JsonFormatter())
        handler._service_json = True  # marks our handler so repeated app factories add none
        logger.addHandler(handler)
    logger.propagate = False


def gunicorn_logconfig(level: str) -> dict:
    """A logging dictConfig for gunicorn's own loggers, in the same JSON format."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "service.logs.JsonFormatter"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "loggers": {
            "gunicorn.error": {"handlers": ["stderr"], "level": level, "propagate": False},
            "gunicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }
