"""Loading for serving: the sha256 is checked before unpickling, versions must be compatible."""

import json
import subprocess
import sys

import pytest

from model.artifact import dump_estimator
from model.errors import IncompatibleError, IntegrityError
from model.loader import load_model
from model.store import ModelStore


@pytest.fixture
def published(store_uri, trained_digits):
    store = ModelStore(store_uri)
    artifact, manifest = trained_digits
    store.publish(artifact, manifest)
    store.move_alias("digits", "production", manifest["version"])
    return store, manifest


def test_tampered_pickle_is_refused(published):
    store, manifest = published
    key = f"digits/versions/{manifest['version']}/model.joblib"
    other = dump_estimator({"not": "the model"})
    # Same size, other bytes, so only the hash can catch it.
    tampered = (other * (manifest["artifact"]["size"] // len(other) + 1))[: manifest["artifact"]["size"]]
    store.backend.write(key, tampered)
    with pytest.raises(IntegrityError, match="sha256"):
        load_model(store, "digits")


def test_truncated_pickle_is_refused(published):
    store, manifest = published
    key = f"digits/versions/{manifest['version']}/model.joblib"
    data, _ = store.backend.read(key)
    store.backend.write(key, data[:100])
    with pytest.raises(IntegrityError, match="truncated"):
        load_model(store, "digits")


def test_missing_pickle_is_refused(published):
    store, manifest = published
    store.backend.delete(f"digits/versions/{manifest['version']}/model.joblib")
    with pytest.raises(IntegrityError, match="missing"):
        load_model(store, "digits")


def test_corrupt_pickle_with_matching_manifest_is_refused(published, trained_digits):
    store, manifest = published
    garbage = b"this is not a pickle at all"
    from model.artifact import sha256_bytes

    forged = dict(manifest, version="20990101T000000Z-00000000")
    forged["artifact"] = dict(manifest["artifact"], sha256=sha256_bytes(garbage), size=len(garbage))
    store.publish(garbage, forged)
    with pytest.raises(IntegrityError, match="cannot be unpickled"):
        load_model(store, "digits", version=forged["version"])


def test_any_estimator_loads_but_a_pickled_non_estimator_does_not(published, trained_digits):
    """Regressors and classifiers without predict_proba are served; a pickled dict is not a model."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression

    from model.artifact import sha256_bytes

    store, manifest = published
    X, y = load_diabetes(return_X_y=True)
    regressor = dump_estimator(LinearRegression().fit(X, y))
    as_regressor = dict(manifest, version="20990101T000001Z-00000001", task="regression", classes=[])
    as_regressor["artifact"] = dict(manifest["artifact"], sha256=sha256_bytes(regressor), size=len(regressor))
    store.publish(regressor, as_regressor)
    assert load_model(store, "digits", version=as_regressor["version"]).estimator.predict(X[:1]).shape == (1,)
    weights = dump_estimator({"coef": [1.0, 2.0]})
    forged = dict(manifest, version="20990101T000002Z-00000002")
    forged["artifact"] = dict(manifest["artifact"], sha256=sha256_bytes(weights), size=len(weights))
    store.publish(weights, forged)
    with pytest.raises(IntegrityError, match="is not an estimator"):
        load_model(store, "digits", version=forged["version"])


def test_scikit_learn_version_mismatch_is_refused(published):
    store, manifest = published
    old = dict(manifest, runtime=dict(manifest["runtime"], scikit_learn="0.24.2"))
    store.backend.write(
        f"digits/versions/{manifest['version']}/manifest.json", json.dumps(old).encode()
    )
    with pytest.raises(IncompatibleError, match=r"scikit-learn 0\.24\.2"):
        load_model(store, "digits")


def test_cache_is_used_and_never_trusted(published, tmp_path):
    store, manifest = published
    cache = tmp_path / "cache"
    load_model(store, "digits", cache_dir=cache)
    from model.loader import cached_artifact

    cached = cached_artifact(cache, store.uri, "digits", manifest["version"])
    assert cached.read_bytes() == store.read_artifact("digits", manifest["version"])
    cached.write_bytes(b"corrupted cache")
    # A bad cache entry is replaced from the store, not loaded.
    assert load_model(store, "digits", cache_dir=cache).version == manifest["version"]
    assert cached.read_bytes() == store.read_artifact("digits", manifest["version"])


def test_importing_the_package_loads_nothing():
    code = (
        "import sys, model, model.store, model.loader, model.cli, model.gate, model.backends\n"
        "assert 'sklearn' not in sys.modules and 'boto3' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
