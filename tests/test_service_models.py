"""Serving any scikit-learn model: mixed-type tables (DataFrame pipelines), regressors, classifiers
without predict_proba. Real fitted models, published with model.publish.build_manifest to a local
store, served by the Flask app and by gunicorn, checked against the estimators in-process.

The model-building functions are plain functions (not fixtures) so test_page.py and
test_openapi_fuzz.py publish the same models.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
from helpers import GunicornServer
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from service.app import create_app, start_model

PLANS = ("basic", "pro", "team")
REPORT = "<!doctype html><html><body><h1>churn</h1></body></html>"
WORDS = ("fast", "slow", "great", "poor", "support", "price", "billing", "login", "mobile", "email")


# ---- models -------------------------------------------------------------------------------------
def mixed_table(rows: int = 300, seed: int = 0):
    """A synthetic churn table: age (number), plan (category), active (boolean), note (free text)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.uniform(18, 80, rows).round(1),
        "plan": pd.Series(rng.choice(PLANS, rows), dtype="object"),
        "active": rng.random(rows) < 0.5,
        # Distinct notes: free text to the column inference, not a category.
        "note": [" ".join(rng.choice(WORDS, 3)) + f" #{i}" for i in range(rows)],
    })
    churn = (frame["plan"] == "pro") | (frame["age"] > 60) & ~frame["active"]
    return frame, np.where(churn, "churn", "stay")


def mixed_classifier(frame, y, unknown: str = "error", hidden: bool = False):
    """ColumnTransformer (scaling, one-hot, passthrough) then HistGradientBoosting; `hidden` puts an
    identity step first, so the service cannot see the encoder and the estimator decides."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    columns = ColumnTransformer([
        ("num", StandardScaler(), ["age"]),
        ("cat", OneHotEncoder(handle_unknown=unknown), ["plan"]),
        ("bool", "passthrough", ["active"]),
    ])
    steps = [("columns", columns), ("clf", HistGradientBoostingClassifier(max_iter=30, random_state=0))]
    if hidden:
        steps.insert(0, ("identity", FunctionTransformer()))
    return Pipeline(steps).fit(frame, y)


def build_models() -> dict:
    """{name: (fitted estimator, X_test, y_test)} of every kind the service must serve."""
    import pandas as pd
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    frame, y = mixed_table()
    train, test = slice(0, 220), slice(220, None)
    models = {
        name: (mixed_classifier(frame[train], y[train], unknown, hidden), frame[test].reset_index(drop=True),
               y[test])
        for name, unknown, hidden in (("churn", "error", False), ("churn-open", "ignore", False),
                                      ("churn-hidden", "error", True))
    }
    diabetes = load_diabetes(as_frame=True)
    X, target = diabetes.data, diabetes.target.to_numpy()
    forest = RandomForestRegressor(n_estimators=20, random_state=0).fit(X[:350], target[:350])
    models["diabetes"] = (forest, pd.DataFrame(X[350:]).reset_index(drop=True), target[350:])
    for name, loader in (("iris-svc", load_iris), ("cancer-svc", load_breast_cancer)):
        X, target = loader(return_X_y=True)
        rng = np.random.default_rng(1)
        order = rng.permutation(len(target))
        X, target = X[order], target[order]
        cut = int(len(target) * 0.7)
        svc = make_pipeline(StandardScaler(), LinearSVC(random_state=0)).fit(X[:cut], target[:cut])
        models[name] = (svc, X[cut:], target[cut:])
    return models


def publish_models(uri: str, models: dict, names=None) -> dict:
    """Publish each model (production alias on it); {name: manifest}.

    Not compiled to ONNX: these tests are about the scikit-learn path (tests/test_service_onnx.py
    serves the same kinds of model through onnxruntime)."""
    from model.publish import build_manifest
    from model.store import ModelStore

    store = ModelStore(uri)
    manifests = {}
    for name in names or models:
        estimator, X_test, y_test = models[name]
        artifact, manifest = build_manifest(estimator, X_test, y_test, name=name, compile=False)
        store.publish(artifact, manifest)
        store.move_alias(name, "production", manifest["version"])
        manifests[name] = manifest
    return manifests


def rows_of(X) -> list:
    """Held-out rows as JSON instances (lists in feature order, plain Python values)."""
    if hasattr(X, "iloc"):
        return [[v.item() if isinstance(v, np.generic) else v for v in row]
                for row in X.astype(object).itertuples(index=False)]
    return np.asarray(X).tolist()


def serve(uri: str, name: str):
    """The Flask app serving `name` from the store at `uri`, its model loaded."""
    app = create_app({"MODEL_STORE": uri, "MODEL_NAME": name, "LOG_LEVEL": "WARNING",
                      "MODEL_RETRY_INITIAL": "0.05", "MODEL_RETRY_MAX": "0.2", "MAX_BATCH": "200"})
    holder = app.extensions["service"].holder
    if not start_model(app, wait=60):
        holder.stop()  # no retrying in the background for the rest of the session
        pytest.fail(f"{name} cannot be served: {holder.error}")
    return app


# ---- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models():
    return build_models()


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory, models):
    from model.store import ModelStore

    uri = str(tmp_path_factory.mktemp("models") / "store")
    manifests = publish_models(uri, models)
    ModelStore(uri).write_report("churn", manifests["churn"]["version"], REPORT)
    return uri


class Served(dict):
    """Test clients by model name, each app started on first use (a model that cannot be served
    fails the tests that use it, not the module)."""

    def __init__(self, uri: str):
        super().__init__()
        self.uri, self.apps = uri, []

    def __missing__(self, name: str):
        app = serve(self.uri, name)
        self.apps.append(app)
        self[name] = client = app.test_client()
        return client

    def stop(self) -> None:
        for app in self.apps:
            app.extensions["service"].holder.stop()


@pytest.fixture(scope="module")
def clients(store_uri):
    served = Served(store_uri)
    yield served
    served.stop()


def post(client, body):
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post("/predict", data=data, content_type="application/json")


def check_schema(spec: dict, name: str, body) -> None:
    Draft202012Validator({**spec, "$ref": f"#/components/schemas/{name}"}).validate(body)


# ---- predictions match the estimators -------------------------------------------------------------
@pytest.mark.parametrize("name", ["churn", "churn-open"])
def test_mixed_table_classifier_answers_like_the_estimator(clients, models, name):
    estimator, X_test, _ = models[name]
    response = post(clients[name], {"instances": rows_of(X_test)})
    assert response.status_code == 200, response.json
    predictions = response.json["predictions"]
    expected = estimator.predict_proba(X_test)
    assert [p["label"] for p in predictions] == estimator.predict(X_test).tolist()
    for prediction, row in zip(predictions, expected, strict=True):
        assert set(prediction) == {"label", "probabilities"}
        assert list(prediction["probabilities"]) == ["churn", "stay"]
        np.testing.assert_allclose(list(prediction["probabilities"].values()), row, rtol=0, atol=1e-12)


def test_rows_keyed_by_name_equal_rows_in_order(clients, models):
    _, X_test, _ = models["churn"]
    as_lists = post(clients["churn"], {"instances": rows_of(X_test[:5])}).json
    as_objects = post(clients["churn"], {"instances": X_test[:5].to_dict(orient="records")}).json
    assert as_objects == as_lists
    integers = [[int(row[0]), *row[1:]] for row in rows_of(X_test[:5])]  # a whole-number age
    assert post(clients["churn"], {"instances": integers}).status_code == 200


def test_regressor_answers_values(clients, models):
    estimator, X_test, _ = models["diabetes"]
    response = post(clients["diabetes"], {"instances": rows_of(X_test)})
    assert response.status_code == 200, response.json
    predictions = response.json["predictions"]
    assert all(set(p) == {"value"} for p in predictions)
    np.testing.assert_allclose([p["value"] for p in predictions], estimator.predict(X_test), rtol=1e-12)


@pytest.mark.parametrize("name", ["iris-svc", "cancer-svc"])
def test_classifier_without_probabilities_answers_label_and_scores(clients, models, name):
    estimator, X_test, _ = models[name]
    assert not hasattr(estimator, "predict_proba")
    response = post(clients[name], {"instances": rows_of(X_test)})
    assert response.status_code == 200, response.json
    predictions = response.json["predictions"]
    assert [p["label"] for p in predictions] == estimator.predict(X_test).tolist()
    scores = estimator.decision_function(X_test)
    classes = [str(c) for c in estimator.classes_]
    for prediction, row in zip(predictions, scores, strict=True):
        assert set(prediction) == {"label", "scores"}
        if scores.ndim == 1:  # binary: one score, for the positive class
            assert list(prediction["scores"]) == [classes[1]]
            assert prediction["scores"][classes[1]] == pytest.approx(row, abs=1e-12)
        else:
            assert list(prediction["scores"]) == classes
            np.testing.assert_allclose(list(prediction["scores"].values()), row, rtol=0, atol=1e-12)


class NearestMean:
    """A classifier with predict only (scikit-learn's own all have probabilities or scores)."""

    _estimator_type = "classifier"

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.means_ = np.array([np.asarray(X)[y == c].mean(axis=0) for c in self.classes_])
        return self

    def predict(self, X):
        distances = ((np.asarray(X)[:, None, :] - self.means_[None]) ** 2).sum(axis=2)
        return self.classes_[distances.argmin(axis=1)]


def test_a_classifier_with_neither_probabilities_nor_scores_answers_the_label(models):
    from service.predict import Predictor

    _, X_test, y_test = models["iris-svc"]
    estimator = NearestMean().fit(X_test, y_test)
    manifest = {"name": "centroid", "version": "v", "task": "classification",
                "classes": estimator.classes_.tolist(),
                "input_schema": {"type": "tabular", "features": ["a", "b", "c", "d"], "n_features": 4}}
    predictor = Predictor(estimator, manifest, max_batch=100)
    assert predictor.output == "label"
    predictions, labels = predictor.predict(predictor.to_matrix(rows_of(X_test)))
    assert predictions == [{"label": label} for label in estimator.predict(X_test).tolist()]
    assert labels == estimator.predict(X_test).tolist()


def test_an_old_manifest_is_served_as_before(trained_digits):
    """No task, columns, frame or output: a classifier of numbers, served by scikit-learn."""
    import io

    import joblib

    from service.predict import Predictor

    artifact, manifest = trained_digits
    old = {k: v for k, v in manifest.items() if k not in ("task", "output", "evaluation", "recipe")}
    old["input_schema"] = {k: v for k, v in manifest["input_schema"].items() if k in ("type", "features",
                                                                                       "n_features")}
    estimator = joblib.load(io.BytesIO(artifact))
    predictor = Predictor(estimator, old, max_batch=10)
    assert (predictor.task, predictor.output) == ("classification", "probabilities")
    assert predictor.path == "sklearn"
    predictions, labels = predictor.predict(predictor.to_matrix([old["example"]]))
    assert set(predictions[0]) == {"label", "probabilities"} and labels == [predictions[0]["label"]]


def test_hidden_svc_probability_setting_is_respected(models):
    """SVC(probability=False) hides predict_proba (AttributeError): scores, not probabilities."""
    from sklearn.svm import SVC

    from model.publish import build_manifest
    from service.predict import Predictor

    _, X_test, y_test = models["iris-svc"]
    estimator = SVC().fit(X_test, y_test)
    _, manifest = build_manifest(estimator, X_test, y_test, name="svc")
    predictor = Predictor(estimator, manifest, max_batch=100)
    assert predictor.output == "scores"
    predictions, _ = predictor.predict(predictor.to_matrix(rows_of(X_test[:3])))
    assert [set(p) for p in predictions] == [{"label", "scores"}] * 3


# ---- the mixed schema refuses what does not fit, never with a 500 --------------------------------
GOOD = [34.0, "pro", True, "fast login"]
GOOD_OBJECT = {"age": 34.0, "plan": "pro", "active": True, "note": "fast login"}
BAD_ROWS = [
    ("age string", [GOOD, ["x", "pro", True, "n"]],
     'instances[1].age: expected a number, got a string ("x")'),
    ("age boolean", [[True, "pro", True, "n"]], "instances[0].age: expected a number, got a boolean (true)"),
    ("age null", [[None, "pro", True, "n"]], "instances[0].age: expected a number, got null"),
    ("plan number", [[34, 3, True, "n"]],
     "instances[0].plan: expected one of basic, pro, team (as a string); got a number (3)"),
    ("unknown plan", [GOOD, GOOD, [34, "gold", True, "n"]],
     'instances[2].plan: expected one of basic, pro, team; got "gold"'),
    ("active string", [[34, "pro", "yes", "n"]],
     'instances[0].active: expected true or false, got a string ("yes")'),
    ("active number", [[34, "pro", 1, "n"]], "instances[0].active: expected true or false, got a number (1)"),
    ("note list", [[34, "pro", True, ["n"]]], 'instances[0].note: expected a string, got a list (["n"])'),
    ("unknown feature", [{**GOOD_OBJECT, "colour": "red"}],
     "instances[0] has unknown features colour: use exactly the model's feature names as keys"),
    ("missing feature", [{k: v for k, v in GOOD_OBJECT.items() if k != "plan"}],
     "instances[0] is missing 1 of the 4 features (plan): use exactly"),
    ("wrong length", [GOOD, [34, "pro"]],
     "instances[1] has 2 values, the model expects 4 (features: age, plan, active, note)"),
    ("row a string", ["34,pro"], "instances[0] is a string: this model takes rows of 4 values"),
]


@pytest.mark.parametrize(("rows", "message"), [case[1:] for case in BAD_ROWS], ids=[c[0] for c in BAD_ROWS])
def test_rows_that_do_not_fit_get_a_400_naming_the_feature(clients, rows, message):
    response = post(clients["churn"], {"instances": rows})
    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] == "invalid_input"
    assert message in response.json["error"]["message"]


def test_numbers_beyond_float_range_are_refused(clients):
    body = b'{"instances": [[' + b"9" * 400 + b', "pro", true, "n"]]}'
    response = post(clients["churn"], body)
    assert response.status_code == 400
    assert response.json["error"]["message"].startswith("instances[0].age: expected a finite number")


def test_unknown_categories_follow_the_encoders_handle_unknown(clients, models):
    unknown = [34.0, "gold", True, "fast login"]
    refused = post(clients["churn"], {"instances": [unknown]})
    assert refused.status_code == 400
    message = refused.json["error"]["message"]
    assert message == 'instances[0].plan: expected one of basic, pro, team; got "gold"'
    # handle_unknown="ignore": the encoder maps it (all zeros), so the service answers what it answers.
    accepted = post(clients["churn-open"], {"instances": [unknown]})
    assert accepted.status_code == 200, accepted.json
    estimator = models["churn-open"][0]
    import pandas as pd

    expected = estimator.predict_proba(pd.DataFrame([unknown], columns=["age", "plan", "active", "note"]))[0]
    np.testing.assert_allclose(list(accepted.json["predictions"][0]["probabilities"].values()), expected)


def test_what_the_estimator_refuses_itself_is_a_400(clients):
    """An encoder the walk cannot reach: the value is accepted, the estimator's ValueError is the 400."""
    response = post(clients["churn-hidden"], {"instances": [GOOD, [34.0, "gold", True, "n"]]})
    assert response.status_code == 400, response.json
    message = response.json["error"]["message"]
    assert message.startswith("the model refused the instances: Found unknown categories ['gold']")
    assert "\n" not in message and "Traceback" not in message
    assert post(clients["churn-hidden"], {"instances": [GOOD]}).status_code == 200


def test_encoders_are_found_through_pipelines_and_column_selections():
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    from service.encoders import refused_unknowns

    frame = pd.DataFrame({"a": ["x", "y"] * 10, "b": ["p", "q"] * 10, "c": ["m", "n"] * 10,
                          "d": ["u", "v"] * 10, "e": [1.0, 2.0] * 10})
    y = [0, 1] * 10
    columns = ColumnTransformer([
        ("by_name", OneHotEncoder(), ["a"]),
        ("by_index", Pipeline([("enc", OrdinalEncoder())]), [1]),
        ("by_mask", OneHotEncoder(handle_unknown="ignore"), [False, False, True, False, False]),
        ("mapped", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), ["d"]),
        ("union", FeatureUnion([("one", OneHotEncoder(handle_unknown="ignore")), ("two", OrdinalEncoder())]),
         ["c"]),
    ], remainder="passthrough")
    estimator = Pipeline([("columns", columns), ("clf", LogisticRegression())]).fit(frame, y)
    refused = refused_unknowns(estimator, list(frame.columns))
    # c: one encoder ignores, the other (ordinal, handle_unknown="error") refuses: refused.
    assert refused == {"a": {"x", "y"}, "b": {"p", "q"}, "c": {"m", "n"}}


# ---- outputs that are not numbers are never returned -------------------------------------------------
def test_a_regression_value_that_overflows_is_a_400(models):
    from sklearn.linear_model import LinearRegression

    from model.publish import build_manifest
    from service.errors import InvalidInput
    from service.predict import Predictor

    _, X_test, y_test = models["diabetes"]
    for X in (X_test, X_test.to_numpy()):  # a DataFrame model (table path) and a matrix model
        estimator = LinearRegression().fit(X, y_test)
        _, manifest = build_manifest(estimator, X, y_test, name="linear")
        predictor = Predictor(estimator, manifest, max_batch=10)
        rows = [rows_of(X[:1])[0], [1e308] * X.shape[1]]
        with pytest.raises(InvalidInput, match=r"instances\[1\]"):
            predictor.predict(predictor.to_matrix(rows))


def test_scores_that_overflow_are_a_400(clients):
    rows = [[5.1, 3.5, 1.4, 0.2], [1e308, -1e308, 1e308, -1e308]]
    response = post(clients["iris-svc"], {"instances": rows})
    assert response.status_code == 400
    assert "instances[1]" in response.json["error"]["message"]
    assert "too large for this model" in response.json["error"]["message"]


# ---- the OpenAPI document describes the served model ---------------------------------------------
def test_openapi_describes_column_kinds_and_the_prediction(clients, models):
    spec = clients["churn"].get("/openapi.json").json
    validate(spec)
    row = spec["components"]["schemas"]["PredictRequest"]["properties"]["instances"]["items"]
    as_list, as_object = row["oneOf"]
    assert [item.get("type") for item in as_list["prefixItems"]] == ["number", "string", "boolean", "string"]
    assert as_list["prefixItems"][1]["enum"] == list(PLANS)
    assert as_object["properties"]["plan"]["enum"] == list(PLANS) and as_object["required"] == [
        "age", "plan", "active", "note"]
    open_spec = clients["churn-open"].get("/openapi.json").json
    open_row = open_spec["components"]["schemas"]["PredictRequest"]["properties"]["instances"]["items"]
    assert "enum" not in open_row["oneOf"][0]["prefixItems"][1]  # any string is accepted

    shapes = {
        "churn": {"label", "probabilities"},
        "diabetes": {"value"},
        "iris-svc": {"label", "scores"},
        "cancer-svc": {"label", "scores"},
    }
    for name, required in shapes.items():
        spec = clients[name].get("/openapi.json").json
        validate(spec)
        item = spec["components"]["schemas"]["PredictResponse"]["properties"]["predictions"]["items"]
        assert set(item["required"]) == required and item["additionalProperties"] is False
        # The model's own example and its answer fit the document.
        example = clients[name].get("/model").json["example"]
        check_schema(spec, "PredictRequest", {"instances": [example]})
        _, X_test, _ = models[name]
        body = post(clients[name], {"instances": rows_of(X_test[:10])}).json
        check_schema(spec, "PredictResponse", body)


# ---- metrics, page ----------------------------------------------------------------------------
def test_regressors_are_counted_under_one_label(clients, models):
    _, X_test, _ = models["diabetes"]
    assert post(clients["diabetes"], {"instances": rows_of(X_test[:30])}).status_code == 200
    lines = [line for line in clients["diabetes"].get("/metrics").get_data(as_text=True).splitlines()
             if line.startswith("predictions_total{")]
    assert len(lines) == 1 and lines[0].startswith('predictions_total{label="value"}')
    assert float(lines[0].split()[-1]) >= 30


@pytest.mark.parametrize(("name", "shows"), [
    ("churn", ["Accuracy", "4 columns: age (number), plan (category), active (boolean), note (text)",
               "the class and each class&#39;s probability"]),
    ("diabetes", ["R²", "MAE", "RMSE", "10 numbers", "a number"]),
    ("iris-svc", ["Accuracy", "4 numbers", "the class and its decision scores"]),
])
def test_page_describes_the_model(clients, name, shows):
    page = clients[name].get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    manifest = clients[name].get("/model").json
    for text in shows:
        assert text in html
    assert json.dumps(manifest["example"]).replace('"', "&#34;") in html


# ---- a real gunicorn ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def churn_server(store_uri, tmp_path_factory):
    server = GunicornServer(tmp_path_factory.mktemp("churn-gunicorn"),
                            {"MODEL_STORE": store_uri, "MODEL_NAME": "churn"}, workers=1)
    yield server
    server.stop()


def test_mixed_table_over_gunicorn(churn_server, models):
    estimator, X_test, _ = models["churn"]
    url = churn_server.url
    response = requests.post(url + "/predict", json={"instances": rows_of(X_test[:40])}, timeout=10)
    assert response.status_code == 200, response.text
    assert [p["label"] for p in response.json()["predictions"]] == estimator.predict(X_test[:40]).tolist()
    refused = requests.post(url + "/predict", json={"instances": [[34.0, "gold", True, "n"]]}, timeout=10)
    assert refused.status_code == 400 and "plan: expected one of basic, pro, team" in refused.text
    spec = requests.get(url + "/openapi.json", timeout=10).json()
    check_schema(spec, "PredictResponse", response.json())
    assert requests.get(url + "/ready", timeout=10).json()["model"]["name"] == "churn"
    assert '"path": "sklearn"' in churn_server.log()  # a DataFrame model: scikit-learn's own path
    report = requests.get(url + "/report", timeout=10)
    assert report.status_code == 200 and report.text == REPORT
    assert report.headers["Content-Type"] == "text/html; charset=utf-8"
    assert report.headers["Content-Security-Policy"].startswith("default-src 'none';")
    assert report.headers["X-Content-Type-Options"] == "nosniff"
