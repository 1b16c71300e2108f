"""Training: build the estimator, fit it on a held-out split, evaluate it, describe it."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import numpy as np

from model.artifact import (
    ARTIFACT_FILE,
    FORMAT,
    SCHEMA_VERSION,
    dump_estimator,
    new_version,
    runtime_versions,
    sha256_bytes,
)
from model.data import Dataset
from model.errors import DataError

DEFAULT_SEED = 42
DEFAULT_TEST_SIZE = 0.2


def build_estimator(kind: str, params: dict, seed: int):
    """The default pipelines: scaled logistic regression (tabular), tf-idf + LR (text)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    clf = LogisticRegression(
        C=float(params.get("C", 1.0)), max_iter=int(params.get("max_iter", 1000)), random_state=seed
    )
    if kind == "text":
        # Unigrams by default, as in the seed article; ngram_max=2 adds bigrams (often a little more
        # accurate, several times the vocabulary: a bigger pickle, slower worker start).
        vectorizer = TfidfVectorizer(
            sublinear_tf=True,
            ngram_range=(1, int(params.get("ngram_max", 1))),
            min_df=int(params.get("min_df", 1)),
            max_features=int(params["max_features"]) if "max_features" in params else None,
        )
        return Pipeline([("tfidf", vectorizer), ("clf", clf)])
    return Pipeline([("scale", StandardScaler()), ("clf", clf)])


def _git_commit() -> str:
    from model.gitinfo import head_commit

    return os.environ.get("GIT_COMMIT") or head_commit() or "unknown"


def _jsonable(value):
    return value.item() if isinstance(value, np.generic) else value


def train(
    dataset: Dataset,
    *,
    name: str,
    params: dict | None = None,
    seed: int = DEFAULT_SEED,
    test_size: float = DEFAULT_TEST_SIZE,
) -> tuple[bytes, dict]:
    """Fit and evaluate a model; return the pickle's bytes and its manifest (version included)."""
    from sklearn.metrics import accuracy_score, classification_report, f1_score
    from sklearn.model_selection import train_test_split

    params = dict(params or {})
    if not 0 < test_size < 1:
        raise DataError(f"test size must be between 0 and 1, got {test_size}")
    try:
        X_train, X_test, y_train, y_test = train_test_split(
            dataset.X, dataset.y, test_size=test_size, random_state=seed, stratify=dataset.y
        )
    except ValueError as exc:
        raise DataError(f"cannot split {dataset.source} into train and test sets: {exc}") from None
    estimator = build_estimator(dataset.kind, params, seed)
    try:
        estimator.fit(X_train, y_train)
    except ValueError as exc:
        raise DataError(f"cannot train on {dataset.source}: {exc}") from None
    predicted = estimator.predict(X_test)
    report = classification_report(y_test, predicted, output_dict=True, zero_division=0)
    per_class = {
        str(label): {k: round(float(v), 4) for k, v in scores.items()}
        for label, scores in report.items()
        if label not in ("accuracy", "macro avg", "weighted avg")
    }
    metrics = {
        "accuracy": round(float(accuracy_score(y_test, predicted)), 4),
        "macro_f1": round(float(f1_score(y_test, predicted, average="macro")), 4),
        "per_class": per_class,
    }
    artifact = dump_estimator(estimator)
    digest = sha256_bytes(artifact)
    created = datetime.now(UTC).replace(microsecond=0)
    if dataset.kind == "text":
        schema = {"type": "text"}
        example = X_test[0]
    else:
        names = dataset.feature_names or [f"x{i}" for i in range(dataset.X.shape[1])]
        schema = {"type": "tabular", "features": names, "n_features": len(names)}
        example = [_jsonable(v) for v in np.asarray(X_test[0]).tolist()]
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "version": new_version(created, digest),
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "artifact": {
            "file": ARTIFACT_FILE,
            "sha256": digest,
            "size": len(artifact),
            "format": FORMAT,
        },
        "runtime": runtime_versions(),
        "git_commit": _git_commit(),
        "data": {
            "source": dataset.source,
            "sha256": dataset.sha256,
            "rows": dataset.rows,
            "train_rows": len(y_train),
            "test_rows": len(y_test),
        },
        "estimator": " -> ".join(type(step).__name__ for _, step in estimator.steps),
        "params": {**params, "seed": seed, "test_size": test_size},
        "metrics": metrics,
        "classes": [_jsonable(c) for c in estimator.classes_],
        "input_schema": schema,
        "example": example,
    }
    return artifact, manifest
