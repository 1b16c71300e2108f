"""Tables of numbers: standard scaling, then logistic regression (the default tabular model).

Parameters: C (default 1.0), max_iter (1000).
"""

from __future__ import annotations


def build(params: dict, seed: int):
    """The unfitted pipeline; the service computes it with numpy directly (service/fastpath.py)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    clf = LogisticRegression(C=float(params.get("C", 1.0)), max_iter=int(params.get("max_iter", 1000)),
                             random_state=seed)
    return Pipeline([("scale", StandardScaler()), ("clf", clf)])
