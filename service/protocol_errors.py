"""gunicorn's own answers to malformed HTTP (a header too large, a bad request line) in the service's
JSON error shape instead of its HTML page, so every error a client sees has one form."""

from __future__ import annotations

import json

# gunicorn status -> the service's error code (service/errors.py names the others).
_CODES = {400: "bad_request", 403: "forbidden", 404: "not_found", 408: "request_timeout", 413: "too_large",
          431: "header_too_large", 500: "internal"}


def json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """Write `status_int reason` with a JSON error body and close-delimited framing."""
    from gunicorn.util import write_nonblock

    body = json.dumps({"error": {"code": _CODES.get(status_int, "bad_request"),
                                 "message": mesg or reason}}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    write_nonblock(sock, head + body)


def install() -> None:
    """Make gunicorn's workers answer protocol errors with `json_error` (called in each worker)."""
    import gunicorn.util

    gunicorn.util.write_error = json_error
