"""Load a published model for serving: resolve, fetch to a local cache, verify, unpickle.

This is the function the service calls in each worker when it starts. The sha256 is checked on the
exact bytes that are unpickled, so nothing can change the file between the check and the load.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

from model.artifact import ARTIFACT_FILE, runtime_versions, sha256_bytes, verify_bytes
from model.errors import IncompatibleError, IntegrityError
from model.store import ModelStore


@dataclass(frozen=True)
class LoadedModel:
    """A verified estimator and the manifest it was published with."""

    estimator: object
    manifest: dict

    @property
    def version(self) -> str:
        return self.manifest["version"]


def check_compatible(manifest: dict, running: dict | None = None) -> None:
    """Refuse a pickle made by a scikit-learn whose major.minor differs from the running one.

    scikit-learn does not promise that a pickle loads (or predicts the same) across feature
    releases; patch releases are accepted.
    """
    running = running or runtime_versions()
    recorded = manifest["runtime"]["scikit_learn"]
    if recorded.split(".")[:2] != running["scikit_learn"].split(".")[:2]:
        raise IncompatibleError(
            f"{manifest['name']} {manifest['version']} was trained with scikit-learn {recorded}; "
            f"this process runs {running['scikit_learn']}: retrain it or run a matching image"
        )


def _cached_bytes(store: ModelStore, manifest: dict, cache_dir: Path | None) -> bytes:
    if cache_dir is None:
        return store.read_artifact(manifest["name"], manifest["version"])
    path = Path(cache_dir) / manifest["name"] / manifest["version"] / ARTIFACT_FILE
    if path.is_file():
        data = path.read_bytes()
        if sha256_bytes(data) == manifest["artifact"]["sha256"]:
            return data
    data = store.read_artifact(manifest["name"], manifest["version"])
    verify_bytes(data, manifest)  # never cache bytes that are wrong
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return data


def load_model(
    store: ModelStore,
    name: str,
    *,
    alias: str | None = None,
    version: str | None = None,
    cache_dir: Path | None = None,
) -> LoadedModel:
    """Resolve (a pinned `version` wins over `alias`), verify and unpickle a model."""
    import joblib

    resolved = store.resolve(name, alias=alias, version=version)
    manifest = store.manifest(name, resolved)
    check_compatible(manifest)
    data = _cached_bytes(store, manifest, cache_dir)
    verify_bytes(data, manifest)
    try:
        estimator = joblib.load(io.BytesIO(data))
    except Exception as exc:  # a pickle can fail in arbitrary ways; all mean "unusable"
        raise IntegrityError(f"artifact of {name} {resolved} cannot be unpickled: {exc}") from None
    if not hasattr(estimator, "predict_proba"):
        raise IntegrityError(f"artifact of {name} {resolved} has no predict_proba")
    return LoadedModel(estimator, manifest)
