"""The benchmark's models, trained and published into a temporary store, and their in-process rates.

digits and text are the built-in recipes; forest is a 100-tree random forest on breast-cancer rows
(compiled to ONNX when published); churn is the gradient-boosted mixed-table recipe (which does not
convert to ONNX: it shows the scikit-learn path).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

MODELS = ("digits", "text", "forest", "churn")
ROOT = Path(__file__).resolve().parent.parent


def _forest(name: str):
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    from model.publish import build_manifest

    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    forest = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(X_train, y_train)
    return build_manifest(forest, X_test, y_test, name=name, source="sklearn:breast_cancer",
                          recipe="bench:forest"), X_test[:32].tolist()


def prepare_models(workdir: Path, names=MODELS) -> dict:
    """Train the models into a store under workdir; per model its estimator, rows, version and the
    pickle file the peers load."""
    from bench.textdata import make_corpus, write_csv
    from model.data import load_dataset
    from model.loader import load_model
    from model.store import ModelStore
    from model.train import train

    store_uri = str(workdir / "store")
    store = ModelStore(store_uri)
    models = {}
    for name in names:
        if name == "digits":
            dataset = load_dataset("digits")
            candidate, rows = train(dataset, name=name), np.asarray(dataset.X[:32]).tolist()
        elif name == "text":
            texts, labels = make_corpus()
            write_csv(workdir / "text.csv", texts, labels)
            candidate = train(load_dataset(str(workdir / "text.csv"), text_column="text"), name=name)
            rows = make_corpus(classes=20, docs_per_class=2, seed=1)[0][:32]
        elif name == "forest":
            candidate, rows = _forest(name)
        elif name == "churn":
            dataset = load_dataset(str(ROOT / "examples" / "churn.csv"), label_column="churned")
            candidate = train(dataset, name=name)
            rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                    for row in dataset.X.iloc[:32].to_dict("records")]
        else:
            raise ValueError(f"unknown benchmark model {name!r} (known: {', '.join(MODELS)})")
        artifact, manifest = candidate
        store.publish(artifact, manifest, onnx=candidate.onnx)
        store.move_alias(name, "production", manifest["version"])
        (workdir / f"{name}.joblib").write_bytes(artifact)
        loaded = load_model(store, name)
        models[name] = {"estimator": loaded.estimator, "rows": rows, "version": manifest["version"],
                        "manifest": manifest, "onnx": loaded.onnx}
    return {"store": store_uri, "models": models}


def estimator_input(manifest: dict, rows: list):
    """Rows (lists, or objects keyed by column name) as the estimator takes them."""
    from model.tabular import rows_to_input

    return rows_to_input(manifest["input_schema"], rows)


def inprocess(spec: dict, batch: int, seconds: float) -> tuple[float, str]:
    """(calls per second on `batch` rows, one core, no HTTP; what ran): the faster of scikit-learn's
    predict_proba (or predict) and, for a compiled model, onnxruntime."""
    from model.compiled import Session

    manifest = spec["manifest"]
    data = estimator_input(manifest, spec["rows"][:batch])
    estimator = spec["estimator"]
    call = estimator.predict_proba if hasattr(estimator, "predict_proba") else estimator.predict
    candidates = [("scikit-learn", lambda: call(data))]
    if spec.get("onnx"):
        session = Session(spec["onnx"], manifest["input_schema"], manifest.get("task", "classification"))
        candidates.append(("onnxruntime", lambda: session.run(data)))
    best = (0.0, "")
    for label, fn in candidates:
        fn()  # warm up
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            fn()
            calls += 1
        best = max(best, (calls / (time.perf_counter() - start), label))
    return best
