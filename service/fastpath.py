"""A direct numpy path for the default tabular pipeline (standard scaling + logistic regression).

For a single row, almost all of `predict_proba`'s time is scikit-learn's per-call machinery (input
validation, the DataFrame check, estimator tags), not the arithmetic. For the pipelines this
project trains by default the arithmetic is two lines, so the service computes it directly. It is
only used after it has reproduced `predict_proba` on real rows when the model loads; anything else
(text models, other estimators, a mismatch) keeps the plain `predict_proba`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import expit

# Agreement required with predict_proba (float64 rounding differences only).
TOLERANCE = 1e-10


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=1, keepdims=True)
    return scores


def _linear(estimator) -> Callable[[np.ndarray], np.ndarray] | None:
    """The direct function for Pipeline([StandardScaler, LogisticRegression]), else None."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(estimator, Pipeline) or len(estimator.steps) != 2:
        return None
    scaler, clf = (step for _, step in estimator.steps)
    if type(scaler) is not StandardScaler or type(clf) is not LogisticRegression:
        return None
    mean = scaler.mean_ if scaler.with_mean else None
    scale = scaler.scale_ if scaler.with_std else None
    coef_t = np.ascontiguousarray(clf.coef_.T)
    intercept = clf.intercept_
    binary = len(clf.classes_) <= 2

    def proba(X: np.ndarray) -> np.ndarray:
        if mean is not None:
            X = X - mean
        if scale is not None:
            X = X / scale
        scores = X @ coef_t + intercept
        if binary:
            positive = expit(scores[:, 0])
            return np.column_stack([1.0 - positive, positive])
        return _softmax(scores)

    return proba


def compile_proba(estimator, sample: np.ndarray) -> Callable[[np.ndarray], np.ndarray] | None:
    """A faster equivalent of `estimator.predict_proba`, checked on `sample` rows, or None."""
    proba = _linear(estimator)
    if proba is None or sample.ndim != 2 or not len(sample):
        return None
    try:
        if not np.allclose(proba(sample), estimator.predict_proba(sample), rtol=0, atol=TOLERANCE):
            return None
    except (ValueError, FloatingPointError):
        return None
    return proba
