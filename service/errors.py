"""API errors: raised anywhere in the service, turned into JSON responses by the app's handlers."""

from __future__ import annotations


class ApiError(Exception):
    """An error with an HTTP status, a stable machine-readable code and a message saying how to fix it."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code

    def to_json(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


class InvalidInput(ApiError):
    """The body parsed but does not fit the model's input schema (400)."""

    code = "invalid_input"


class InvalidJson(ApiError):
    """The body is not valid JSON (400)."""

    code = "invalid_json"


class TooLarge(ApiError):
    """The body or the batch is larger than the configured limits (413)."""

    status = 413
    code = "too_large"


class UnsupportedMediaType(ApiError):
    """The request is not `application/json` (415)."""

    status = 415
    code = "unsupported_media_type"


class NotReady(ApiError):
    """No verified model is loaded in this worker yet (503)."""

    status = 503
    code = "not_ready"


class ReportNotFound(ApiError):
    """The served version has no report in the store (404)."""

    status = 404
    code = "not_found"


class StoreUnreachable(ApiError):
    """The store could not be read (503): the client may retry."""

    status = 503
    code = "store_unreachable"
