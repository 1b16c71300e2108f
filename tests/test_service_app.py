"""The Flask app through its test client: predictions, every kind of bad input, readiness, errors."""

import json
import math
import time

import numpy as np
import pytest

from service.app import create_app, start_model


def make_app(store, **extra):
    app = create_app(
        {
            "MODEL_STORE": store,
            "MODEL_NAME": "digits",
            "LOG_LEVEL": "WARNING",
            "MODEL_RETRY_INITIAL": "0.05",
            "MODEL_RETRY_MAX": "0.2",
            **extra,
        }
    )
    return app


@pytest.fixture(scope="module")
def app(served_store):
    app = make_app(served_store, MAX_BATCH="50", MAX_BODY_BYTES="200000")
    assert start_model(app, wait=60), app.extensions["service"].holder.error
    yield app
    app.extensions["service"].holder.stop()


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data, data.target, list(data.feature_names)


def post(client, body, content_type="application/json", path="/predict", **headers):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(path, data=data, content_type=content_type, headers=headers)


def test_predicts_like_the_estimator(client, app, digits):
    X, _, _ = digits
    estimator = app.extensions["service"].holder.predictor.estimator
    response = post(client, {"instances": X[:20].tolist()})
    assert response.status_code == 200, response.json
    body = response.json
    assert body["model"]["name"] == "digits"
    assert len(body["predictions"]) == 20
    expected_proba = estimator.predict_proba(X[:20])
    expected_labels = estimator.classes_[expected_proba.argmax(axis=1)].tolist()
    assert [p["label"] for p in body["predictions"]] == expected_labels
    for prediction, row in zip(body["predictions"], expected_proba, strict=True):
        assert list(prediction["probabilities"]) == [str(c) for c in estimator.classes_]
        assert np.allclose(list(prediction["probabilities"].values()), row)
        assert math.isclose(sum(prediction["probabilities"].values()), 1.0, rel_tol=1e-9)


def test_objects_keyed_by_feature_name_equal_lists(client, digits):
    X, _, names = digits
    as_lists = post(client, {"instances": X[:3].tolist()}).json
    as_objects = post(
        client, {"instances": [dict(zip(names, row, strict=True)) for row in X[:3].tolist()]}
    ).json
    assert as_objects == as_lists
    shuffled = [dict(reversed(list(dict(zip(names, row, strict=True)).items()))) for row in X[:3].tolist()]
    assert post(client, {"instances": shuffled}).json == as_lists


def test_ints_and_floats_and_sagemaker_route(client, digits):
    X, _, _ = digits
    row = [int(v) for v in X[0]]
    answer = post(client, {"instances": [row]}).json
    assert post(client, {"instances": [[float(v) for v in row]]}).json == answer
    assert post(client, {"instances": [row]}, path="/invocations").json == answer


def row64(value=0.0, at=5):
    row = [0.0] * 64
    row[at] = value
    return row


BAD_INPUTS = [
    # (id, body, content type, status, code, text the message must contain)
    ("invalid json", b'{"instances": [1, 2', "application/json", 400, "invalid_json", "not valid JSON"),
    ("not utf-8", b"\xff\xfe{", "application/json", 400, "invalid_json", "not valid JSON"),
    ("empty body", b"", "application/json", 400, "invalid_json", "not valid JSON"),
    (
        "wrong content type",
        b'{"instances": []}',
        "text/plain",
        415,
        "unsupported_media_type",
        "Content-Type: application/json",
    ),
    (
        "form post",
        b"instances=1",
        "application/x-www-form-urlencoded",
        415,
        "unsupported_media_type",
        "application/x-www-form-urlencoded",
    ),
    (
        "missing instances",
        {"rows": [row64()]},
        "application/json",
        400,
        "invalid_input",
        'with an "instances" list',
    ),
    ("body is a list", [row64()], "application/json", 400, "invalid_input", 'with an "instances" list'),
    (
        "instances not a list",
        {"instances": "1,2,3"},
        "application/json",
        400,
        "invalid_input",
        '"instances" must be a list of instances, got a string',
    ),
    (
        "instances an object",
        {"instances": {"a": 1}},
        "application/json",
        400,
        "invalid_input",
        "got an object",
    ),
    ("empty list", {"instances": []}, "application/json", 400, "invalid_input", "send at least one instance"),
    (
        "too many instances",
        {"instances": [row64()] * 51},
        "application/json",
        413,
        "too_large",
        "51 items; at most 50",
    ),
    (
        "wrong feature count",
        {"instances": [row64(), row64(), row64(), [1.0] * 12]},
        "application/json",
        400,
        "invalid_input",
        "instances[3] has 12 values, the model expects 64 (features: pixel_0_0, pixel_0_1",
    ),
    (
        "unknown feature",
        {"instances": [{**{f"pixel_{i // 8}_{i % 8}": 0 for i in range(63)}, "colour": 1}]},
        "application/json",
        400,
        "invalid_input",
        "unknown features colour and is missing 1 of the 64",
    ),
    (
        "missing feature",
        {"instances": [{f"pixel_{i // 8}_{i % 8}": 0 for i in range(60)}]},
        "application/json",
        400,
        "invalid_input",
        "is missing 4 of the 64 features (pixel_7_4, ",
    ),
    (
        "string value",
        {"instances": [row64("7")]},
        "application/json",
        400,
        "invalid_input",
        "instances[0][5] (pixel_0_5) is a string ('7'): feature values must be numbers",
    ),
    (
        "boolean value",
        {"instances": [row64(True)]},
        "application/json",
        400,
        "invalid_input",
        "instances[0][5] (pixel_0_5) is a boolean (true)",
    ),
    ("null value", {"instances": [row64(None)]}, "application/json", 400, "invalid_input", "is null"),
    (
        "nested junk",
        {"instances": [row64([1, [2, {"x": 3}]])]},
        "application/json",
        400,
        "invalid_input",
        'is a list ([1, [2, {"x": 3}]])',
    ),
    (
        "row is a string",
        {"instances": ["0,0,5,13"]},
        "application/json",
        400,
        "invalid_input",
        "instances[0] is a string: this model takes rows of 64 numbers",
    ),
    ("row is a number", {"instances": [5]}, "application/json", 400, "invalid_input", "is a number"),
    (
        "NaN",
        b'{"instances": [[NaN' + b", 0" * 63 + b"]]}",
        "application/json",
        400,
        "invalid_input",
        "NaN is not a number the model accepts",
    ),
    (
        "Infinity",
        b'{"instances": [[0, -Infinity' + b", 0" * 62 + b"]]}",
        "application/json",
        400,
        "invalid_input",
        "-Infinity is not a number",
    ),
    (
        "float overflow",
        b'{"instances": [[0, 1e999' + b", 0" * 62 + b"]]}",
        "application/json",
        400,
        "invalid_input",
        "instances[0][1] (pixel_0_1) is not a finite number",
    ),
    (
        "huge integer",
        b'{"instances": [[0, 0, ' + b"9" * 400 + b", 0" * 61 + b"]]}",
        "application/json",
        400,
        "invalid_input",
        "instances[0][2] (pixel_0_2) is not a finite number",
    ),
    (
        "deep nesting",
        b"[" * 50000 + b"]" * 50000,
        "application/json",
        400,
        "invalid_json",
        "nested too deeply",
    ),
    (
        "huge body",
        b'{"instances": [' + b"0," * 150000 + b"0]}",
        "application/json",
        413,
        "too_large",
        "larger than 200000 bytes",
    ),
]


@pytest.mark.parametrize(
    ("body", "ctype", "status", "code", "text"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_gets_a_clear_json_error(client, body, ctype, status, code, text):
    response = post(client, body, content_type=ctype)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.json["error"]
    assert error["code"] == code
    assert text in error["message"]
    assert "Traceback" not in response.get_data(as_text=True)


def test_unknown_path_and_method(client):
    response = client.get("/nope")
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"
    response = client.get("/predict")
    assert response.status_code == 405 and response.json["error"]["code"] == "method_not_allowed"
    assert (
        "POST" in response.headers["Allow"]
        and response.json["error"]["message"] == "GET is not allowed on /predict; use POST"
    )


def test_request_id_is_honoured_or_made(client):
    given = post(client, {"instances": [row64()]}, **{"X-Request-ID": "trace-42.a"})
    assert given.headers["X-Request-ID"] == "trace-42.a"
    made = client.get("/health")
    assert len(made.headers["X-Request-ID"]) == 32
    # A header that could smuggle content into logs is replaced, not echoed.
    hostile = client.get("/health", headers={"X-Request-ID": "a b\u00e9" + "x" * 300})
    assert hostile.headers["X-Request-ID"] != "a b\u00e9" + "x" * 300


def test_unexpected_error_is_a_generic_500_with_the_traceback_in_the_log(client, app, capsys):
    predictor = app.extensions["service"].holder.predictor

    class Broken:
        def predict_proba(self, X):
            raise RuntimeError("secret internals")

    real, predictor.estimator = predictor.estimator, Broken()
    try:
        response = post(client, {"instances": [row64()]}, **{"X-Request-ID": "boom-1"})
    finally:
        predictor.estimator = real
    assert response.status_code == 500
    assert response.json == {
        "error": {"code": "internal", "message": "internal error; quote request id boom-1 when reporting it"}
    }
    logged = capsys.readouterr().err
    assert "secret internals" in logged and "Traceback" in logged and '"request_id": "boom-1"' in logged


def test_model_and_health_endpoints(client, served_store):
    from model.store import ModelStore

    store = ModelStore(served_store)
    version = store.resolve("digits", alias="production")
    body = client.get("/model").json
    serving = body.pop("serving")
    assert body == store.manifest("digits", version)  # the manifest as published, plus how it is served
    assert serving == {"path": "sklearn", "model_format": "auto",
                       "reason": "no model.onnx: the version was published before models were compiled"}
    assert client.get("/health").json == {"status": "alive"}
    assert client.get("/ready").json == {"status": "ready", "model": {"name": "digits", "version": version},
                                         "path": "sklearn"}  # published without model.onnx
    assert client.get("/ping").status_code == 200


def test_not_ready_until_the_model_appears(tmp_path, trained_digits):
    """No model in the store: alive but not ready; the background retry picks it up once published."""
    from model.store import ModelStore

    uri = str(tmp_path / "store")
    app = make_app(uri)
    try:
        assert start_model(app, wait=0.2) is False
        client = app.test_client()
        assert client.get("/health").status_code == 200
        for path in ("/ready", "/ping", "/model"):
            response = client.get(path)
            assert response.status_code == 503
            assert response.json["error"]["code"] == "not_ready"
            assert "has no versions" in response.json["error"]["message"]
        response = post(client, {"instances": [row64()]})
        assert response.status_code == 503 and response.json["error"]["code"] == "not_ready"
        page = client.get("/")
        assert page.status_code == 503 and b"Model not ready" in page.data

        artifact, manifest = trained_digits
        store = ModelStore(uri)
        store.publish(artifact, manifest)
        store.move_alias("digits", "production", manifest["version"])
        deadline = time.monotonic() + 10
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/ready").json["model"]["version"] == manifest["version"]
        assert post(client, {"instances": [row64()]}).status_code == 200
        assert app.extensions["service"].holder.attempts >= 2
    finally:
        app.extensions["service"].holder.stop()


def test_tampered_artifact_is_never_served(tmp_path, trained_digits):
    from model.store import ModelStore

    uri = tmp_path / "store"
    artifact, manifest = trained_digits
    store = ModelStore(str(uri))
    store.publish(artifact, manifest)
    store.move_alias("digits", "production", manifest["version"])
    pickle = uri / "digits" / "versions" / manifest["version"] / "model.joblib"
    pickle.write_bytes(pickle.read_bytes()[:-10] + b"0123456789")
    app = make_app(str(uri))
    try:
        assert start_model(app, wait=10) is False  # the first attempt ends in a refusal, not a model
        response = app.test_client().get("/ready")
        assert response.status_code == 503 and "sha256" in response.json["error"]["message"]
    finally:
        app.extensions["service"].holder.stop()


def test_page_is_prefilled_with_the_example(client, app):
    manifest = app.extensions["service"].holder.predictor.manifest
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert manifest["version"] in html and json.dumps(manifest["example"]) in html
    assert f"{manifest['metrics']['accuracy']:.4f}" in html
    assert "http://" not in html and "https://" not in html  # no CDN: everything is served locally
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200


@pytest.fixture(scope="module")
def text_app(tmp_path_factory):
    """A tiny tf-idf text model, published and served."""
    from model.data import load_dataset
    from model.store import ModelStore
    from model.train import train

    folder = tmp_path_factory.mktemp("text")
    rows = ["label,text"]
    for i in range(20):
        rows.append(f"sport,the team won the match {i} with a late goal")
        rows.append(f"tech,the new laptop {i} has a faster chip and more memory")
    (folder / "news.csv").write_text("\n".join(rows) + "\n")
    candidate = train(load_dataset(str(folder / "news.csv"), text_column="text"), name="news")
    manifest = candidate.manifest
    store = ModelStore(str(folder / "store"))
    store.publish(candidate.artifact, manifest, onnx=candidate.onnx)
    store.move_alias("news", "production", manifest["version"])
    app = make_app(str(folder / "store"), MODEL_NAME="news")
    assert start_model(app, wait=60)
    yield app
    app.extensions["service"].holder.stop()


def test_text_model(text_app):
    client = text_app.test_client()
    body = post(client, {"instances": ["a late goal won the match", "more memory in the laptop"]}).json
    assert [p["label"] for p in body["predictions"]] == ["sport", "tech"]
    assert set(body["predictions"][0]["probabilities"]) == {"sport", "tech"}
    for junk, kind in ((5, "a number"), (["a"], "a list"), (None, "null"), (True, "a boolean")):
        response = post(client, {"instances": ["fine", junk]})
        assert response.status_code == 400
        assert response.json["error"]["message"].startswith(f"instances[1] is {kind}")
        assert "send each instance as a string" in response.json["error"]["message"]


HOT_PATH_CASES = [(c[0], c[1], c[2]) for c in BAD_INPUTS] + [
    ("one row", {"instances": [row64()]}, "application/json"),
    ("a batch", {"instances": [row64(3.0, at) for at in range(5)]}, "application/json"),
    ("json with a charset", {"instances": [row64()]}, "application/json; charset=utf-8"),
    ("+json media type", {"instances": [row64()]}, "application/vnd.api+json"),
    ("no content type", {"instances": [row64()]}, ""),
]


@pytest.mark.parametrize(
    ("body", "ctype"), [c[1:] for c in HOT_PATH_CASES], ids=[c[0] for c in HOT_PATH_CASES]
)
def test_the_prediction_hot_path_answers_as_the_flask_route(app, client, body, ctype):
    """POST /predict is answered in front of Flask (service.hotpath); the Flask route it skips must
    give the same status, headers and JSON for every body, good or bad."""
    from werkzeug.test import Client

    from service.hotpath import PredictRoute

    assert isinstance(app.wsgi_app, PredictRoute)
    flask_only = Client(app.wsgi_app.flask_wsgi)
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    for path in ("/predict", "/invocations"):
        headers = {"X-Request-ID": "same-id", **({"Content-Type": ctype} if ctype else {})}
        hot = client.post(path, data=data, headers=headers)
        flask = flask_only.post(path, data=data, headers=headers)
        assert hot.status_code == flask.status_code, hot.get_data(as_text=True)
        assert hot.headers["Content-Type"] == flask.headers["Content-Type"] == "application/json"
        assert hot.headers["X-Request-ID"] == flask.headers["X-Request-ID"] == "same-id"
        assert hot.headers["Content-Length"] == flask.headers["Content-Length"]
        assert hot.json == flask.json
