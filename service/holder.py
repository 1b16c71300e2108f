"""The model a worker serves: loaded and verified once, retried in the background until it is.

A worker never serves predictions without a verified model. If the store cannot be reached when the
worker starts, it serves the *last good* version of its selector from the local cache (verified by
sha256 again) and says so: `degraded` names the reason on /ready and /model. A daemon thread keeps
trying the store with capped exponential backoff; once it answers, the worker switches to what the
alias names (or just clears `degraded` when that is the version it already serves). With nothing
cached, the worker stays up without a model (liveness fine, readiness 503) until the store answers.

Each loaded version is served through its model.onnx when it has one that passes its parity re-check
(service.compiled), else through the pickle (service.predict says which path). The pickle of a
version served through model.onnx is fetched and verified (it is the fallback) but never unpickled,
so such a worker never imports scikit-learn. In pickle-free mode (MODEL_FORMAT=onnx) nothing is
unpickled: a version without a usable model.onnx is refused, with the reason on /ready, exactly like
one that fails its sha256.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from service.compiled import NotCompiled, open_compiled
from service.config import Settings
from service.predict import Predictor
from service.tables import has_categories

log = logging.getLogger("service.model")


class Unservable(Exception):
    """The store answered, but the version it names cannot be served in this mode (pickle-free and
    no usable model.onnx): refused, like a failed integrity check, not a reason to use the cache."""


class ModelHolder:
    """Holds this worker's Predictor once it is loaded; `start` begins loading it."""

    def __init__(self, settings: Settings, on_loaded: Callable[[Predictor], None] | None = None):
        self._settings = settings
        self._on_loaded = on_loaded
        self._first_attempt = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.predictor: Predictor | None = None
        self.error = "the model is not loaded yet"
        self.degraded = ""  # why the version served is the cached last good one, if it is
        self.attempts = 0

    @property
    def ready(self) -> bool:
        return self.predictor is not None

    def start(self, wait: float | None = None) -> bool:
        """Start loading in a background thread; wait for its first attempt (at most `wait` s,
        default MODEL_LOAD_WAIT). Returns whether a model is being served.

        The first attempt either loads from the store or, if the store cannot be reached, from the
        cache; a store that fails fast (a missing folder, a refused connection) does not hold up
        the worker's first connections.
        """
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="model-loader", daemon=True)
                self._thread.start()
        self._first_attempt.wait(self._settings.load_wait if wait is None else wait)
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
            except Exception as exc:  # any failure means "not from the store yet": keep the worker alive
                self.error = f"cannot load model: {exc}"
                if self.predictor is None:
                    self._fall_back(exc)
                log.warning("model load failed; retrying",
                            extra={"error": str(exc), "attempt": self.attempts, "retry_in_s": delay,
                                   "serving": self.predictor.info if self.predictor else None})
                self._first_attempt.set()
                if self._stop.wait(delay):
                    return
                delay = min(max(delay, 0.05) * 2, self._settings.retry_max)
                continue
            self._serve(predictor, degraded="")
            self._first_attempt.set()
            return

    def _serve(self, predictor: Predictor, *, degraded: str) -> None:
        if self._on_loaded:
            self._on_loaded(predictor)
        self.predictor = predictor
        self.degraded = degraded
        self.error = ""
        log.info("model loaded", extra={"model": predictor.info, "attempt": self.attempts,
                                        "path": predictor.path, "reason": predictor.reason or None,
                                        "model_format": self._settings.model_format,
                                        "degraded": degraded or None})

    def _fall_back(self, cause: Exception) -> None:
        """Serve the last good version from the cache, if there is one (and it still verifies)."""
        from model.errors import IncompatibleError, IntegrityError
        from model.loader import load_last_good
        from model.store import ModelStore

        if isinstance(cause, IntegrityError | IncompatibleError | Unservable):
            return  # the store answered: what it names is refused, not unreachable
        s = self._settings
        try:
            loaded = load_last_good(ModelStore(s.model_store), s.model_name, alias=s.model_alias,
                                    version=s.model_version, cache_dir=Path(s.cache_dir),
                                    verifier=self._verifier, pickle=not s.pickle_free, defer=True)
            if loaded is None:
                return
            predictor = self._predictor(loaded)
        except Exception as exc:
            log.warning("the cached last good model is unusable", extra={"error": str(exc)})
            return
        self._serve(predictor, degraded=f"the model store cannot be reached ({cause}); serving the last "
                                        f"verified version {loaded.version} from the local cache")

    @functools.cached_property
    def _verifier(self):
        """The signature verifier MODEL_VERIFY_KEY names (None: signatures are not required); built
        once per worker, not per retry (a KMS verifier holds a client)."""
        from model.signing import verifier

        return verifier(self._settings.verify_key)

    def _load(self) -> Predictor:
        from model.loader import load_model
        from model.store import ModelStore

        s = self._settings
        current = self.predictor
        store = ModelStore(s.model_store)
        if current is not None:
            # Serving the cached version: keep its predictor if the store names the same one.
            wanted = store.resolve(s.model_name, alias=s.model_alias, version=s.model_version)
            if wanted == current.info["version"]:
                return current
        loaded = load_model(store, s.model_name, alias=s.model_alias, version=s.model_version,
                            cache_dir=Path(s.cache_dir), verifier=self._verifier, pickle=not s.pickle_free,
                            defer=True)
        return self._predictor(loaded)

    def _predictor(self, loaded) -> Predictor:
        """The Predictor of a loaded version, through its model.onnx when that passes its parity
        re-check (the pickle left as it is), else through the pickle, unpickled now; warmed up.
        Unservable when there is no pickle to fall back to."""
        name = f"{loaded.manifest['name']} {loaded.version}"
        max_batch = self._settings.max_batch
        compiled, reason = None, ""
        try:
            compiled = open_compiled(loaded.onnx, loaded.manifest)
        except NotCompiled as exc:
            reason = str(exc)
        schema = loaded.manifest["input_schema"]
        if compiled is not None and loaded.artifact is not None and has_categories(schema):
            # The up-front category checks (a 400 naming the known values) need the estimator's
            # encoders: unpickled, as the pickle path does, and still served through model.onnx.
            loaded = loaded.unpickled()
        if compiled is not None and loaded.estimator is None:
            try:
                predictor = Predictor(None, loaded.manifest, max_batch=max_batch, compiled=compiled)
            except ValueError as exc:  # model.onnx lacks an output the manifest promises
                compiled, reason = None, str(exc)
            else:
                predictor.warm_up()
                return predictor
        if compiled is None and loaded.estimator is None and loaded.artifact is None:
            raise Unservable(f"{name}: {reason}; pickle-free mode (MODEL_FORMAT=onnx) has no pickle "
                             "to fall back to")
        if compiled is None and loaded.onnx is not None:
            # A file that verified by sha256 but does not run or answer as published: worth a
            # warning (a runtime that differs from the publisher's), not a refusal.
            log.warning("model.onnx not used; serving with the pickle",
                        extra={"model": {"name": loaded.manifest["name"], "version": loaded.version},
                               "reason": reason})
        loaded = loaded.unpickled()
        predictor = Predictor(loaded.estimator, loaded.manifest, max_batch=max_batch,
                              compiled=compiled, reason=reason)
        predictor.warm_up()
        return predictor
