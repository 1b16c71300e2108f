"""Regression on a table of numbers: a random forest.

Parameters: n_estimators (100), max_depth (unlimited), min_samples_leaf (1).
"""

from __future__ import annotations


def build(params: dict, seed: int):
    """An unfitted RandomForestRegressor."""
    from sklearn.ensemble import RandomForestRegressor

    depth = params.get("max_depth")
    return RandomForestRegressor(
        n_estimators=int(params.get("n_estimators", 100)),
        max_depth=int(depth) if depth else None,
        min_samples_leaf=int(params.get("min_samples_leaf", 1)),
        random_state=seed,
        n_jobs=1,
    )
