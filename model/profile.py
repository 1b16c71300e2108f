"""The training data's profile: a compact baseline recorded in the manifest under `profile`, for
comparing what the served model sees (and says) with what it was trained on.

`profile(X, schema, predicted, task, ...)` describes the rows a model was fitted on (`data`:
"train"; a model trained elsewhere is described by its held-out rows, `data`: "holdout") and the
model's predictions on the held-out rows. Everything is JSON; numbers have 6 significant digits.

Format (version 1)::

    {"version": 1, "data": "train", "rows": 1437,
     "features": {                                   # tables: one entry per input column
       "age":    {"kind": "number", "edges": [18, 24, 30, 37, 43, 49, 55, 61, 67, 73, 79],
                  "shares": [0.09, 0.1, ...], "min": 18, "max": 79, "mean": 48.6},
       "plan":   {"kind": "category", "shares": {"basic": 0.35, "pro": 0.33, "team": 0.32},
                  "distinct": 3, "other": 0.0},
       "active": {"kind": "boolean", "shares": {"false": 0.4, "true": 0.6}},
       "note":   {"kind": "text", "length": {<a number's entry>}, "tokens": [...], ...}},
     "text": {"length": {<a number's entry>}, "tokens": ["the", "to", ...],   # text models
              "coverage": 0.62, "distinct_tokens": 91021, "tokenizer": "...",
              "vectorizer_vocabulary": 101631},
     "predictions": {"rows": 360, "classes": {"0": 0.1, "1": 0.1, ...}}}  # a classifier's
                                                                          # (a regressor's: a
                                                                          # number's entry)

- A number: `edges` are non-decreasing bin edges (the training quantiles at 0, 0.1, ..., 1 with
  repeats dropped; for a feature with at most 10 distinct values, the midpoints between them, so
  each value has its own bin; a constant feature has edges [v, v]). Bin i holds edges[i] <= x <
  edges[i+1], the last one also x == edges[-1]; `shares` are the training rows per bin (sum 1).
  Values below `min` or above `max` are outside the training range. `missing` (NaN share) appears
  only when some values are missing; bins and shares are over the present values.
- A category: the share of each of the 50 most frequent values, `other` for the rest, `distinct`
  values seen; a boolean: the shares of "true" and "false".
- Text: `length` is a number's entry for the character length; `tokens` the most frequent tokens
  (1,000 for a text model, 200 for a text column), most frequent first, by `tokens()` below
  (lower case, runs of 2+ word characters: scikit-learn's default token pattern); `coverage` is
  the share of the training text's tokens that are among them, the baseline for the coverage of
  new text; `vectorizer_vocabulary` the fitted vectorizer's vocabulary size, when it has one.
- `predictions` describe the model's outputs on the held-out rows: each class's share (every
  class of the model, sum 1), or for a regressor a number's entry.

Sizes measured (compact JSON): digits (64 numbers) 11 KB, 23 KB in the stored, indented manifest
(36 KB in all, 10.5 KB without it); diabetes (10 numbers, a regressor) 3 KB; the churn table 0.7 KB;
a text model over a 20,000-word vocabulary 9 KB (the 1,000 tokens cover 94 % of its tokens).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

FORMAT_VERSION = 1
BINS = 10
TOP_CATEGORIES = 50
TOP_TOKENS = 1000
TOP_TOKENS_COLUMN = 200
TOKEN_PATTERN = re.compile(r"(?u)\b\w\w+\b")
TOKENIZER = "lower case, runs of 2+ word characters (scikit-learn's default token_pattern)"


def _round(value: float) -> float:
    return float(f"{float(value):.6g}")


def tokens(text: str) -> list[str]:
    """The profile's tokens of a text (the same rule must be used to measure new text's coverage)."""
    return TOKEN_PATTERN.findall(str(text).lower())


def numbers(values) -> dict:
    """A number's entry: bin edges and shares, min, max, mean (and the missing share, if any)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    present = values[~np.isnan(values)]
    entry: dict = {"kind": "number"}
    if len(present) < len(values):
        entry["missing"] = _round((len(values) - len(present)) / len(values))
    if len(present) == 0:
        entry.update(edges=[], shares=[])
        return entry
    distinct = np.unique(present)
    if len(distinct) == 1:
        edges = [_round(distinct[0])] * 2
    else:
        if len(distinct) <= BINS:
            raw = np.concatenate([distinct[:1], (distinct[:-1] + distinct[1:]) / 2, distinct[-1:]])
        else:
            raw = np.quantile(present, np.linspace(0, 1, BINS + 1))
        edges = sorted({_round(e) for e in raw})
        if len(edges) == 1:
            edges = edges * 2
    # Bin i: edges[i] <= x < edges[i+1]; the last bin also holds x == edges[-1] (np.histogram's rule).
    index = np.searchsorted(np.asarray(edges[1:-1]), present, side="right")
    counts = np.bincount(index, minlength=len(edges) - 1)
    entry.update(
        edges=edges,
        shares=[_round(c / len(present)) for c in counts],
        min=_round(present.min()),
        max=_round(present.max()),
        mean=_round(present.mean()),
    )
    return entry


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def categories(values, kind: str = "category") -> dict:
    """A category's (or a boolean's) entry: the share of each value, the most frequent 50 by name."""
    values = list(values)
    present = [v for v in values if not _is_missing(v)]
    if kind == "boolean":
        present = ["true" if bool(v) else "false" for v in present]
    counts = Counter(str(v) for v in present)
    total = max(len(present), 1)
    entry: dict = {"kind": kind}
    if len(present) < len(values):
        entry["missing"] = _round((len(values) - len(present)) / len(values))
    if kind == "boolean":
        entry["shares"] = {key: _round(counts.get(key, 0) / total) for key in ("false", "true")}
        return entry
    top = counts.most_common(TOP_CATEGORIES)
    entry["shares"] = {key: _round(count / total) for key, count in top}
    entry["other"] = _round((len(present) - sum(count for _, count in top)) / total)
    entry["distinct"] = len(counts)
    return entry


def text(values, top: int = TOP_TOKENS, estimator=None) -> dict:
    """A text's entry: the length distribution, the most frequent tokens and their coverage."""
    values = ["" if _is_missing(v) else str(v) for v in values]
    counts: Counter = Counter()
    for value in values:
        counts.update(tokens(value))
    kept = [token for token, _ in counts.most_common(top)]
    total = sum(counts.values())
    entry: dict = {
        "kind": "text",
        "length": numbers([len(v) for v in values]),
        "tokens": kept,
        "coverage": _round(sum(counts[t] for t in kept) / total) if total else 0.0,
        "distinct_tokens": len(counts),
        "tokenizer": TOKENIZER,
    }
    entry["length"].pop("kind")
    size = _vectorizer_vocabulary(estimator)
    if size is not None:
        entry["vectorizer_vocabulary"] = size
    return entry


def _vectorizer_vocabulary(estimator) -> int | None:
    steps = [estimator, *(step for _, step in getattr(estimator, "steps", None) or [])]
    for step in steps:
        vocabulary = getattr(step, "vocabulary_", None)
        if isinstance(vocabulary, dict):
            return len(vocabulary)
    return None


def predictions(predicted, task: str, classes=()) -> dict:
    """The held-out predictions' entry: each class's share, or a regressor's number entry."""
    predicted = np.asarray(predicted)
    if task == "regression":
        entry = numbers(predicted.astype(np.float64))
        entry.pop("kind")
        return {"rows": len(predicted), **entry}
    counts = Counter(str(v.item() if isinstance(v, np.generic) else v) for v in predicted)
    labels = [str(c) for c in classes] or sorted(counts)
    total = max(len(predicted), 1)
    return {"rows": len(predicted), "classes": {label: _round(counts.get(label, 0) / total)
                                                for label in labels}}


def _column(X, j: int, name: str):
    if hasattr(X, "iloc"):
        return X[name].tolist() if X[name].dtype == object else X[name].to_numpy()
    return np.asarray(X)[:, j]


def profile(X, schema: dict, predicted, task: str, *, classes=(), data: str = "train",
            estimator=None) -> dict:
    """The profile (format in the module's docstring) of rows `X` described by the manifest's input
    `schema` (a matrix, a DataFrame or a list of strings), with the held-out `predicted` values."""
    result: dict = {"version": FORMAT_VERSION, "data": data, "rows": len(X)}
    if schema["type"] == "text":
        result["text"] = text(X, TOP_TOKENS, estimator)
        result["text"].pop("kind")
    else:
        columns = schema.get("columns") or [{"name": n, "kind": "number"} for n in schema["features"]]
        features = {}
        for j, spec in enumerate(columns):
            values = _column(X, j, spec["name"])
            kind = spec["kind"]
            if kind == "number":
                features[spec["name"]] = numbers(values)
            elif kind == "text":
                features[spec["name"]] = text(values, TOP_TOKENS_COLUMN)
            else:
                features[spec["name"]] = categories(values, kind)
        result["features"] = features
    result["predictions"] = predictions(predicted, task, classes)
    return result


def summary(profile: dict) -> dict:
    """A few lines of a profile for `python -m model show` (the full one: `show --profile`)."""
    kinds = Counter(entry["kind"] for entry in (profile.get("features") or {}).values())
    short: dict = {key: profile[key] for key in ("version", "data", "rows") if key in profile}
    if kinds:
        short["features"] = dict(sorted(kinds.items()))
    if "text" in profile:
        short["text"] = {"tokens": len(profile["text"]["tokens"]), "coverage": profile["text"]["coverage"]}
    predicted = profile.get("predictions") or {}
    keep = ("rows", "classes", "min", "max", "mean")
    short["predictions"] = {key: predicted[key] for key in keep if key in predicted}
    short["full"] = "python -m model show --profile"
    return short
