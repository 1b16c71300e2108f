"""`POST /predict` (and `/invocations`) answered in front of Flask, as a plain WSGI callable.

Measured under gunicorn, Flask's own machinery for one request (request and app contexts, URL
matching, the hooks, the Response object) cost more than the model on the default digits model.
The prediction route is the one that has to be fast, so it is served here with exactly the contract
the Flask app has for it: the same body checks (service.bodies, service.predict), the same JSON
errors from the same exceptions, the request id, the metrics and the access log. Every other
request, and the rare prediction this path does not take (a chunked body, a body without a length
or over the limit, a method other than POST), goes to Flask unchanged, which answers it as before.
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus

import orjson

from service.bodies import JSON, decode_json, is_json, not_json, request_id
from service.errors import ApiError, NotReady

log = logging.getLogger("service.app")

_STATUS = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}


class PredictRoute:
    """Wraps the Flask app's WSGI callable; answers predictions itself (see the module docstring)."""

    def __init__(self, flask_wsgi, service, paths=("/predict", "/invocations")):
        self.flask_wsgi = flask_wsgi
        self.service = service
        self.paths = frozenset(paths)
        self.max_body = service.settings.max_body_bytes

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO")
        if path not in self.paths or environ.get("REQUEST_METHOD") != "POST":
            return self.flask_wsgi(environ, start_response)
        length = environ.get("CONTENT_LENGTH", "")
        if not length.isdigit() or int(length) > self.max_body:
            # No length (chunked), a malformed one, or too large: Flask's checks answer those.
            return self.flask_wsgi(environ, start_response)
        return self._predict(environ, start_response, path, int(length))

    def _predict(self, environ, start_response, path: str, length: int):
        start = time.perf_counter()
        service = self.service
        rid = request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        try:
            if not is_json(environ.get("CONTENT_TYPE", "")):
                raise not_json(environ.get("CONTENT_TYPE", ""))
            data = environ["wsgi.input"].read(length) if length else b""
            model = service.holder.predictor
            if model is None:
                raise NotReady(f"no verified model is loaded yet ({service.holder.error}); retry shortly")
            instances = model.check_batch(decode_json(data))
            predictions, labels = model.predict(model.to_matrix(instances))
            service.metrics.count_predictions(labels)
            if service.capture.enabled:
                # A draw and a cap check; a captured request is handed to the worker's writer
                # (service/capture.py), which builds the records off the request path.
                service.capture.offer(model, instances, predictions, rid)
            status, payload = 200, {"model": model.info, "predictions": predictions}
        except ApiError as exc:
            service.metrics.errors.labels(exc.code).inc()
            status, payload = exc.status, exc.to_json()
        except Exception:
            # As the Flask app's handler: the traceback in the log, the request id to the client.
            log.exception("unhandled error", extra={"request_id": rid})
            service.metrics.errors.labels("internal").inc()
            message = f"internal error; quote request id {rid} when reporting it"
            status, payload = 500, {"error": {"code": "internal", "message": message}}
        body = orjson.dumps(payload)
        start_response(_STATUS[status], [("Content-Type", JSON), ("Content-Length", str(len(body))),
                                         ("X-Request-ID", rid)])
        elapsed = time.perf_counter() - start
        service.metrics.observe(path, "POST", status, elapsed)
        access = service.access
        if access.enabled:
            access.write(rid, "POST", path, status, elapsed, len(body), environ.get("REMOTE_ADDR"))
        return [body]
