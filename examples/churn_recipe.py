"""An example of a team's own recipe: customer churn from a mixed table (README: Bring your own model).

`python -m model train --recipe examples.churn_recipe:build ...` imports it from the repo root; a
recipe may live anywhere importable, or in model/recipes/ to be named by its file name alone.
"""

from __future__ import annotations


def build(params: dict, seed: int, columns: list[dict]):
    """An unfitted estimator: numbers scaled, categories one-hot encoded, booleans as they are, then
    a logistic regression. `columns` lists the table's columns and their kinds (number, category,
    text, boolean); `params` holds the --param values as strings."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def of_kind(*kinds: str) -> list[str]:
        return [c["name"] for c in columns if c["kind"] in kinds]

    encode = ColumnTransformer([
        ("numbers", StandardScaler(), of_kind("number")),
        # A plan the model never saw is refused with a 400 naming the known ones (handle_unknown).
        ("categories", OneHotEncoder(handle_unknown="error"), of_kind("category", "text")),
        ("flags", "passthrough", of_kind("boolean")),
    ])
    classifier = LogisticRegression(C=float(params.get("C", 1.0)), max_iter=1000, random_state=seed)
    return Pipeline([("encode", encode), ("classify", classifier)])
