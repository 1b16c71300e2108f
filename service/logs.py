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

import orjson
from gunicorn.glogging import Logger as GunicornBaseLogger

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


class AccessLog:
    """The access log: one JSON line per request on stderr, in JsonFormatter's shape.

    Written without the logging module's per-record machinery (a LogRecord, handler locks, a
    formatter walking the record's attributes): that cost ~40 µs a request, a quarter of the
    service's own request path, for the same line. It still obeys the `service.access` logger's
    level (LOG_LEVEL above INFO turns it off).
    """

    def __init__(self):
        self._logger = logging.getLogger("service.access")

    @property
    def enabled(self) -> bool:
        """Whether lines are written (the level is INFO or lower)."""
        return self._logger.isEnabledFor(logging.INFO)

    def write(self, request_id: str, method: str, path: str, status: int, seconds: float,
              size: int | None, remote_addr: str | None) -> None:
        """Write one request's line."""
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": "INFO",
            "logger": "service.access",
            "message": f"{method} {path} {status}",
            "request_id": request_id,
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "bytes": size,
            "remote_addr": remote_addr,
        }
        try:  # noqa: SIM105 (suppress() costs a context manager per request)
            sys.stderr.write(orjson.dumps(entry, default=str).decode() + "\n")
        except (OSError, ValueError):
            pass  # a closed or full stderr must not fail the request (logging ignores it too)


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


class GunicornLogger(GunicornBaseLogger):
    """gunicorn's logger without its access log: the app writes its own (with request id and
    latency). gunicorn computes its access line's fields whenever a logging config is set, even
    when nothing would print it; that cost every request ~10 µs for nothing."""

    def access(self, resp, req, environ, request_time) -> None:
        """No-op: see the class docstring."""


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
