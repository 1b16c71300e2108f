"""Mixed tables: numbers scaled, categories one-hot encoded, booleans as 0/1, free text as tf-idf,
then a histogram gradient-boosted classifier.

Parameters: max_iter (200), learning_rate (0.1), max_leaf_nodes (31), unknown ("error": refuse a
category not seen in training; "ignore": encode it as all zeros).
"""

from __future__ import annotations


def build(params: dict, seed: int, columns: list[dict]):
    """One transformer per column kind (from the table's columns), then HistGradientBoosting."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def names(kind: str) -> list[str]:
        return [c["name"] for c in columns if c["kind"] == kind]

    parts = []
    if names("number"):
        parts.append(("number", StandardScaler(), names("number")))
    if names("category"):
        parts.append(("category", OneHotEncoder(handle_unknown=params.get("unknown", "error"),
                                                sparse_output=False), names("category")))
    if names("boolean"):
        parts.append(("boolean", "passthrough", names("boolean")))
    for name in names("text"):  # TfidfVectorizer takes one column (a 1-D selection) at a time
        parts.append((f"text_{name}", TfidfVectorizer(max_features=200), name))
    classifier = HistGradientBoostingClassifier(
        max_iter=int(params.get("max_iter", 200)),
        learning_rate=float(params.get("learning_rate", 0.1)),
        max_leaf_nodes=int(params.get("max_leaf_nodes", 31)),
        random_state=seed,
    )
    return Pipeline([("columns", ColumnTransformer(parts, sparse_threshold=0)), ("clf", classifier)])
