"""Service settings: every environment variable the service reads, parsed in one place.

`Settings.from_env(environ)` is the only function that looks at the environment; the app factory and
the gunicorn config both call it, so a variable means the same thing everywhere. A bad value is a
`ConfigError` naming the variable, raised before anything starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from model.store import DEFAULT_ALIAS, DEFAULT_NAME, DEFAULT_STORE

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# buffered (default, service/worker.py): gunicorn's sync worker that serves only requests that have
# fully arrived, so slow clients cost sockets, not workers, at no measured price (README: Slow
# clients). sync: gunicorn's own, for comparison. gevent: asynchronous reads, measurably slower.
WORKER_CLASSES = ("buffered", "sync", "gevent")
# MODEL_FORMAT: auto unpickles the version and runs its model.onnx when it has one that passes its
# parity re-check; onnx never unpickles anything, so only compiled versions are served.
MODEL_FORMATS = ("auto", "onnx")
# What gunicorn's `worker_class` setting is for each WORKER_CLASS.
# Fields of a captured record (model/capture_files.py) that CAPTURE_EXCLUDE/CAPTURE_HASH may not name:
# without them a record cannot be placed or read back.
CAPTURE_FIXED_FIELDS = ("time", "model", "version", "index")
GUNICORN_WORKERS = {"buffered": "service.worker.BufferedWorker", "sync": "sync", "gevent": "gevent"}


class ConfigError(ValueError):
    """An environment variable has a value the service cannot use."""


@dataclass(frozen=True)
class Settings:
    """Typed, immutable service configuration (see README, section "The service")."""

    model_store: str = DEFAULT_STORE
    model_name: str = DEFAULT_NAME
    model_alias: str = DEFAULT_ALIAS
    model_version: str | None = None
    model_cache_dir: str | None = None
    # A public key (PEM) or kms:KEY: versions not signed by it are refused before unpickling.
    verify_key: str | None = None
    # auto or onnx (pickle-free): see MODEL_FORMATS.
    model_format: str = "auto"
    host: str = "127.0.0.1"
    port: int = 8080
    bind: str | None = None
    workers: int = 2
    worker_class: str = "buffered"
    # How long a client may take to send its whole request (buffered workers answer 408 after it).
    read_timeout: float = 10.0
    # How long a buffered worker keeps an idle connection open for its next request (0: close after
    # every response). Above the ALB's default idle timeout (60 s), as AWS advises for targets.
    keepalive: float = 75.0
    max_batch: int = 1000
    max_body_bytes: int = 1024 * 1024
    log_level: str = "INFO"
    # gunicorn: graceful_timeout must stay below the ECS container stopTimeout (30 s) so in-flight
    # requests finish before the container is killed.
    timeout: int = 30
    graceful_timeout: int = 20
    pidfile: str | None = None
    prometheus_multiproc_dir: str | None = None
    # Model loading in a worker: how long the worker waits for the first attempt before it starts
    # answering (503 until loaded), and the cap of the exponential retry backoff.
    load_wait: float = 15.0
    retry_initial: float = 0.5
    retry_max: float = 30.0
    # Capture (service/capture.py): the share of prediction requests recorded, the records per worker
    # per minute, the records a worker holds, how often it writes a file, privacy, where files go.
    capture_rate: float = 0.0
    capture_max_per_minute: int = 1000
    capture_queue: int = 10000
    capture_flush_seconds: float = 60.0
    capture_exclude: tuple[str, ...] = ()
    capture_hash: tuple[str, ...] = ()
    capture_store: str | None = None
    # Records per worker in the live drift window (service/drift_live.py); 0: no live gauges.
    drift_window: int = 1000

    @property
    def capture_uri(self) -> str:
        """Where captured files go: CAPTURE_STORE, else MODEL_STORE (same layout either way)."""
        return self.capture_store or self.model_store

    @property
    def cache_dir(self) -> str:
        """Where verified pickles and each selector's last good version are kept: MODEL_CACHE_DIR,
        else a folder of this user's in the temp directory (it survives a SIGHUP, not the machine)."""
        if self.model_cache_dir:
            return self.model_cache_dir
        import tempfile

        return os.path.join(tempfile.gettempdir(), f"model-service-cache-{os.getuid()}")

    @property
    def pickle_free(self) -> bool:
        """True when nothing may be unpickled (MODEL_FORMAT=onnx)."""
        return self.model_format == "onnx"

    @property
    def address(self) -> str:
        """The host:port gunicorn binds: BIND if set (a host, or host:port), else HOST:PORT."""
        if self.bind:
            return self.bind if ":" in self.bind else f"{self.bind}:{self.port}"
        return f"{self.host}:{self.port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build the settings from environment variables (unset or empty means the default)."""

        def get(key: str) -> str | None:
            value = environ.get(key)
            return value.strip() if value is not None and value.strip() != "" else None

        defaults = {f.name: f.default for f in fields(cls)}

        def integer(key: str, field: str, minimum: int = 1) -> int:
            raw = get(key)
            if raw is None:
                return defaults[field]
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{key} must be an integer, got {raw!r}") from None
            if value < minimum:
                raise ConfigError(f"{key} must be at least {minimum}, got {value}")
            return value

        def number(key: str, field: str) -> float:
            raw = get(key)
            if raw is None:
                return defaults[field]
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"{key} must be a number of seconds, got {raw!r}") from None
            if not 0 <= value < 3600:
                raise ConfigError(f"{key} must be between 0 and 3600 seconds, got {raw}")
            return value

        def share(key: str, field: str) -> float:
            raw = get(key)
            if raw is None:
                return defaults[field]
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"{key} must be a number between 0 and 1, got {raw!r}") from None
            if not 0 <= value <= 1:
                raise ConfigError(f"{key} must be between 0 and 1 (a share of requests), got {raw}")
            return value

        def names(key: str) -> tuple[str, ...]:
            found = tuple(dict.fromkeys(n.strip() for n in (get(key) or "").split(",") if n.strip()))
            fixed = sorted(set(found) & set(CAPTURE_FIXED_FIELDS))
            if fixed:
                raise ConfigError(f"{key} cannot name {', '.join(fixed)}: every captured record keeps "
                                  f"{', '.join(CAPTURE_FIXED_FIELDS)} (name a column of input, or input, "
                                  "prediction, request_id)")
            return found

        log_level = (get("LOG_LEVEL") or defaults["log_level"]).upper()
        if log_level not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
        worker_class = (get("WORKER_CLASS") or defaults["worker_class"]).lower()
        if worker_class not in WORKER_CLASSES:
            raise ConfigError(f"WORKER_CLASS must be one of {', '.join(WORKER_CLASSES)}, "
                              f"got {worker_class!r}")
        model_format = (get("MODEL_FORMAT") or defaults["model_format"]).lower()
        if model_format not in MODEL_FORMATS:
            raise ConfigError(f"MODEL_FORMAT must be one of {', '.join(MODEL_FORMATS)} (onnx: serve only "
                              f"compiled versions, never unpickle), got {get('MODEL_FORMAT')!r}")
        settings = cls(
            model_store=get("MODEL_STORE") or defaults["model_store"],
            model_name=get("MODEL_NAME") or defaults["model_name"],
            model_alias=get("MODEL_ALIAS") or defaults["model_alias"],
            model_version=get("MODEL_VERSION"),
            model_cache_dir=get("MODEL_CACHE_DIR"),
            verify_key=get("MODEL_VERIFY_KEY"),
            model_format=model_format,
            host=get("HOST") or defaults["host"],
            port=integer("PORT", "port"),
            bind=get("BIND"),
            workers=integer("WEB_CONCURRENCY", "workers"),
            worker_class=worker_class,
            read_timeout=number("READ_TIMEOUT", "read_timeout"),
            keepalive=number("KEEPALIVE", "keepalive"),
            max_batch=integer("MAX_BATCH", "max_batch"),
            max_body_bytes=integer("MAX_BODY_BYTES", "max_body_bytes", minimum=64),
            log_level=log_level,
            timeout=integer("GUNICORN_TIMEOUT", "timeout"),
            graceful_timeout=integer("GUNICORN_GRACEFUL_TIMEOUT", "graceful_timeout"),
            pidfile=get("PIDFILE"),
            prometheus_multiproc_dir=get("PROMETHEUS_MULTIPROC_DIR"),
            load_wait=number("MODEL_LOAD_WAIT", "load_wait"),
            retry_initial=number("MODEL_RETRY_INITIAL", "retry_initial"),
            retry_max=number("MODEL_RETRY_MAX", "retry_max"),
            capture_rate=share("CAPTURE_RATE", "capture_rate"),
            capture_max_per_minute=integer("CAPTURE_MAX_PER_MINUTE", "capture_max_per_minute"),
            capture_queue=integer("CAPTURE_QUEUE", "capture_queue"),
            capture_flush_seconds=number("CAPTURE_FLUSH_SECONDS", "capture_flush_seconds"),
            capture_exclude=names("CAPTURE_EXCLUDE"),
            capture_hash=names("CAPTURE_HASH"),
            capture_store=get("CAPTURE_STORE"),
            drift_window=integer("DRIFT_WINDOW", "drift_window", minimum=0),
        )
        key = settings.verify_key
        if key and not key.startswith("kms:") and not os.path.isfile(key):
            raise ConfigError(f"MODEL_VERIFY_KEY names no file: {key!r} (a PEM public key, or kms:KEY)")
        if settings.read_timeout <= 0:
            raise ConfigError(f"READ_TIMEOUT must be above 0 seconds, got {settings.read_timeout:g}")
        if settings.port > 65535:
            raise ConfigError(f"PORT must be at most 65535, got {settings.port}")
        if settings.graceful_timeout >= settings.timeout:
            raise ConfigError(
                f"GUNICORN_GRACEFUL_TIMEOUT ({settings.graceful_timeout}) must be below "
                f"GUNICORN_TIMEOUT ({settings.timeout})"
            )
        if settings.load_wait >= settings.timeout:
            # gunicorn kills a worker that has not checked in for `timeout` seconds.
            raise ConfigError(
                f"MODEL_LOAD_WAIT ({settings.load_wait}) must be below GUNICORN_TIMEOUT ({settings.timeout})"
            )
        if settings.capture_flush_seconds <= 0:
            raise ConfigError(f"CAPTURE_FLUSH_SECONDS must be above 0 seconds, got "
                              f"{settings.capture_flush_seconds:g}")
        if settings.capture_store:
            # The URI's shape only (no store call): a typo shows now, not as write errors later.
            from model.backends import open_backend
            from model.errors import StoreError

            try:
                open_backend(settings.capture_store)
            except StoreError as exc:
                raise ConfigError(f"CAPTURE_STORE: {exc}") from None
        both = sorted(set(settings.capture_exclude) & set(settings.capture_hash))
        if both:
            raise ConfigError(f"CAPTURE_HASH names {', '.join(both)}, which CAPTURE_EXCLUDE leaves out "
                              "already: name each field in one of them")
        return settings
