"""Classification with a linear support vector machine: no probabilities, decision scores instead.

Parameters: C (1.0). The service answers the label and each class's decision score.
"""

from __future__ import annotations


def build(params: dict, seed: int):
    """Scaling, then LinearSVC (which has decision_function but no predict_proba)."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    return Pipeline([("scale", StandardScaler()),
                     ("clf", LinearSVC(C=float(params.get("C", 1.0)), random_state=seed))])
