"""The Flask app: routes, JSON errors, request ids, access log and metrics.

`create_app()` builds the app but loads no model; the gunicorn worker hook (service/gunicorn.conf.py)
calls `start_model(app)` in each worker, so every worker loads and verifies its own copy.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from flask import Flask, Response, current_app, g, render_template, request
from werkzeug.exceptions import HTTPException

from service import logs
from service.bodies import JSON, decode_json, not_json, request_id
from service.capture import EXIT_SECONDS, Capture
from service.config import Settings
from service.errors import ApiError, NotReady, TooLarge
from service.holder import ModelHolder
from service.hotpath import PredictRoute
from service.metrics import Metrics
from service.openapi import build_spec
from service.page import page_context
from service.reports import HEADERS as REPORT_HEADERS
from service.reports import Reports

log = logging.getLogger("service.app")

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    431: "headers_too_large",
}


@dataclass
class Service:
    """What the routes share: settings, this worker's model holder, the metrics and report cache."""

    settings: Settings
    holder: ModelHolder
    metrics: Metrics
    reports: Reports
    access: logs.AccessLog
    capture: Capture


def create_app(config: Mapping[str, object] | None = None) -> Flask:
    """Build the app; `config` overrides environment variables by name (e.g. {"MODEL_STORE": ...})."""
    overrides = {key: str(value) for key, value in (config or {}).items() if value is not None}
    settings = Settings.from_env({**os.environ, **overrides})
    logs.configure(settings.log_level)

    app = Flask(__name__)
    app.config.from_mapping(config or {})
    # Werkzeug refuses bigger bodies (Content-Length or streamed) with 413 before we read them.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    metrics = Metrics(settings.prometheus_multiproc_dir)
    holder = ModelHolder(settings, on_loaded=lambda predictor: metrics.model_loaded(predictor.info,
                                                                                  predictor.path))
    service = Service(settings, holder, metrics, Reports(settings.model_store), logs.AccessLog(),
                      Capture(settings, metrics))
    app.extensions["service"] = service
    # Predictions skip Flask's per-request machinery; everything else still goes through it.
    app.wsgi_app = PredictRoute(app.wsgi_app, service)

    _register_hooks(app, service)
    _register_errors(app, service)
    _register_routes(app, service)
    return app


def start_model(app: Flask, wait: float | None = None) -> bool:
    """Begin loading the model in this process (see ModelHolder.start); True once it is loaded."""
    return app.extensions["service"].holder.start(wait)


def start_capture(app: Flask) -> None:
    """Start this worker's capture writer (service/capture.py; under gunicorn a child process,
    service/capture_process.py); a no-op when CAPTURE_RATE is 0."""
    service = app.extensions["service"]
    service.capture.start(service.holder.predictor)


def stop_capture(app: Flask, timeout: float = EXIT_SECONDS) -> None:
    """Write what this worker's capture holds (bounded by `timeout`) and stop its writer."""
    app.extensions["service"].capture.stop(timeout)


def _json_response(payload, status: int = 200, headers=None) -> Response:
    # orjson: several times faster than json for the probabilities of a batch, same JSON.
    return Response(orjson.dumps(payload), status=status, mimetype=JSON, headers=headers)


def _register_hooks(app: Flask, service: Service) -> None:
    @app.before_request
    def _start():
        g.start = time.perf_counter()
        g.request_id = request_id(request.headers.get("X-Request-ID", ""))

    access = service.access

    @app.after_request
    def _finish(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("start", time.perf_counter())
        request_id = g.get("request_id", "")
        response.headers["X-Request-ID"] = request_id
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        service.metrics.observe(rule, request.method, response.status_code, elapsed)
        if access.enabled:
            access.write(request_id, request.method, request.path, response.status_code, elapsed,
                         response.content_length, request.remote_addr)
        return response


def _register_errors(app: Flask, service: Service) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        service.metrics.errors.labels(exc.code).inc()
        return _json_response(exc.to_json(), exc.status)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        message = exc.description or exc.name
        if status == 404:
            message = f"no endpoint {request.path}: see GET /openapi.json for the API"
        elif status == 405:
            methods = set(getattr(exc, "valid_methods", None) or []) - {"HEAD", "OPTIONS"}
            allowed = " or ".join(sorted(methods))
            message = f"{request.method} is not allowed on {request.path}; use {allowed}"
        elif status == 413:
            message = (
                f"the body is larger than {service.settings.max_body_bytes} bytes: send fewer instances "
                "per request"
            )
        service.metrics.errors.labels(code).inc()
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        return _json_response({"error": {"code": code, "message": message}}, status, headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # The traceback stays in the server's log; the client gets the request id to quote.
        log.exception("unhandled error")
        service.metrics.errors.labels("internal").inc()
        message = f"internal error; quote request id {g.get('request_id', '?')} when reporting it"
        return _json_response({"error": {"code": "internal", "message": message}}, 500)


def _parse_body():
    if not request.is_json:
        raise not_json(request.content_type or "")
    data = request.get_data(cache=False)
    if request.content_length is None and len(data) >= current_app.config["MAX_CONTENT_LENGTH"]:
        # A streamed (chunked) body is cut at the limit without an error: refuse it, don't parse half.
        raise TooLarge(
            f"the body is larger than {current_app.config['MAX_CONTENT_LENGTH']} bytes: "
            "send fewer instances per request"
        )
    return decode_json(data)


def _register_routes(app: Flask, service: Service) -> None:
    holder, metrics, settings, reports = service.holder, service.metrics, service.settings, service.reports
    capture = service.capture
    # Live drift gauges need sampled records (CAPTURE_RATE > 0) and a window (DRIFT_WINDOW > 0).
    live_drift = capture.live is not None

    def predictor():
        current = holder.predictor
        if current is None:
            raise NotReady(f"no verified model is loaded yet ({holder.error}); retry shortly")
        return current

    def predict():
        model = predictor()
        instances = model.check_batch(_parse_body())
        predictions, labels = model.predict(model.to_matrix(instances))
        metrics.count_predictions(labels)
        if capture.enabled:
            capture.offer(model, instances, predictions, g.request_id)
        return _json_response({"model": model.info, "predictions": predictions})

    def ready():
        model = predictor()
        body = {"status": "ready", "model": model.info, "path": model.path}
        if holder.degraded:
            body["degraded"] = holder.degraded
        return _json_response(body)

    app.add_url_rule("/predict", "predict", predict, methods=["POST"])
    app.add_url_rule("/invocations", "invocations", predict, methods=["POST"])
    app.add_url_rule("/ready", "ready", ready)
    app.add_url_rule("/ping", "ping", ready)

    @app.get("/health")
    def health():
        return _json_response({"status": "alive"})

    @app.get("/model")
    def model_manifest():
        model = predictor()
        # The manifest as published, plus how this worker serves it (which path, or why not onnx).
        body = {**model.manifest, "serving": {**model.serving, "model_format": settings.model_format}}
        if holder.degraded:
            body["degraded"] = holder.degraded
        return _json_response(body)

    @app.get("/metrics")
    def metrics_text():
        served = None
        if live_drift and holder.predictor is not None:
            served = {"info": holder.predictor.info, "profile": holder.predictor.manifest.get("profile")}
        return Response(metrics.render(served, drift=live_drift), mimetype=None,
                        content_type=metrics.content_type)

    @app.get("/openapi.json")
    def openapi():
        return _json_response(build_spec(holder.predictor, settings.max_batch, settings.max_body_bytes))

    @app.get("/report")
    def report():
        info = predictor().info
        html = reports.html(info["name"], info["version"])
        return Response(html, content_type="text/html; charset=utf-8", headers=REPORT_HEADERS)

    @app.get("/")
    def page():
        current = holder.predictor
        if current is None:
            return render_template("index.html", model=None, error=holder.error), 503
        has_report = reports.exists(current.info["name"], current.info["version"])
        return render_template("index.html", **page_context(current, has_report=has_report),
                               max_batch=settings.max_batch)
