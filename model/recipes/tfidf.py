"""Text: tf-idf features, then logistic regression (the default text model).

Parameters: C (1.0), max_iter (1000), ngram_max (1), min_df (1), max_features (unlimited).
"""

from __future__ import annotations


def build(params: dict, seed: int):
    """The unfitted pipeline; the service computes it with numpy directly (service/fastpath.py)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    clf = LogisticRegression(C=float(params.get("C", 1.0)), max_iter=int(params.get("max_iter", 1000)),
                             random_state=seed)
    # Unigrams by default, as in the seed article; ngram_max=2 adds bigrams (often a little more
    # accurate, several times the vocabulary: a bigger pickle, slower worker start).
    vectorizer = TfidfVectorizer(
        sublinear_tf=True,
        ngram_range=(1, int(params.get("ngram_max", 1))),
        min_df=int(params.get("min_df", 1)),
        max_features=int(params["max_features"]) if "max_features" in params else None,
    )
    return Pipeline([("tfidf", vectorizer), ("clf", clf)])
