"""The model a worker serves: loaded and verified once, retried in the background until it is.

A worker never serves predictions without a verified model. If the store is unreachable or the
model missing when the worker starts, the worker stays up (liveness is fine, readiness is not) and
a daemon thread keeps retrying with capped exponential backoff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from service.config import Settings
from service.predict import Predictor

log = logging.getLogger("service.model")


class ModelHolder:
    """Holds this worker's Predictor once it is loaded; `start` begins loading it."""

    def __init__(self, settings: Settings, on_loaded: Callable[[Predictor], None] | None = None):
        self._settings = settings
        self._on_loaded = on_loaded
        self._loaded = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.predictor: Predictor | None = None
        self.error = "the model is not loaded yet"
        self.attempts = 0

    @property
    def ready(self) -> bool:
        return self.predictor is not None

    def start(self, wait: float | None = None) -> bool:
        """Start loading in a background thread; wait up to `wait` s (default MODEL_LOAD_WAIT).

        Returns whether the model is ready. Waiting first keeps a fresh worker (e.g. after a reload)
        from answering 503 while a healthy store is still being read.
        """
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="model-loader", daemon=True)
                self._thread.start()
        self._loaded.wait(self._settings.load_wait if wait is None else wait)
        return self.ready

    def stop(self) -> None:
        """Stop retrying (used when a test or a worker shuts down)."""
        self._stop.set()

    def _run(self) -> None:
        delay = self._settings.retry_initial
        while not self._stop.is_set():
            self.attempts += 1
            try:
                predictor = self._load()
            except Exception as exc:  # any failure means "not ready yet": keep the worker alive
                self.error = f"cannot load model: {exc}"
                log.warning(
                    "model load failed; retrying",
                    extra={"error": str(exc), "attempt": self.attempts, "retry_in_s": delay},
                )
                if self._stop.wait(delay):
                    return
                delay = min(max(delay, 0.05) * 2, self._settings.retry_max)
                continue
            if self._on_loaded:
                self._on_loaded(predictor)
            self.predictor = predictor
            self.error = ""
            self._loaded.set()
            log.info(
                "model loaded",
                extra={"model": predictor.info, "attempt": self.attempts, "path": predictor.path},
            )
            return

    def _load(self) -> Predictor:
        from model.loader import load_model
        from model.store import ModelStore

        s = self._settings
        loaded = load_model(
            ModelStore(s.model_store),
            s.model_name,
            alias=s.model_alias,
            version=s.model_version,
            cache_dir=s.model_cache_dir,
        )
        predictor = Predictor(loaded.estimator, loaded.manifest, max_batch=s.max_batch)
        predictor.warm_up()
        return predictor
