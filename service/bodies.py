"""What every JSON request is checked with, by the Flask app and the prediction hot path alike:
the request id, the content type and the body's JSON."""

from __future__ import annotations

import json
import re
import uuid

import orjson

from service.errors import InvalidInput, InvalidJson, UnsupportedMediaType

JSON = "application/json"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


def request_id(incoming: str) -> str:
    """The client's X-Request-ID when it is a sane token, else a fresh one."""
    return incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex


def mimetype(content_type: str) -> str:
    """The media type of a Content-Type header, lower case, without parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def is_json(content_type: str) -> bool:
    """Whether a Content-Type is JSON (application/json or application/*+json, as Flask decides)."""
    kind = mimetype(content_type)
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


def not_json(content_type: str) -> UnsupportedMediaType:
    """The 415 for a body that is not declared as JSON."""
    return UnsupportedMediaType(
        "send the body as JSON with 'Content-Type: application/json' "
        f"(got {mimetype(content_type) or 'none'!r})"
    )


def _reject_constant(name: str):
    raise InvalidInput(f"{name} is not a number the model accepts: send finite numbers only")


def decode_json(data: bytes):
    """The parsed body, or InvalidJson saying what is wrong and where."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass  # re-parsed below with the standard library, only to explain what is wrong
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidJson("the body is nested too deeply to be a request") from None
    except ValueError as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise InvalidJson(f"the body is not valid JSON: {detail}{where}") from None
