"""What a prediction looks like for each kind of model, built from the estimator's arrays.

- a classifier with predict_proba: {"label": L, "probabilities": {class: p}}, L the most probable;
- a classifier with decision_function only: {"label": L, "scores": {class: s}}, L from predict; a
  binary one has one score per row, for the positive class (classes[1]);
- any other classifier: {"label": L};
- a regressor: {"value": v}.

What the estimator offers is what it has (`hasattr`, which also covers methods scikit-learn hides,
like SVC(probability=False).predict_proba); the manifest's `output` is only used when there is no
estimator (pickle-free mode), where it is all there is.
"""

from __future__ import annotations

import numpy as np

PROBABILITIES, SCORES, LABEL, VALUE = "probabilities", "scores", "label", "value"
# Regressors' predictions are counted under this one label: a label per value would grow /metrics
# without bound.
VALUE_LABEL = "value"


def output_kind(task: str, estimator) -> str:
    """PROBABILITIES, SCORES, LABEL or VALUE: which methods answer and what a prediction holds."""
    if task == "regression":
        return VALUE
    if hasattr(estimator, "predict_proba"):
        return PROBABILITIES
    if hasattr(estimator, "decision_function"):
        return SCORES
    return LABEL


def declared_kind(task: str, output: dict | None) -> str:
    """The same kind from the manifest's `output` record, for pickle-free serving (no estimator to
    ask): what the publisher found the estimator has."""
    if task == "regression":
        return VALUE
    output = output or {}
    if output.get("probabilities"):
        return PROBABILITIES
    if output.get("scores"):
        return SCORES
    return LABEL


def first_non_finite(array: np.ndarray) -> int | None:
    """The first row of a 1-D or 2-D output holding NaN or an infinity, or None."""
    finite = np.isfinite(array)
    if finite.all():
        return None
    if finite.ndim > 1:
        finite = finite.all(axis=tuple(range(1, finite.ndim)))
    return int(np.flatnonzero(~finite)[0])


def with_probabilities(proba: np.ndarray, labels: list, keys: list[str]) -> tuple[list[dict], list]:
    """Label (the argmax) and the probability of every class, per row; and the labels."""
    chosen = [labels[k] for k in proba.argmax(axis=1).tolist()]
    return [
        {"label": label, "probabilities": dict(zip(keys, row, strict=True))}
        for label, row in zip(chosen, proba.tolist(), strict=True)
    ], chosen


def with_scores(chosen: list, scores: np.ndarray, keys: list[str]) -> tuple[list[dict], list]:
    """Label and decision score per class (binary: the positive class's only), per row."""
    if scores.ndim == 1:
        positive = keys[-1]
        return [{"label": label, "scores": {positive: s}}
                for label, s in zip(chosen, scores.tolist(), strict=True)], chosen
    return [
        {"label": label, "scores": dict(zip(keys, row, strict=True))}
        for label, row in zip(chosen, scores.tolist(), strict=True)
    ], chosen


def with_labels(chosen: list) -> tuple[list[dict], list]:
    """The label alone, per row; and the labels."""
    return [{"label": label} for label in chosen], chosen


def with_values(values: np.ndarray) -> tuple[list[dict], list]:
    """The predicted value per row; every row is counted under VALUE_LABEL."""
    return [{"value": v} for v in values.tolist()], [VALUE_LABEL] * len(values)


def one_value_per_row(values: np.ndarray) -> np.ndarray:
    """A regressor's predictions as one float per row (a single-output column is flattened)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(f"the regressor predicts {values.shape[1:]} values per instance; the service "
                         "serves one value per instance")
    return values
