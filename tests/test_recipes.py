"""Any scikit-learn model through the CLI: recipes (built-in and the user's own), mixed-type tables,
regressors, classifiers without probabilities, models trained elsewhere, the training plan, and
failures that publish nothing."""

from __future__ import annotations

import json
import textwrap

import joblib
import numpy as np
import pytest
from helpers import run_cli, write_churn_csv

from model.recipes import builtin, load_recipe
from model.store import ModelStore
from model.tabular import rows_to_input


@pytest.fixture(scope="module")
def churn_csv(tmp_path_factory):
    return write_churn_csv(tmp_path_factory.mktemp("data") / "churn.csv")


def test_the_built_in_recipes_are_listed_and_build_estimators():
    assert set(builtin()) >= {"logreg", "tfidf", "hgb_table", "forest_regressor", "linear_svc"}
    for name in builtin():
        recipe = load_recipe(name)
        columns = [{"name": "a", "kind": "number"}, {"name": "b", "kind": "category", "values": ["x"]}]
        estimator = recipe.build({}, 0, columns)
        assert hasattr(estimator, "fit") and hasattr(estimator, "predict"), name


@pytest.mark.parametrize(
    ("recipe", "dataset", "extra", "task", "outputs"),
    [
        ("hgb_table", "churn", ["--label-column", "churned"], "classification",
         {"probabilities": True, "scores": True}),
        ("forest_regressor", "diabetes", ["--param", "n_estimators=30"], "regression", {"value": True}),
        ("linear_svc", "breast_cancer", [], "classification", {"probabilities": False, "scores": True}),
    ],
)
def test_a_recipe_trains_gates_and_publishes_to_s3(tmp_path, s3_bucket, aws_env, churn_csv, recipe, dataset,
                                                  extra, task, outputs):
    store = f"s3://{s3_bucket}/models"
    data = str(churn_csv) if dataset == "churn" else dataset
    result = run_cli("train", "--store", store, "--name", "m", "--dataset", data, "--recipe", recipe, *extra,
                     "--promote", "production", env=aws_env)
    assert result.returncode == 0, result.stderr
    assert f"with recipe {recipe}" in result.stdout
    manifest = json.loads(run_cli("show", "--store", store, "--name", "m", env=aws_env).stdout)
    assert (manifest["task"], manifest["recipe"], manifest["output"]) == (task, recipe, outputs)
    if task == "regression":
        assert set(manifest["metrics"]) == {"mae", "rmse", "r2"} and manifest["classes"] == []
        assert f"r2={manifest['metrics']['r2']:.4f}" in result.stdout
    else:
        assert manifest["metrics"]["accuracy"] > 0.6
        matrix = manifest["evaluation"]["confusion_matrix"]["matrix"]
        assert sum(map(sum, matrix)) == manifest["data"]["test_rows"]
    # The report is stored beside the manifest (matplotlib is installed with the dev extras).
    html = ModelStore(store).read_report("m", manifest["version"])
    assert manifest["version"] in html and "data:image/png;base64," in html
    _served_like_in_process(tmp_path, store, manifest, aws_env)


def _served_like_in_process(tmp_path, store: str, manifest: dict, env: dict) -> None:
    """gunicorn serving the version from the moto S3 store answers what the estimator computes."""
    import requests
    from helpers import GunicornServer

    from model.loader import load_model

    estimator = load_model(ModelStore(store), "m").estimator
    server = GunicornServer(tmp_path / "server", {**env, "MODEL_STORE": store, "MODEL_NAME": "m"})
    try:
        # The example and held-out-like rows: for the table, every plan with both flags.
        rows = [manifest["example"]]
        if manifest["input_schema"].get("frame"):
            rows += [[40.0, plan, flag, "billing complaint"] for plan in ("basic", "pro", "team")
                     for flag in (True, False)]
        answer = requests.post(server.url + "/predict", json={"instances": rows}, timeout=10)
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
    finally:
        server.stop()
    X = rows_to_input(manifest["input_schema"], rows)
    if manifest["task"] == "regression":
        np.testing.assert_allclose([p["value"] for p in predictions], estimator.predict(X), rtol=1e-5)
        return
    assert [str(p["label"]) for p in predictions] == [str(v) for v in estimator.predict(X)]
    if manifest["output"]["probabilities"]:
        expected = estimator.predict_proba(X)
        got = [[p["probabilities"][str(c)] for c in estimator.classes_] for p in predictions]
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_a_mixed_table_records_each_columns_kind(tmp_path, churn_csv):
    store = str(tmp_path / "store")
    result = run_cli("train", "--store", store, "--name", "churn", "--dataset", str(churn_csv),
                     "--label-column", "churned", "--no-report")
    assert result.returncode == 0, result.stderr
    assert "recipe hgb_table" in result.stdout  # the default for a table that is not all numbers
    manifest = ModelStore(store).manifest("churn", ModelStore(store).versions("churn")[0])
    schema = manifest["input_schema"]
    assert schema["frame"] is True
    assert schema["columns"] == [
        {"name": "age", "kind": "number"},
        {"name": "plan", "kind": "category", "values": ["basic", "pro", "team"]},
        {"name": "active", "kind": "boolean"},
        {"name": "note", "kind": "category", "values": ["asked for a discount", "billing complaint",
                                                       "happy customer", "no contact since spring"]},
    ]
    age, plan, active, _note = manifest["example"]
    assert isinstance(age, float) and plan in ("basic", "pro", "team") and isinstance(active, bool)
    # --column-kind: the note is free text after all.
    result = run_cli("train", "--store", store, "--name", "churn2", "--dataset", str(churn_csv),
                     "--label-column", "churned", "--column-kind", "note=text", "--no-report")
    assert result.returncode == 0, result.stderr
    newest = ModelStore(store).versions("churn2")[0]
    columns = ModelStore(store).manifest("churn2", newest)["input_schema"]["columns"]
    assert columns[3] == {"name": "note", "kind": "text"}


BAD_RECIPES = textwrap.dedent('''
    """Recipes that fail in each way a user's training code can."""
    from sklearn.base import BaseEstimator, ClassifierMixin


    class Broken(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            raise RuntimeError("out of memory in fit")

        def predict(self, X):
            return X


    def fit_fails(params, seed):
        return Broken()


    def build_fails(params, seed):
        raise KeyError("depth")


    def not_an_estimator(params, seed):
        return {"C": 1}
''')


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--recipe", "nosuchpackage.recipes:build"], 17, "cannot import recipe nosuchpackage.recipes:build: "
                                                          "ModuleNotFoundError"),
        (["--recipe", "logreg_typo"], 17, "no recipe 'logreg_typo': did you mean 'logreg'?"),
        (["--recipe", "bad_recipes:fit_fails"], 17,
         "failed to fit on sklearn:iris: RuntimeError: out of memory"),
        (["--recipe", "bad_recipes:build_fails"], 17, "failed to build the estimator: KeyError: 'depth'"),
        (["--recipe", "bad_recipes:not_an_estimator"], 17, "returned dict, not a scikit-learn estimator"),
        (["--recipe", "bad_recipes:missing"], 17, "bad_recipes has no function 'missing'"),
        (["--dataset", "diabetes"], 17, "builds a classifier, but the label column looks continuous"),
        (["--dataset", "CHURN", "--label-column", "left"], 7, "has no label column 'left'"),
        (["--column-kind", "age=colour"], 2, "the kind must be one of number, category, text, boolean"),
    ],
)
def test_a_failing_recipe_gets_one_line_and_publishes_nothing(tmp_path, churn_csv, args, code, message):
    (tmp_path / "bad_recipes.py").write_text(BAD_RECIPES)
    store = tmp_path / "store"
    args = [str(churn_csv) if a == "CHURN" else a for a in args]
    if "--dataset" not in args:
        args += ["--dataset", "iris"]
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    result = run_cli("train", "--store", str(store), "--name", "m", *args, env=env)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert ModelStore(str(store)).models() == []


@pytest.fixture(scope="module")
def notebook_pickle(tmp_path_factory, churn_csv):
    """A pipeline fitted in a 'notebook' on a DataFrame, and held-out CSVs that do and do not fit it."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    folder = tmp_path_factory.mktemp("notebook")
    frame = pd.read_csv(churn_csv)
    frame["active"] = frame["active"].astype(bool)
    train, holdout = frame.iloc[:300], frame.iloc[300:]
    model = Pipeline([
        ("columns", ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["plan", "note"])],
                                      remainder="passthrough")),
        ("forest", RandomForestClassifier(n_estimators=30, random_state=0)),
    ]).fit(train.drop(columns="churned"), train["churned"])
    joblib.dump(model, folder / "model.joblib")
    holdout.to_csv(folder / "holdout.csv", index=False)
    holdout.drop(columns="note").to_csv(folder / "holdout-without-note.csv", index=False)
    return folder, model, holdout


def test_import_publishes_a_model_trained_elsewhere(tmp_path, notebook_pickle):
    folder, model, holdout = notebook_pickle
    store = str(tmp_path / "store")
    result = run_cli("import", str(folder / "model.joblib"), "--data", str(folder / "holdout.csv"),
                     "--label-column", "churned", "--store", store, "--name", "churn",
                     "--promote", "production", "--no-report")
    assert result.returncode == 0, result.stderr
    manifest = ModelStore(store).manifest("churn", ModelStore(store).resolve("churn"))
    assert manifest["recipe"] == "imported"
    assert manifest["estimator"] == "ColumnTransformer -> RandomForestClassifier"
    expected = float(np.mean(model.predict(holdout.drop(columns="churned")) == holdout["churned"]))
    assert manifest["metrics"]["accuracy"] == round(expected, 4)
    assert manifest["input_schema"]["frame"] is True
    assert [c["kind"] for c in manifest["input_schema"]["columns"]] == ["number", "category", "boolean",
                                                                        "category"]


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("missing-column", "the held-out data's columns do not match the model's features: it lacks note"),
        ("unfitted", "LinearRegression is not fitted"),
        ("not-a-pickle", "is not a joblib or pickle file"),
        ("not-an-estimator", "dict is not a scikit-learn estimator"),
    ],
)
def test_import_refuses_what_it_cannot_describe(tmp_path, notebook_pickle, what, message):
    from sklearn.linear_model import LinearRegression

    folder, _, _ = notebook_pickle
    pickle, data = folder / "model.joblib", folder / "holdout.csv"
    if what == "missing-column":
        data = folder / "holdout-without-note.csv"
    elif what == "unfitted":
        pickle = tmp_path / "unfitted.joblib"
        joblib.dump(LinearRegression(), pickle)
    elif what == "not-a-pickle":
        pickle = tmp_path / "notes.joblib"
        pickle.write_text("not a pickle")
    else:
        pickle = tmp_path / "dict.joblib"
        joblib.dump({"weights": [1, 2]}, pickle)
    store = tmp_path / "store"
    result = run_cli("import", str(pickle), "--data", str(data), "--label-column", "churned",
                     "--store", str(store), "--name", "churn")
    assert result.returncode == 7, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert ModelStore(str(store)).models() == []


def test_publish_estimator_from_a_notebook(tmp_path):
    """The README's notebook example: fit, then one call evaluates, gates and publishes."""
    from sklearn.datasets import load_wine
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    from model.loader import load_model
    from model.publish import publish_estimator

    X, y = load_wine(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    model = RandomForestClassifier(n_estimators=50, random_state=0).fit(X_train, y_train)
    store = str(tmp_path / "store")
    manifest = publish_estimator(model, X_test, y_test, name="wine", store=store, promote="production")
    assert manifest["input_schema"]["features"] == list(X.columns)
    assert manifest["input_schema"]["frame"] is True  # fitted on a DataFrame: served one
    loaded = load_model(ModelStore(store), "wine")
    assert loaded.version == manifest["version"]
    assert (loaded.estimator.predict(X_test) == model.predict(X_test)).all()
    # The gate applies as for the CLI: a much worse model is refused, nothing published.
    from model.errors import GateError

    weak = RandomForestClassifier(n_estimators=1, max_depth=1, random_state=0).fit(X_train, y_train)
    with pytest.raises(GateError):
        publish_estimator(weak, X_test, y_test, name="wine", store=store)
    assert ModelStore(store).versions("wine") == [manifest["version"]]


def test_the_training_plan_names_what_the_pipeline_trains(tmp_path):
    plan = tmp_path / "training.toml"
    plan.write_text('[digits]\ndataset = "digits"\n\n[diabetes]\ndataset = "diabetes"\n'
                    'recipe = "forest_regressor"\nparams = { n_estimators = 20 }\n')
    result = run_cli("train", "--plan", str(plan), "--model", "diabetes", "--out", str(tmp_path / "c"),
                     "--no-report")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert (manifest["name"], manifest["recipe"], manifest["params"]["n_estimators"]) == \
        ("diabetes", "forest_regressor", "20")
    bad = run_cli("train", "--plan", str(plan), "--model", "wine", "--out", str(tmp_path / "d"))
    assert bad.returncode == 2 and "has no model 'wine' (it has digits, diabetes)" in bad.stderr
    mixed = run_cli("train", "--plan", str(plan), "--recipe", "logreg", "--out", str(tmp_path / "d"))
    assert mixed.returncode == 2 and "drop --recipe" in mixed.stderr


def test_the_repos_plan_trains_the_default_model():
    from model.plan import load_plan

    entry = load_plan("model/training.toml")
    assert (entry.name, entry.dataset, entry.recipe) == ("digits", "digits", "logreg")


def test_report_command_writes_and_stores_the_page(tmp_path):
    store = str(tmp_path / "store")
    assert run_cli("train", "--store", store, "--dataset", "iris", "--name", "iris",
                   "--promote", "production", "--no-report").returncode == 0
    assert run_cli("train", "--store", store, "--dataset", "iris", "--name", "iris", "--param", "C=0.01",
                   "--force", "--no-report").returncode == 0
    newest = ModelStore(store).versions("iris")[0]
    out = tmp_path / "r.html"
    result = run_cli("report", newest, "--store", store, "--name", "iris", "--against", "production",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    assert newest in page and ModelStore(store).resolve("iris") in page  # both sides of the comparison
    with pytest.raises(Exception, match="has no report"):
        ModelStore(store).read_report("iris", newest)
    assert run_cli("report", "production", "--store", store, "--name", "iris", "--publish").returncode == 0
    assert "<html" in ModelStore(store).read_report("iris", ModelStore(store).resolve("iris"))
    missing = run_cli("report", "staging", "--store", store, "--name", "iris")
    assert missing.returncode == 4 and missing.stderr.startswith("error: ")
