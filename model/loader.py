"""Load a published model for serving: resolve, fetch to a local cache, verify, unpickle.

This is the function the service calls in each worker when it starts. The sha256 is checked on the
exact bytes that are unpickled, so nothing can change the file between the check and the load.
A compiled version's model.onnx is fetched and checked the same way. In pickle-free mode
(`pickle=False`) nothing is unpickled: only a version with a verified model.onnx loads. With
`defer=True` (the service's default mode) a compiled version's pickle is fetched and verified but not
unpickled: `LoadedModel.unpickled()` does that if its model.onnx cannot serve. Unpickling is what
needs scikit-learn, whose import is most of a worker's start.

With a cache folder, every successful load also records the version as the *last good* one for its
selector (this store, this model, this alias or pinned version): `load_last_good` loads it from the
cache alone, verified again, for a worker that starts while the store cannot be reached.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from model.artifact import (
    ARTIFACT_FILE,
    compiled_file,
    sha256_bytes,
    verify_bytes,
    verify_compiled,
)
from model.errors import IncompatibleError, IntegrityError
from model.store import ModelStore


@dataclass(frozen=True)
class LoadedModel:
    """A verified estimator (None in pickle-free mode), the manifest it was published with, and its
    verified model.onnx bytes when it was compiled."""

    estimator: object
    manifest: dict
    onnx: bytes | None = None
    # The verified pickle's bytes when unpickling was deferred (estimator None until unpickled()).
    artifact: bytes | None = None

    @property
    def version(self) -> str:
        return self.manifest["version"]

    def unpickled(self) -> LoadedModel:
        """This version with its estimator: unpickled now if loading deferred it, else itself.
        IntegrityError if there is no pickle (pickle-free mode) or it cannot be unpickled."""
        if self.estimator is not None:
            return self
        if self.artifact is None:
            raise IntegrityError(f"{self.manifest['name']} {self.version}: pickle-free mode "
                                 "(MODEL_FORMAT=onnx) has no pickle to load")
        return _unpickle(self.artifact, self.manifest, self.onnx)


def check_compatible(manifest: dict, running: dict | None = None) -> None:
    """Refuse a pickle made by a scikit-learn whose major.minor differs from the running one.

    scikit-learn does not promise that a pickle loads (or predicts the same) across feature
    releases; patch releases are accepted.
    """
    # The installed version, read without importing scikit-learn (a second of a worker's start).
    installed = running["scikit_learn"] if running else metadata.version("scikit-learn")
    recorded = manifest["runtime"]["scikit_learn"]
    if recorded.split(".")[:2] != installed.split(".")[:2]:
        raise IncompatibleError(
            f"{manifest['name']} {manifest['version']} was trained with scikit-learn {recorded}; "
            f"this process runs {installed}: retrain it or run a matching image"
        )


def _store_folder(cache_dir: Path, store_uri: str) -> Path:
    """The cache of one store: two stores may both have a `digits` with a `production` alias."""
    return Path(cache_dir) / hashlib.sha256(store_uri.encode()).hexdigest()[:16]


def cached_artifact(cache_dir: Path, store_uri: str, name: str, version: str,
                    file: str = ARTIFACT_FILE) -> Path:
    """Where the cache keeps a version's pickle (or another of its files)."""
    return _store_folder(cache_dir, store_uri) / name / version / file


def _cached_bytes(store: ModelStore, manifest: dict, cache_dir: Path | None, compiled: bool = False) -> bytes:
    name, version = manifest["name"], manifest["version"]

    def fetch() -> bytes:
        if compiled:
            return store.read_compiled(name, version, manifest)
        data = store.read_artifact(name, version)
        verify_bytes(data, manifest)  # never cache bytes that are wrong
        return data

    if cache_dir is None:
        return fetch()
    record = manifest["onnx"] if compiled else manifest["artifact"]
    path = cached_artifact(cache_dir, store.uri, name, version, compiled_file(manifest) if compiled else
                           ARTIFACT_FILE)
    if path.is_file():
        data = path.read_bytes()
        if sha256_bytes(data) == record["sha256"]:
            return data
    data = fetch()
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
    verifier=None,
    pickle: bool = True,
    defer: bool = False,
) -> LoadedModel:
    """Resolve (a pinned `version` wins over `alias`), verify and unpickle a model, and fetch and
    verify its model.onnx when it has one.

    With a `verifier` (model.signing) the version's signature is checked before anything else is
    read: an unsigned or wrongly signed version is never unpickled. With `pickle=False` nothing is
    unpickled: a version without model.onnx is an IntegrityError. With `defer=True` a version with
    model.onnx is verified but left pickled (see `LoadedModel.unpickled`).
    """
    resolved = store.resolve(name, alias=alias, version=version)
    manifest = store.manifest(name, resolved, verifier=verifier)
    if pickle:
        check_compatible(manifest)
    else:
        _require_compiled(manifest)
    onnx = _cached_bytes(store, manifest, cache_dir, compiled=True) if compiled_file(manifest) else None
    if pickle and defer and onnx is not None:
        loaded = LoadedModel(None, manifest, onnx, artifact=_cached_bytes(store, manifest, cache_dir))
    elif pickle:
        loaded = _unpickle(_cached_bytes(store, manifest, cache_dir), manifest, onnx)
    else:
        loaded = LoadedModel(None, manifest, onnx)
    if cache_dir is not None:
        _remember(Path(cache_dir), store, name, alias, version, manifest)
    return loaded


def _selector_file(cache_dir: Path, store_uri: str, name: str, alias: str | None,
                   version: str | None) -> Path:
    selector = f"version-{version}" if version else f"alias-{alias or 'production'}"
    return _store_folder(cache_dir, store_uri) / name / "last-good" / f"{selector}.json"


def _remember(cache_dir: Path, store: ModelStore, name: str, alias, version, manifest: dict) -> None:
    """Record the version as its selector's last good one: the manifest's exact bytes and signature."""
    path = _selector_file(cache_dir, store.uri, name, alias, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    signature = store.signature(name, manifest["version"])
    record = {"manifest": store.manifest_bytes(name, manifest["version"]).decode(),
              "signature": signature.to_bytes().decode() if signature else None}
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def load_last_good(
    store: ModelStore,
    name: str,
    *,
    alias: str | None = None,
    version: str | None = None,
    cache_dir: Path,
    verifier=None,
    pickle: bool = True,
    defer: bool = False,
) -> LoadedModel | None:
    """The last version loaded for this selector, from the cache only (verified again); None if none.
    `pickle` and `defer` as for `load_model`.

    `store` only names the store (its URI is part of the key): nothing is read from it.

    IntegrityError if the cached pickle no longer matches the sha256 its manifest recorded.
    """
    from model.signing import Signature
    from model.store import parse_manifest, verify_signature

    path = _selector_file(Path(cache_dir), store.uri, name, alias, version)
    try:
        record = json.loads(path.read_text())
        manifest_bytes = record["manifest"].encode()
        cached = json.loads(manifest_bytes)
        data = cached_artifact(cache_dir, store.uri, cached["name"], cached["version"]).read_bytes() \
            if pickle else None
        onnx = cached_artifact(cache_dir, store.uri, cached["name"], cached["version"],
                               compiled_file(cached)).read_bytes() if compiled_file(cached) else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if verifier is not None:
        signature = Signature.from_bytes(record["signature"].encode()) if record.get("signature") else None
        verify_signature(manifest_bytes, signature, verifier, f"cached {cached['name']} {cached['version']}")
    manifest = parse_manifest(manifest_bytes, cached["name"], cached["version"])
    if onnx is not None:
        verify_compiled(onnx, manifest)
    if not pickle:
        _require_compiled(manifest)
        return LoadedModel(None, manifest, onnx)
    check_compatible(manifest)
    if defer and onnx is not None:
        verify_bytes(data, manifest)
        return LoadedModel(None, manifest, onnx, artifact=data)
    return _unpickle(data, manifest, onnx)


def _require_compiled(manifest: dict) -> None:
    if not compiled_file(manifest):
        reason = (manifest.get("onnx") or {}).get("skipped", "published before models were compiled")
        raise IntegrityError(f"{manifest['name']} {manifest['version']} has no model.onnx ({reason}); "
                             "pickle-free mode (MODEL_FORMAT=onnx) serves only compiled versions")


def _unpickle(data: bytes, manifest: dict, onnx: bytes | None = None) -> LoadedModel:
    import joblib

    name, resolved = manifest["name"], manifest["version"]
    verify_bytes(data, manifest)
    try:
        estimator = joblib.load(io.BytesIO(data))
    except Exception as exc:  # a pickle can fail in arbitrary ways; all mean "unusable"
        raise IntegrityError(f"artifact of {name} {resolved} cannot be unpickled: {exc}") from None
    if not hasattr(estimator, "predict"):
        raise IntegrityError(f"artifact of {name} {resolved} is not an estimator (it has no predict)")
    return LoadedModel(estimator, manifest, onnx)
