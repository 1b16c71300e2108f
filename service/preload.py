"""What the gunicorn master imports before it forks the workers, so that they share it.

A worker's start is mostly imports. The master imports the libraries every worker needs (Flask,
onnxruntime; scipy when the live drift gauges are on) and, only when a worker will unpickle the
version it serves, what unpickling needs: scikit-learn alone is most of a second. A version served
through its model.onnx is never unpickled (service/holder.py), so for it the master skips
scikit-learn and the workers start without it.

Which one the workers will load is read from the store (the alias and the manifest) with a short,
single-attempt timeout: the answer is only a hint. When the store cannot say (down, slow, a missing
alias), the master imports what unpickling needs, as a worker would.
"""

from __future__ import annotations

import importlib
import logging

from service.config import Settings

log = logging.getLogger("service.preload")

SHARED_LIBRARIES = (
    "flask",
    # compiled models (service/compiled.py): the runtime itself; sessions are built in each worker
    "onnxruntime",
)
# The live drift gauges' statistics (model/drift.py).
DRIFT_LIBRARIES = ("scipy.special",)
# What unpickling the built-in pipelines needs; other estimators import the rest in the worker.
PICKLE_LIBRARIES = (
    "joblib",
    "sklearn.pipeline",
    "sklearn.linear_model",
    "sklearn.preprocessing",
    "sklearn.feature_extraction.text",
)
# The hint may wait this long for the store per call, once: a store that does not answer in time is
# treated as "cannot say".
_PROBE_TIMEOUT = 2.0


def will_unpickle(settings: Settings, s3_client=None) -> bool:
    """Whether a worker will unpickle the version `settings` select: it has no model.onnx, or it has
    category columns (the up-front checks walk the estimator). True when the store cannot say."""
    from model.artifact import compiled_file
    from model.store import ModelStore
    from service.tables import has_categories

    if settings.pickle_free:
        return False
    try:
        s3_client = s3_client or _probe_client(settings.model_store)
        store, name = ModelStore(settings.model_store, s3_client=s3_client), settings.model_name
        manifest = store.manifest(name, store.resolve(name, alias=settings.model_alias,
                                                      version=settings.model_version))
    except Exception as exc:  # any failure: cannot say
        log.info("cannot tell whether the model will be unpickled; importing what unpickling needs",
                 extra={"error": str(exc)})
        return True
    return not compiled_file(manifest) or has_categories(manifest.get("input_schema") or {})


def _probe_client(store_uri: str):
    """For an S3 store, a client that gives up quickly (one attempt, short timeouts); else None."""
    if not store_uri.startswith("s3://"):
        return None
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(connect_timeout=_PROBE_TIMEOUT, read_timeout=_PROBE_TIMEOUT,
                                            retries={"max_attempts": 1, "mode": "standard"}))


def modules(settings: Settings, s3_client=None) -> tuple[str, ...]:
    """The modules the master imports for `settings`, in order."""
    drift = DRIFT_LIBRARIES if settings.capture_rate > 0 and settings.drift_window > 0 else ()
    pickle = PICKLE_LIBRARIES if will_unpickle(settings, s3_client) else ()
    return SHARED_LIBRARIES + drift + pickle


def preload(settings: Settings) -> tuple[str, ...]:
    """Import what the workers will need (see `modules`); returns the module names."""
    names = modules(settings)
    for name in names:
        importlib.import_module(name)
    return names
