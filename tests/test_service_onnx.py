"""Serving through onnxruntime: a version with a verified model.onnx that passes its parity re-check is
served by it (path "onnx"), with the same answers and the same response shapes as scikit-learn;
otherwise the pickle serves and /model says why. Pickle-free mode (MODEL_FORMAT=onnx) never unpickles.

Versions are built by the real training code and published to local stores; they are served by the
Flask app (and once by gunicorn) and checked against the estimators in-process.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import time

import numpy as np
import pytest
import requests
from helpers import ROOT, GunicornServer, write_churn_csv
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from test_service_models import rows_of

from service.app import create_app, start_model

CHURN_ROW = [40.0, "pro", True, "happy customer"]


# ---- versions -----------------------------------------------------------------------------------
class Version:
    """A trained candidate, the estimator it pickled, and rows to ask it about (as JSON instances)."""

    def __init__(self, candidate, X):
        import joblib

        self.candidate = candidate
        self.manifest = candidate.manifest
        self.estimator = joblib.load(io.BytesIO(candidate.artifact))
        self.X = X
        self.rows = rows_of(X)


def _forest_classifier():
    """A RandomForestClassifier with string labels, published the way a notebook does."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    from model.publish import build_manifest

    data = load_iris()
    names = np.array(data.target_names)[data.target]
    order = np.random.default_rng(0).permutation(len(names))
    X, y = data.data[order], names[order]
    forest = RandomForestClassifier(n_estimators=15, max_depth=4, random_state=0).fit(X[:110], y[:110])
    return Version(build_manifest(forest, X[110:], y[110:], name="forest"), X[110:])


def _churn_data(folder):
    from model.data import load_dataset

    if str(ROOT) not in sys.path:  # the example recipe is imported from the repo root
        sys.path.insert(0, str(ROOT))
    return load_dataset(str(write_churn_csv(folder / "churn.csv")), label_column="churned")


def build_churn(folder) -> Version:
    """The README's churn table and recipe (one-hot, handle_unknown="error"): it compiles."""
    from model.train import train

    churn = _churn_data(folder)
    return Version(train(churn, name="churn", recipe="examples.churn_recipe:build"),
                   churn.X.iloc[:60].reset_index(drop=True))


def _news(folder) -> Version:
    """A tiny tf-idf text model: it never reaches parity in ONNX, so it has no model.onnx."""
    from model.data import load_dataset
    from model.train import train

    rows = ["label,text"]
    for i in range(20):
        rows.append(f"sport,the team won the match {i} with a late goal")
        rows.append(f"tech,the new laptop {i} has a faster chip and more memory")
    (folder / "news.csv").write_text("\n".join(rows) + "\n")
    news = load_dataset(str(folder / "news.csv"), text_column="text")
    return Version(train(news, name="news"), ["a late goal", "a faster chip", "", "Ünïcödé"])


def build_versions(folder) -> dict:
    """{name: Version} of every kind the service serves: compiled ones, and two that are not."""
    from model.data import load_dataset
    from model.train import train

    churn = _churn_data(folder)
    digits, iris, cancer = load_dataset("digits"), load_dataset("iris"), load_dataset("breast_cancer")
    diabetes = load_dataset("diabetes")
    return {
        "digits": Version(train(digits, name="digits"), digits.X[:60]),
        "forest": _forest_classifier(),
        "iris-svc": Version(train(iris, name="iris-svc", recipe="linear_svc"), iris.X[::3]),
        "cancer-svc": Version(train(cancer, name="cancer-svc", recipe="linear_svc"), cancer.X[:60]),
        "diabetes": Version(train(diabetes, name="diabetes", recipe="forest_regressor"), diabetes.X[:60]),
        "churn": build_churn(folder),
        "news": _news(folder),
        "hgb": Version(train(churn, name="hgb", recipe="hgb_table"),
                       churn.X.iloc[:60].reset_index(drop=True)),
    }


def publish(uri: str, candidate, *, name: str | None = None, onnx: bytes | None = None,
            manifest: dict | None = None) -> dict:
    """Publish a candidate (or a changed copy of its manifest) with `production` on it."""
    from model.store import ModelStore

    manifest = manifest or candidate.manifest
    store = ModelStore(uri)
    store.publish(candidate.artifact, manifest, onnx=onnx if onnx is not None else candidate.onnx)
    store.move_alias(name or manifest["name"], "production", manifest["version"])
    return manifest


def make_app(uri: str, name: str, cache, **extra):
    return create_app({"MODEL_STORE": uri, "MODEL_NAME": name, "LOG_LEVEL": "WARNING",
                       "MODEL_CACHE_DIR": str(cache), "MODEL_RETRY_INITIAL": "0.05",
                       "MODEL_RETRY_MAX": "0.2", "MAX_BATCH": "200", **extra})


def serve(uri: str, name: str, cache, **extra):
    """The app serving `name`, loaded; fails the test with the holder's error if it is not ready."""
    app = make_app(uri, name, cache, **extra)
    holder = app.extensions["service"].holder
    if not start_model(app, wait=60):
        holder.stop()
        pytest.fail(f"{name} cannot be served: {holder.error}")
    return app


def not_ready(uri: str, name: str, cache, **extra):
    """The app for a version that must not be served: not ready after its first attempt."""
    app = make_app(uri, name, cache, **extra)
    assert not start_model(app, wait=30)
    app.extensions["service"].holder.stop()
    return app


def post(client, body):
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post("/predict", data=data, content_type="application/json")


def break_weights(onnx_bytes: bytes) -> bytes:
    """The same graph with one intercept of its linear classifier changed: it loads and runs, its
    sha256 is recorded anew, and only the parity re-check can tell."""
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    node = next(n for n in model.graph.node if n.op_type == "LinearClassifier")
    intercepts = next(a for a in node.attribute if a.name == "intercepts")
    intercepts.floats[0] += 3.0
    return model.SerializeToString()


def rerecorded(manifest: dict, onnx_bytes: bytes, name: str) -> dict:
    """A copy of the manifest for another model name whose onnx record matches `onnx_bytes`."""
    record = {**manifest["onnx"], "sha256": hashlib.sha256(onnx_bytes).hexdigest(), "size": len(onnx_bytes)}
    return {**manifest, "name": name, "onnx": record}


# ---- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    return build_versions(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory, versions):
    uri = str(tmp_path_factory.mktemp("onnx") / "store")
    for version in versions.values():
        publish(uri, version.candidate)
    return uri


class Apps(dict):
    """Test clients by (model name, MODEL_FORMAT), each app started on first use."""

    def __init__(self, uri: str, folder):
        super().__init__()
        self.uri, self.folder, self.apps = uri, folder, []

    def __missing__(self, key):
        name, model_format = key if isinstance(key, tuple) else (key, "auto")
        app = serve(self.uri, name, self.folder / f"cache-{model_format}", MODEL_FORMAT=model_format)
        self.apps.append(app)
        self[key] = client = app.test_client()
        return client

    def stop(self) -> None:
        for app in self.apps:
            app.extensions["service"].holder.stop()


@pytest.fixture(scope="module")
def clients(store_uri, tmp_path_factory):
    apps = Apps(store_uri, tmp_path_factory.mktemp("caches"))
    yield apps
    apps.stop()


# ---- which path serves, and what /model says --------------------------------------------------------
COMPILED = ["digits", "forest", "iris-svc", "cancer-svc", "diabetes", "churn"]


def test_what_compiled_and_what_did_not(versions):
    """The premise of the tests below: the model side compiled these and skipped hgb."""
    for name in COMPILED:
        assert versions[name].candidate.onnx is not None, versions[name].manifest["onnx"]
    assert "skipped" in versions["hgb"].manifest["onnx"] and "skipped" in versions["news"].manifest["onnx"]


@pytest.mark.parametrize("name", COMPILED)
def test_a_compiled_version_is_served_through_onnxruntime(clients, versions, name):
    body = clients[name].get("/model").json
    serving = body.pop("serving")
    assert body == versions[name].manifest  # the rest of /model is the manifest, as before
    assert serving["path"] == "onnx" and serving["model_format"] == "auto" and "reason" not in serving
    assert serving["runtime"].startswith("onnxruntime ") and serving["file"] == "model.onnx"
    assert serving["parity"]["rows"] == len(versions[name].manifest["onnx"]["parity"]["rows"])
    assert 0 <= serving["parity"]["worst_difference"] <= 1e-4
    assert clients[name].get("/ready").json["path"] == "onnx"


def test_a_version_that_does_not_compile_is_served_by_scikit_learn_with_the_reason(clients):
    serving = clients["hgb"].get("/model").json["serving"]
    assert serving["path"] == "sklearn"
    assert serving["reason"].startswith("no model.onnx: skl2onnx cannot convert")
    assert "HistGradientBoosting" in serving["reason"]


def test_a_text_model_keeps_the_numpy_path_with_the_reason(clients, store_uri, tmp_path):
    serving = clients["news"].get("/model").json["serving"]
    assert serving["path"] == "numpy" and serving["reason"].startswith("no model.onnx: ")
    app = not_ready(store_uri, "news", tmp_path / "cache", MODEL_FORMAT="onnx")
    assert "has no model.onnx" in app.test_client().get("/ready").json["error"]["message"]


# ---- the same answers, the same shapes -------------------------------------------------------------
def _sklearn_predictions(version: Version, rows: list) -> list:
    """What the scikit-learn path answers for the same version (a Predictor without model.onnx)."""
    from service.predict import Predictor

    predictor = Predictor(version.estimator, version.manifest, max_batch=1000, reason="test")
    assert predictor.path in ("numpy", "sklearn")
    predictions, _ = predictor.predict(predictor.to_matrix(rows))
    return json.loads(json.dumps(predictions))


def assert_same_answers(got: list, want: list, *, scores_atol: float = 1e-4) -> None:
    """Same keys in the same order, equal labels, numbers within the publisher's tolerances."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert list(g) == list(w)
        if "label" in w:
            assert g["label"] == w["label"] and type(g["label"]) is type(w["label"])
        if "value" in w:
            assert isinstance(g["value"], float)
            assert g["value"] == pytest.approx(w["value"], rel=1e-5)
        for key, atol in (("probabilities", 1e-5), ("scores", scores_atol)):
            if key in w:
                assert list(g[key]) == list(w[key])
                np.testing.assert_allclose(list(g[key].values()), list(w[key].values()), rtol=0, atol=atol)


@pytest.mark.parametrize("name", [*COMPILED, "hgb", "news"])
def test_predictions_equal_the_estimators(clients, versions, name):
    version = versions[name]
    response = post(clients[name], {"instances": version.rows})
    assert response.status_code == 200, response.json
    assert response.json["model"] == {"name": name, "version": version.manifest["version"]}
    predictions = response.json["predictions"]
    estimator, X = version.estimator, version.X
    if version.manifest["task"] == "regression":
        np.testing.assert_allclose([p["value"] for p in predictions], estimator.predict(X), rtol=1e-5)
        return
    assert [p["label"] for p in predictions] == estimator.predict(X).tolist()
    if hasattr(estimator, "predict_proba"):
        expected = estimator.predict_proba(X)
        got = [[p["probabilities"][str(c)] for c in estimator.classes_] for p in predictions]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    else:
        scores = estimator.decision_function(X)
        got = [list(p["scores"].values()) for p in predictions]
        np.testing.assert_allclose(np.asarray(got).reshape(scores.shape), scores, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", COMPILED)
def test_responses_have_the_shape_of_the_scikit_learn_path(clients, versions, name):
    version = versions[name]
    got = post(clients[name], {"instances": version.rows}).json["predictions"]
    assert_same_answers(got, _sklearn_predictions(version, version.rows))
    spec = clients[name].get("/openapi.json").json
    validate(spec)
    Draft202012Validator({**spec, "$ref": "#/components/schemas/PredictResponse"}).validate(
        {"model": {"name": name, "version": "v"}, "predictions": got})
    Draft202012Validator({**spec, "$ref": "#/components/schemas/Manifest"}).validate(
        clients[name].get("/model").json)


def test_labels_come_back_as_the_manifests_classes(clients, versions):
    """onnxruntime gives int64 or string labels: the response has the manifest's classes as they are."""
    forest = post(clients["forest"], {"instances": versions["forest"].rows[:5]}).json["predictions"]
    assert {p["label"] for p in forest} <= {"setosa", "versicolor", "virginica"}
    binary = post(clients["cancer-svc"], {"instances": versions["cancer-svc"].rows[:5]}).json["predictions"]
    assert all(type(p["label"]) is int and list(p["scores"]) == ["1"] for p in binary)


# ---- validation applies on the onnx path too --------------------------------------------------------
@pytest.mark.parametrize(("rows", "message"), [
    ([[1.0] * 63], "instances[0] has 63 values, the model expects 64"),
    ([[1.0] * 63 + ["7"]], "instances[0][63] (pixel_7_7) is a string ('7'): feature values must be numbers"),
    ([[1.0] * 63 + [True]], "is a boolean (true): feature values must be numbers"),
    ([[1.0] * 64, [1.0] * 63 + [None]], "instances[1][63] (pixel_7_7) is null"),
])
def test_digits_input_is_checked_before_onnxruntime_sees_it(clients, rows, message):
    response = post(clients["digits"], {"instances": rows})
    assert response.status_code == 400 and message in response.json["error"]["message"], response.json


def test_non_finite_and_overflowing_values_are_400s_naming_the_row(clients):
    big = b'{"instances": [' + b",".join([b"[" + b",".join([b"1"] * 64) + b"]"] * 2) + b", [" + \
        b",".join([b"1"] * 63 + [b"9" * 400]) + b"]]}"
    response = post(clients["digits"], big)
    assert response.status_code == 400
    assert response.json["error"]["message"].startswith("instances[2][63] (pixel_7_7) is not a finite number")
    response = post(clients["digits"], {"instances": [[1.0] * 64, [1e308] * 64]})
    assert response.status_code == 400
    message = response.json["error"]["message"]
    assert message.startswith("instances[1][") and "is too large for this model" in message


def test_extreme_rows_get_what_scikit_learn_gives_or_a_400(clients, versions):
    """The compiled digits model computes in 32-bit floats: up to ±3.4e38 it answers what scikit-learn
    answers, beyond that a row is a 400 naming the value (never an answer that is not a number)."""
    rng = np.random.default_rng(3)
    estimator = versions["digits"].estimator
    answered = refused = 0
    for _ in range(80):
        row = rng.uniform(0, 16, 64)
        picked = rng.choice(64, size=int(rng.integers(1, 4)), replace=False)
        row[picked] = rng.choice([-1.0, 1.0], picked.size) * 10.0 ** rng.uniform(0, 45, picked.size)
        response = post(clients["digits"], {"instances": [row.tolist()]})
        if np.abs(row).max() > np.finfo(np.float32).max:
            assert response.status_code == 400, response.json
            message = response.json["error"]["message"]
            assert "is too large for this model: it computes in 32-bit floats" in message
            refused += 1
            continue
        assert response.status_code == 200, response.json
        got = list(response.json["predictions"][0]["probabilities"].values())
        np.testing.assert_allclose(got, estimator.predict_proba(row[None, :])[0], rtol=0, atol=1e-5)
        answered += 1
    assert refused > 10 and answered > 10
    # A regressor too: a forest's thresholds take any float32, infinities included.
    values = post(clients["diabetes"], {"instances": [[1e308] * 10, [-1e308] * 10]})
    assert values.status_code in (200, 400)
    if values.status_code == 200:
        assert all(np.isfinite(p["value"]) for p in values.json["predictions"])


def test_mixed_table_checks_are_those_of_the_scikit_learn_path(clients, versions):
    """In auto mode the estimator is there: its encoders are read, and an unknown category is refused
    up front with the known values, as on the scikit-learn path."""
    client = clients["churn"]
    refused = post(client, {"instances": [CHURN_ROW, [40.0, "gold", True, "happy customer"]]})
    assert refused.status_code == 400
    message = refused.json["error"]["message"]
    assert message == 'instances[1].plan: expected one of basic, pro, team; got "gold"'
    for row, message in (([40.0, "pro", "yes", "x"], 'instances[0].active: expected true or false'),
                         (["40", "pro", True, "x"], 'instances[0].age: expected a number, got a string')):
        response = post(client, {"instances": [row]})
        assert response.status_code == 400 and message in response.json["error"]["message"]
    as_objects = post(client, {"instances": versions["churn"].X.iloc[:5].to_dict(orient="records")})
    assert as_objects.json == post(client, {"instances": versions["churn"].rows[:5]}).json


# ---- pickle-free mode -----------------------------------------------------------------------------
def test_pickle_free_mode_serves_a_compiled_version_from_the_manifest_alone(clients, versions):
    for name in COMPILED:
        client = clients[(name, "onnx")]
        serving = client.get("/model").json["serving"]
        assert (serving["path"], serving["model_format"]) == ("onnx", "onnx")
        version = versions[name]
        got = post(client, {"instances": version.rows}).json["predictions"]
        assert_same_answers(got, _sklearn_predictions(version, version.rows))
        assert client.get("/").status_code == 200
        validate(client.get("/openapi.json").json)


def test_pickle_free_mode_lets_onnxruntime_refuse_unknown_categories(clients):
    """No estimator, no encoders to read: every string is accepted as a category, and what the
    compiled OneHotEncoder (handle_unknown="error") refuses is a 400 naming the row and column."""
    client = clients[("churn", "onnx")]
    rows = [CHURN_ROW, CHURN_ROW, [40.0, "gold", True, "happy customer"]]
    response = post(client, {"instances": rows})
    assert response.status_code == 400, response.json
    message = response.json["error"]["message"]
    assert message.startswith('the model refused the instances: instances[2].plan: "gold" is not a value '
                              "the model knows (known: basic, pro, team)"), message
    assert "Unknown Category" in message and "\n" not in message and "ONNXRuntimeError" not in message
    note = post(client, {"instances": [[40.0, "pro", True, "a note never seen"]]}).json["error"]["message"]
    assert note.startswith("the model refused the instances: instances[0].note: "), note
    spec = client.get("/openapi.json").json
    row = spec["components"]["schemas"]["PredictRequest"]["properties"]["instances"]["items"]["oneOf"][0]
    assert "enum" not in row["prefixItems"][1] and "may be refused" in row["prefixItems"][1]["description"]


def test_pickle_free_mode_refuses_a_version_without_model_onnx(store_uri, tmp_path):
    app = not_ready(store_uri, "hgb", tmp_path / "cache", MODEL_FORMAT="onnx")
    client = app.test_client()
    for path in ("/ready", "/model"):
        response = client.get(path)
        assert response.status_code == 503
        message = response.json["error"]["message"]
        assert "has no model.onnx (skl2onnx cannot convert" in message
        assert "pickle-free mode (MODEL_FORMAT=onnx) serves only compiled versions" in message
    assert client.get("/").status_code == 503


@pytest.fixture(scope="module")
def garbage_pickle(tmp_path_factory, versions):
    """A store whose digits version's model.joblib was overwritten with garbage after publishing."""
    uri = tmp_path_factory.mktemp("garbage") / "store"
    manifest = publish(str(uri), versions["digits"].candidate)
    (uri / "digits" / "versions" / manifest["version"] / "model.joblib").write_bytes(b"\x80\x04garbage")
    return str(uri)


def test_pickle_free_mode_never_reads_the_pickle(garbage_pickle, tmp_path, versions):
    app = serve(garbage_pickle, "digits", tmp_path / "onnx-cache", MODEL_FORMAT="onnx")
    try:
        client = app.test_client()
        version = versions["digits"]
        response = post(client, {"instances": version.rows[:10]})
        assert response.status_code == 200
        assert [p["label"] for p in response.json["predictions"]] == version.estimator.predict(
            version.X[:10]).tolist()
        assert app.extensions["service"].holder.predictor.estimator is None
    finally:
        app.extensions["service"].holder.stop()
    # auto mode reads the pickle, checks it, and refuses the version
    refused = not_ready(garbage_pickle, "digits", tmp_path / "auto-cache")
    message = refused.test_client().get("/ready").json["error"]["message"]
    assert "artifact of digits" in message and "manifest says" in message


def test_pickle_free_mode_imports_neither_joblib_nor_scikit_learn(store_uri, tmp_path):
    """A fresh interpreter serves a table model and a matrix model pickle-free: scikit-learn and joblib
    are never even imported (the service image could run without them)."""
    script = f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
from service.app import create_app, start_model
answers = {{}}
for name, row in (("churn", {CHURN_ROW!r}), ("digits", [0.0] * 64)):
    app = create_app({{"MODEL_STORE": {store_uri!r}, "MODEL_NAME": name, "MODEL_FORMAT": "onnx",
                      "MODEL_CACHE_DIR": {str(tmp_path / 'cache')!r}, "LOG_LEVEL": "WARNING"}})
    assert start_model(app, wait=60), app.extensions["service"].holder.error
    answers[name] = app.test_client().post("/predict", json={{"instances": [row]}}).status_code
    app.extensions["service"].holder.stop()
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & {{"sklearn", "joblib", "pickle"}})
print(json.dumps({{"answers": answers, "loaded": loaded}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["answers"] == {"churn": 200, "digits": 200}
    assert "sklearn" not in report["loaded"] and "joblib" not in report["loaded"], report


def test_auto_mode_serves_a_compiled_model_of_numbers_without_unpickling_it(store_uri, tmp_path):
    """The default mode (MODEL_FORMAT=auto) verifies digits' pickle (its fallback) but serves its
    model.onnx without unpickling it: scikit-learn is never imported, which is most of a cold start."""
    script = f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
from service.app import create_app, start_model
app = create_app({{"MODEL_STORE": {store_uri!r}, "MODEL_NAME": "digits", "MODEL_FORMAT": "auto",
                  "MODEL_CACHE_DIR": {str(tmp_path / 'cache')!r}, "LOG_LEVEL": "WARNING"}})
assert start_model(app, wait=60), app.extensions["service"].holder.error
client = app.test_client()
answer = client.post("/predict", json={{"instances": [[0.0] * 64]}}).status_code
path = client.get("/model").json["serving"]["path"]
app.extensions["service"].holder.stop()
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & {{"sklearn", "joblib"}})
print(json.dumps({{"answer": answer, "path": path, "loaded": loaded}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"answer": 200, "path": "onnx", "loaded": []}


# ---- a model.onnx that must not be served -------------------------------------------------------------
@pytest.fixture(scope="module")
def broken_store(tmp_path_factory, versions):
    """digits published as `broken` with a model.onnx whose weights were changed before publishing (its
    sha256 and size recorded, so only the parity re-check can catch it)."""
    candidate = versions["digits"].candidate
    wrong = break_weights(candidate.onnx)
    uri = str(tmp_path_factory.mktemp("broken") / "store")
    publish(uri, candidate, onnx=wrong, manifest=rerecorded(candidate.manifest, wrong, "broken"))
    return uri


def test_a_model_onnx_that_fails_its_parity_recheck_falls_back_to_the_pickle(broken_store, tmp_path):
    app = serve(broken_store, "broken", tmp_path / "cache")
    try:
        client = app.test_client()
        serving = client.get("/model").json["serving"]
        # scikit-learn serves instead.
        assert serving["path"] == "sklearn"
        assert serving["reason"].startswith("model.onnx fails its parity re-check: probabilities differ by")
        assert client.get("/ready").json["path"] == "sklearn"
        predictor = app.extensions["service"].holder.predictor
        row = [0.0] * 64
        want = predictor.estimator.predict_proba(np.asarray([row]))[0]
        got = post(client, {"instances": [row]}).json["predictions"][0]["probabilities"]
        np.testing.assert_allclose(list(got.values()), want, rtol=0, atol=1e-12)
        metrics = client.get("/metrics").get_data(as_text=True)
        assert 'model_serving_path{name="broken",path="sklearn",version=' in metrics
    finally:
        app.extensions["service"].holder.stop()


def test_pickle_free_mode_refuses_a_model_onnx_that_fails_its_parity_recheck(broken_store, tmp_path):
    app = not_ready(broken_store, "broken", tmp_path / "cache", MODEL_FORMAT="onnx")
    message = app.test_client().get("/ready").json["error"]["message"]
    assert "model.onnx fails its parity re-check" in message
    assert "pickle-free mode (MODEL_FORMAT=onnx) has no pickle to fall back to" in message


def test_a_model_onnx_changed_in_the_store_is_never_served(tmp_path, versions):
    """Bytes changed after publishing: the sha256 check refuses the version in both modes (the pickle
    is not used instead: the version is tampered with)."""
    uri = tmp_path / "store"
    manifest = publish(str(uri), versions["digits"].candidate)
    path = uri / "digits" / "versions" / manifest["version"] / "model.onnx"
    path.write_bytes(path.read_bytes().replace(b"LinearClassifier", b"LinearClassifieR"))
    for model_format in ("auto", "onnx"):
        app = not_ready(str(uri), "digits", tmp_path / f"cache-{model_format}", MODEL_FORMAT=model_format)
        message = app.test_client().get("/ready").json["error"]["message"]
        assert "model.onnx of digits" in message and "fails its size or sha256 check" in message


def test_a_cached_last_good_compiled_version_serves_through_an_outage(tmp_path, versions):
    """Pickle-free mode keeps the holder's fallback: with the store gone, the cached model.onnx (verified
    again) is served, without a pickle, and /model says why."""
    import shutil

    uri = tmp_path / "store"
    publish(str(uri), versions["diabetes"].candidate)
    cache = tmp_path / "cache"
    first = serve(str(uri), "diabetes", cache, MODEL_FORMAT="onnx")
    first.extensions["service"].holder.stop()
    shutil.rmtree(uri)
    app = serve(str(uri), "diabetes", cache, MODEL_FORMAT="onnx")
    try:
        body = app.test_client().get("/model").json
        assert body["serving"]["path"] == "onnx" and "the model store cannot be reached" in body["degraded"]
        assert app.extensions["service"].holder.predictor.estimator is None
    finally:
        app.extensions["service"].holder.stop()


# ---- the page and metrics show the path --------------------------------------------------------------
@pytest.mark.parametrize(("name", "model_format", "shown"), [
    ("churn", "auto", "onnxruntime (model.onnx)"),
    ("churn", "onnx", "onnxruntime (model.onnx)"),
    ("hgb", "auto", "scikit-learn"),
    ("diabetes", "onnx", "onnxruntime (model.onnx)"),
])
def test_page_and_metrics_show_the_path(clients, name, model_format, shown):
    client = clients[(name, model_format)]
    html = client.get("/").get_data(as_text=True)
    assert f">{shown}</dd>" in html
    path = client.get("/model").json["serving"]["path"]
    assert f'data-path="{path}"' in html
    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'model_serving_path{{name="{name}",path="{path}",version=' in metrics


# ---- a real gunicorn, pickle-free -------------------------------------------------------------------
@pytest.fixture(scope="module")
def pickle_free_server(tmp_path_factory, versions):
    """gunicorn (2 workers) in pickle-free mode serving the churn table, whose model.joblib is garbage."""
    folder = tmp_path_factory.mktemp("gunicorn-onnx")
    uri = folder / "store"
    manifest = publish(str(uri), versions["churn"].candidate)
    (uri / "churn" / "versions" / manifest["version"] / "model.joblib").write_bytes(b"not a pickle")
    server = GunicornServer(folder / "server", {"MODEL_STORE": str(uri), "MODEL_NAME": "churn",
                                                "MODEL_FORMAT": "onnx"})
    yield server
    server.stop()


def test_gunicorn_serves_pickle_free(pickle_free_server, versions):
    url, version = pickle_free_server.url, versions["churn"]
    response = requests.post(url + "/predict", json={"instances": version.rows}, timeout=10)
    assert response.status_code == 200, response.text
    labels = [p["label"] for p in response.json()["predictions"]]
    assert labels == version.estimator.predict(version.X).tolist()
    refused = requests.post(url + "/predict", json={"instances": [[40.0, "gold", True, "happy customer"]]},
                            timeout=10)
    assert refused.status_code == 400 and "instances[0].plan" in refused.json()["error"]["message"]
    assert requests.get(url + "/model", timeout=10).json()["serving"]["path"] == "onnx"
    assert requests.get(url + "/ready", timeout=10).json()["path"] == "onnx"
    metrics = requests.get(url + "/metrics", timeout=10).text
    assert 'model_serving_path{name="churn",path="onnx",version="' + version.manifest["version"] in metrics
    deadline = time.monotonic() + 30
    while pickle_free_server.log().count('"model loaded"') < 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # the second worker may still be loading
    lines = pickle_free_server.log().splitlines()
    loaded = [json.loads(line) for line in lines if '"model loaded"' in line]
    assert len(loaded) == 2
    assert all(line["path"] == "onnx" and line["model_format"] == "onnx" for line in loaded)
    # Every line is JSON: onnxruntime's refusal reached the client, not the log as plain text.
    assert all(line.startswith("{") for line in lines), [line for line in lines if not line.startswith("{")]
