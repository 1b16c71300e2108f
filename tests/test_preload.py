"""What the gunicorn master imports before forking (service/preload.py): scikit-learn only when a
worker will unpickle the version it serves, so a compiled model's workers start without it."""

from __future__ import annotations

import os
import signal
import time

import pytest
import requests
from helpers import ROOT, GunicornServer, write_churn_csv

from service.config import Settings
from service.preload import PICKLE_LIBRARIES, SHARED_LIBRARIES, modules


@pytest.fixture(scope="module")
def compiled():
    """digits compiled to ONNX: a table of numbers."""
    from model.data import load_dataset
    from model.train import train

    return {"digits": train(load_dataset("digits"), name="digits")}


@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    """The README's churn table and recipe (one-hot encoded categories): it compiles."""
    import sys

    from model.data import load_dataset
    from model.train import train

    if str(ROOT) not in sys.path:  # the example recipe is imported from the repo root
        sys.path.insert(0, str(ROOT))
    path = write_churn_csv(tmp_path_factory.mktemp("churn") / "churn.csv")
    return train(load_dataset(str(path), label_column="churned"), name="churn",
                 recipe="examples.churn_recipe:build")


def publish(uri: str, artifact: bytes, manifest: dict, onnx: bytes | None = None) -> None:
    from model.store import ModelStore

    store = ModelStore(uri)
    store.publish(artifact, manifest, onnx=onnx)
    store.move_alias(manifest["name"], "production", manifest["version"])


def settings(uri: str, name: str, **extra) -> Settings:
    return Settings.from_env({"MODEL_STORE": uri, "MODEL_NAME": name, **extra})


def test_a_compiled_model_of_numbers_needs_no_scikit_learn_in_the_master(store_uri, compiled):
    candidate = compiled["digits"]
    assert candidate.onnx is not None
    publish(store_uri, candidate.artifact, candidate.manifest, candidate.onnx)
    assert modules(settings(store_uri, "digits")) == SHARED_LIBRARIES


def test_a_version_that_will_be_unpickled_gets_scikit_learn_preloaded(store_uri, trained_digits):
    publish(store_uri, *trained_digits)  # published without model.onnx
    assert modules(settings(store_uri, "digits")) == SHARED_LIBRARIES + PICKLE_LIBRARIES


def test_category_columns_are_checked_by_the_estimator_so_it_is_unpickled(tmp_path, churn):
    assert churn.onnx is not None, churn.manifest.get("onnx")
    uri = str(tmp_path / "store")
    publish(uri, churn.artifact, churn.manifest, churn.onnx)
    assert modules(settings(uri, "churn")) == SHARED_LIBRARIES + PICKLE_LIBRARIES


def test_when_the_store_cannot_say_the_master_imports_what_unpickling_needs(tmp_path, aws_env):
    everything = SHARED_LIBRARIES + PICKLE_LIBRARIES
    assert modules(settings(str(tmp_path / "nothing-here"), "digits")) == everything
    assert modules(settings("s3://no-such-bucket-here/models", "digits")) == everything


def test_pickle_free_mode_never_imports_scikit_learn(tmp_path, trained_digits):
    uri = str(tmp_path / "store")
    publish(uri, *trained_digits)
    assert modules(settings(uri, "digits", MODEL_FORMAT="onnx")) == SHARED_LIBRARIES


def test_live_drift_gauges_add_scipy(tmp_path, compiled):
    uri = str(tmp_path / "store")
    candidate = compiled["digits"]
    publish(uri, candidate.artifact, candidate.manifest, candidate.onnx)
    assert "scipy.special" in modules(settings(uri, "digits", CAPTURE_RATE="0.1"))


def test_a_reload_onto_a_version_that_is_unpickled_preloads_it(tmp_path, compiled, trained_digits):
    """gunicorn starts on compiled digits without scikit-learn; the alias moves to a version without
    model.onnx and SIGHUP's new workers serve it, the master having imported scikit-learn first."""
    from model.store import ModelStore

    uri = str(tmp_path / "store")
    candidate = compiled["digits"]
    publish(uri, candidate.artifact, candidate.manifest, candidate.onnx)
    artifact, plain = trained_digits
    ModelStore(uri).publish(artifact, plain)
    server = GunicornServer(tmp_path / "g", {"MODEL_STORE": uri, "LOG_LEVEL": "info"})
    try:
        assert requests.get(server.url + "/model", timeout=5).json()["serving"]["path"] == "onnx"
        assert "preloaded flask, onnxruntime\"" in server.log()
        ModelStore(uri).move_alias("digits", "production", plain["version"])
        os.kill(int(server.pidfile.read_text()), signal.SIGHUP)
        server.wait_until("/ready")
        served = {}
        for _ in range(100):  # the old workers may answer for a moment
            served = requests.get(server.url + "/model", timeout=5).json()
            if served["version"] == plain["version"]:
                break
            time.sleep(0.1)
        assert served["version"] == plain["version"] and served["serving"]["path"] == "sklearn"
        assert "preloaded flask, onnxruntime, joblib, sklearn.pipeline" in server.log()
    finally:
        server.stop()
