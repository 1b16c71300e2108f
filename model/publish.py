"""Describe a fitted estimator as a complete version, and publish it: the one path for models
trained here (`train`), trained elsewhere (`import`), or handed over from a notebook.

    from model.publish import publish_estimator
    manifest = publish_estimator(fitted, X_test, y_test, name="churn", store="store")

The held-out data decides the input schema (a DataFrame's columns and their kinds, an array's
width, or a list of strings for text) and is what the metrics are computed on.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import numpy as np

from model.artifact import (
    ARTIFACT_FILE,
    FORMAT,
    SCHEMA_VERSION,
    Candidate,
    dump_estimator,
    new_version,
    runtime_versions,
    sha256_bytes,
)
from model.errors import DataError
from model.evaluate import CLASSIFICATION, evaluate, jsonable, predict_holdout, task_of
from model.tabular import all_numbers, column, columns_of_frame


def _git_commit() -> str:
    from model.gitinfo import head_commit

    return os.environ.get("GIT_COMMIT") or head_commit() or "unknown"


def check_fitted(estimator) -> None:
    """DataError unless `estimator` is a fitted scikit-learn estimator that can predict."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not (hasattr(estimator, "fit") and hasattr(estimator, "predict")):
        raise DataError(f"{type(estimator).__name__} is not a scikit-learn estimator "
                        "(it needs fit and predict)")
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise DataError(f"{type(estimator).__name__} is not fitted: fit it before publishing") from None
    except TypeError as exc:
        raise DataError(f"{type(estimator).__name__} is not a scikit-learn estimator: {exc}") from None


def input_schema(estimator, X, columns: list[dict] | None = None) -> tuple[dict, object]:
    """The manifest's input_schema for held-out features X, and X as the estimator should get it.

    `columns` (model/tabular.py specs, from the whole training table) wins over what the held-out
    part alone shows: a category seen only in training is still a known value. DataError when X
    does not match what the estimator was fitted on (names or width).
    """
    if isinstance(X, list | tuple) and X and all(isinstance(v, str) for v in X):
        return {"type": "text"}, list(X)
    fitted_names = getattr(estimator, "feature_names_in_", None)
    if hasattr(X, "columns"):  # a pandas DataFrame
        names = [str(c) for c in X.columns]
        if fitted_names is not None:
            expected = [str(n) for n in fitted_names]
            missing = [n for n in expected if n not in names]
            extra = [n for n in names if n not in expected]
            if missing or extra:
                parts = ([f"lacks {', '.join(missing[:5])}"] if missing else []) + \
                        ([f"has unknown {', '.join(extra[:5])}"] if extra else [])
                raise DataError(f"the held-out data's columns do not match the model's features: it "
                                f"{' and '.join(parts)}")
            X = X[expected]
        columns = columns or columns_of_frame(X)
        frame = fitted_names is not None or not all_numbers(columns)
        if not frame:
            X = X.to_numpy(dtype=np.float64)
    else:
        try:
            X = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError("held-out features must be a DataFrame, a 2-D array of numbers or a list of "
                            "strings") from None
        if X.ndim != 2:
            raise DataError(f"held-out features must be 2-D (rows x features), got {X.ndim}-D")
        if not columns or len(columns) != X.shape[1]:
            columns = [column(f"x{i}", "number") for i in range(X.shape[1])]
        frame = False
    width = getattr(estimator, "n_features_in_", None)
    if width is not None and width != len(columns):
        raise DataError(f"the model was fitted on {width} features, the held-out data has {len(columns)}")
    names = [c["name"] for c in columns]
    return {"type": "tabular", "features": names, "n_features": len(names), "columns": columns,
            "frame": frame}, X


def _example(X, schema: dict):
    if schema["type"] == "text":
        return X[0]
    if hasattr(X, "iloc"):
        return [jsonable(v) for v in X.iloc[0].tolist()]
    return [jsonable(v) for v in np.asarray(X[0]).tolist()]


def _estimator_name(estimator) -> str:
    steps = getattr(estimator, "steps", None)
    if steps:
        return " -> ".join(type(step).__name__ for _, step in steps)
    return type(estimator).__name__


def build_manifest(estimator, X_test, y_test, *, name: str, source: str = "notebook",
                   params: dict | None = None, recipe: str = "imported",
                   data: dict | None = None, columns: list[dict] | None = None,
                   compile: bool = True, X_train=None) -> Candidate:
    """The pickle, the complete manifest and the compiled model of a fitted estimator, evaluated on
    held-out data (a Candidate, which unpacks as `(artifact, manifest)`).

    `data` adds to the manifest's data record (train_rows, the dataset's sha256); `source` names
    where the data came from; `columns` describes a table's columns (else inferred from X_test).
    With `compile` (and skl2onnx installed) the estimator is also converted to ONNX and
    parity-checked (model/compiled.py); the manifest's `onnx` record says whether it was kept.
    The manifest's `profile` (model/profile.py) describes `X_train`, the rows the estimator was
    fitted on, or when they are not given (a model trained elsewhere) the held-out rows.
    """
    check_fitted(estimator)
    schema, X_test = input_schema(estimator, X_test, columns)
    y_test = np.asarray(y_test)
    if len(y_test) != (len(X_test) if schema["type"] == "text" else X_test.shape[0]):
        raise DataError(f"held-out features have {len(X_test)} rows, labels {len(y_test)}")
    if len(y_test) == 0:
        raise DataError("the held-out data is empty")
    task = task_of(estimator)
    predicted = predict_holdout(estimator, X_test)
    metrics, evaluation = evaluate(estimator, X_test, y_test, task, predicted)
    artifact = dump_estimator(estimator)
    digest = sha256_bytes(artifact)
    created = datetime.now(UTC).replace(microsecond=0)
    classes = [jsonable(c) for c in getattr(estimator, "classes_", [])] if task == CLASSIFICATION else []
    data_record = {"source": source, "sha256": "", "rows": len(y_test), "test_rows": len(y_test),
                   **(data or {})}
    if not data_record["sha256"]:
        data_record["sha256"] = _holdout_digest(X_test, y_test)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "version": new_version(created, digest),
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "artifact": {"file": ARTIFACT_FILE, "sha256": digest, "size": len(artifact), "format": FORMAT},
        "runtime": runtime_versions(),
        "git_commit": _git_commit(),
        "data": data_record,
        "task": task,
        "recipe": recipe,
        "estimator": _estimator_name(estimator),
        "params": dict(params or {}),
        "metrics": metrics,
        "evaluation": evaluation,
        "classes": classes,
        "output": _outputs(estimator, task),
        "input_schema": schema,
        "example": _example(X_test, schema),
        "profile": _profile(estimator, schema, X_train, X_test, predicted, task, classes),
    }
    onnx = None
    if compile:
        from model.compiled import compile_onnx

        onnx, manifest["onnx"] = compile_onnx(estimator, manifest, X_test)
    return Candidate(artifact, manifest, onnx)


def _profile(estimator, schema: dict, X_train, X_test, predicted, task: str, classes: list) -> dict:
    from model.profile import profile

    if X_train is None:
        return profile(X_test, schema, predicted, task, classes=classes, data="holdout", estimator=estimator)
    if schema["type"] == "tabular" and hasattr(X_train, "columns") and not hasattr(X_test, "columns"):
        X_train = X_train[schema["features"]].to_numpy(dtype=np.float64)  # as input_schema made X_test
    elif hasattr(X_train, "columns"):
        X_train = X_train[schema["features"]]
    return profile(X_train, schema, predicted, task, classes=classes, data="train", estimator=estimator)


def _outputs(estimator, task: str) -> dict:
    # hasattr: some estimators hide predict_proba behind a setting (SVC(probability=False)).
    if task != CLASSIFICATION:
        return {"value": True}
    return {"probabilities": hasattr(estimator, "predict_proba"),
            "scores": hasattr(estimator, "decision_function")}


def _holdout_digest(X, y) -> str:
    import hashlib

    digest = hashlib.sha256()
    if hasattr(X, "to_csv"):
        digest.update(X.to_csv(index=False).encode())
    elif isinstance(X, list):
        digest.update("\x00".join(X).encode())
    else:
        digest.update(np.ascontiguousarray(X).tobytes())
    digest.update(np.asarray(y).astype(str).tobytes())
    return digest.hexdigest()


def publish_estimator(estimator, X_test, y_test, *, name: str, store, source: str = "notebook",
                      promote: str | None = None, signer=None, gate: bool = True, report: bool = True,
                      X_train=None, **gate_options) -> dict:
    """Evaluate, gate and publish a fitted estimator from Python (a notebook); return its manifest.

    `store` is a ModelStore or a store URI. With `gate` the candidate must pass the quality gate
    and the schema guard against the production alias (`gate_options`: alias, metric, tolerance,
    force, allow_schema_change), as `python -m model import` does. `promote` moves that alias to it.
    With `report` (and matplotlib installed) the HTML report is stored beside the manifest.
    `X_train`, the rows it was fitted on, is what the manifest's profile describes (else X_test).
    """
    from model.gate import check_gate
    from model.store import ModelStore

    store = store if isinstance(store, ModelStore) else ModelStore(str(store))
    candidate = build_manifest(estimator, X_test, y_test, name=name, source=source, X_train=X_train)
    manifest = candidate.manifest
    if gate:
        check_gate(store, manifest, **gate_options)
    baseline = current_manifest(store, name, gate_options.get("alias") or "production")
    store.publish(candidate.artifact, manifest, signer=signer, onnx=candidate.onnx)
    if report:
        store_report(store, manifest, baseline)
    if promote:
        store.move_alias(name, promote, manifest["version"])
    return manifest


def current_manifest(store, name: str, alias: str) -> dict | None:
    """The manifest of the version `alias` names, or None if the alias (or the model) is not set."""
    from model.errors import NotFoundError

    try:
        return store.manifest(name, store.resolve(name, alias=alias))
    except NotFoundError:
        return None


def store_report(store, manifest: dict, baseline: dict | None) -> bool:
    """Store the version's HTML report if matplotlib is installed; whether it was."""
    try:
        import matplotlib  # noqa: F401 (an optional dependency: the `report` extra)
    except ImportError:
        return False
    from model.report import render_report

    store.write_report(manifest["name"], manifest["version"], render_report(manifest, against=baseline))
    return True
