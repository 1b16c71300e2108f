"""Evaluation on held-out data: the manifest's `metrics` and `evaluation` for either task.

Classification: accuracy, macro F1, per-class precision/recall/F1 and the confusion matrix.
Regression: MAE, RMSE, R² and a sample of (actual, predicted) pairs for the report's plots.
"""

from __future__ import annotations

import numpy as np

from model.errors import DataError

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)
# Metrics where a smaller value is better (the quality gate and the report need the direction).
LOWER_IS_BETTER = frozenset(("mae", "rmse"))
METRICS = {CLASSIFICATION: ("accuracy", "macro_f1"), REGRESSION: ("r2", "mae", "rmse")}
_SAMPLE = 1000


def task_of(estimator) -> str:
    """classification or regression, from the estimator itself (scikit-learn's estimator tags)."""
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(estimator):
        return CLASSIFICATION
    if is_regressor(estimator):
        return REGRESSION
    # A pipeline or custom estimator without tags: a classifier has classes once fitted.
    return CLASSIFICATION if hasattr(estimator, "classes_") else REGRESSION


def jsonable(value):
    """A numpy scalar as the equivalent Python value (labels and examples go to JSON)."""
    return value.item() if isinstance(value, np.generic) else value


def predict_holdout(estimator, X_test) -> np.ndarray:
    """The estimator's predictions on held-out data; DataError if it cannot predict."""
    try:
        return np.asarray(estimator.predict(X_test))
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise DataError(f"the model cannot predict the held-out data: {exc}") from None


def evaluate(estimator, X_test, y_test, task: str, predicted=None) -> tuple[dict, dict]:
    """(metrics, evaluation) of a fitted estimator on held-out data; DataError if it cannot predict.

    `predicted` (from predict_holdout) saves predicting again."""
    predicted = predict_holdout(estimator, X_test) if predicted is None else np.asarray(predicted)
    if task == REGRESSION:
        return _regression(np.asarray(y_test, dtype=np.float64), predicted.astype(np.float64))
    return _classification(estimator, np.asarray(y_test), predicted)


def _classification(estimator, y_test, predicted) -> tuple[dict, dict]:
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

    labels = list(getattr(estimator, "classes_", np.unique(np.concatenate([y_test, predicted]))))
    try:
        report = classification_report(y_test, predicted, labels=labels, output_dict=True, zero_division=0)
    except (ValueError, TypeError) as exc:
        raise DataError(f"the held-out labels do not match the model's classes: {exc}") from None
    per_class = {
        str(jsonable(label)): {k: round(float(v), 4) for k, v in report[str(label)].items()}
        for label in labels
        if str(label) in report
    }
    metrics = {
        "accuracy": round(float(accuracy_score(y_test, predicted)), 4),
        "macro_f1": round(float(f1_score(y_test, predicted, average="macro", zero_division=0)), 4),
        "per_class": per_class,
    }
    matrix = confusion_matrix(y_test, predicted, labels=labels)
    evaluation = {"confusion_matrix": {"labels": [jsonable(label) for label in labels],
                                       "matrix": matrix.astype(int).tolist()}}
    return metrics, evaluation


def _regression(y_test, predicted) -> tuple[dict, dict]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    if not np.isfinite(predicted).all():
        raise DataError("the model predicts values that are not finite numbers on the held-out data")
    metrics = {
        "mae": round(float(mean_absolute_error(y_test, predicted)), 4),
        "rmse": round(float(np.sqrt(mean_squared_error(y_test, predicted))), 4),
        "r2": round(float(r2_score(y_test, predicted)), 4),
    }
    keep = np.arange(len(y_test))
    if len(keep) > _SAMPLE:  # enough points for a scatter plot, a bounded manifest
        keep = np.random.default_rng(0).choice(keep, _SAMPLE, replace=False)
    evaluation = {"actual": [float(f"{v:.6g}") for v in y_test[keep]],
                  "predicted": [float(f"{v:.6g}") for v in predicted[keep]]}
    return metrics, evaluation


def headline(manifest: dict) -> str:
    """The metrics line the CLI prints: `accuracy=0.97 macro_f1=0.97` or `r2=0.41 mae=... rmse=...`."""
    task = manifest.get("task", CLASSIFICATION)
    metrics = manifest["metrics"]
    return " ".join(f"{m}={metrics[m]:.4f}" for m in METRICS[task] if m in metrics)
