"""Training data: datasets that ship with scikit-learn, or a CSV file (local or s3://).

A CSV's columns may be numbers, categories, booleans or free text (model/tabular.py infers each
kind, `--column-kind` overrides it); a table of numbers only stays a float64 matrix.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from model.errors import DataError, ModelError
from model.tabular import all_numbers, column, parse_columns, to_input

# Offline, shipped inside scikit-learn: classification tables, and diabetes (a regression target).
BUILTIN = {
    "digits": "load_digits",
    "iris": "load_iris",
    "wine": "load_wine",
    "breast_cancer": "load_breast_cancer",
    "diabetes": "load_diabetes",
}
NETWORK = {"20newsgroups"}


@dataclass
class Dataset:
    """Features, labels and provenance.

    X is a 2-D float array (a table of numbers), a pandas DataFrame (a table with other kinds of
    columns: `frame` is true) or a list of strings (text). `columns` describes a table's columns.
    """

    X: object
    y: np.ndarray
    kind: str  # "tabular" or "text"
    feature_names: list[str] | None
    source: str
    sha256: str
    columns: list[dict] | None = None

    @property
    def rows(self) -> int:
        return len(self.y)

    @property
    def frame(self) -> bool:
        """True when the features are a DataFrame (some column is not a number)."""
        return self.columns is not None and not all_numbers(self.columns)


def load_dataset(
    spec: str,
    *,
    label_column: str = "label",
    text_column: str | None = None,
    column_kinds: dict[str, str] | None = None,
    s3_client=None,
) -> Dataset:
    """Load a dataset by name (see BUILTIN) or from a CSV path / s3:// URI, and check it.

    `column_kinds` forces the kind of CSV columns (name -> number, category, text or boolean).
    """
    if spec in BUILTIN:
        dataset = _builtin(spec)
    elif spec == "20newsgroups":
        dataset = _newsgroups()
    elif spec.endswith(".csv") or spec.startswith("s3://"):
        dataset = _csv(spec, label_column, text_column, s3_client, column_kinds)
    else:
        import difflib

        known = [*BUILTIN, *NETWORK]
        close = difflib.get_close_matches(spec, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise DataError(f"unknown dataset {spec!r}: {hint}use one of {', '.join(known)}, or a .csv path or "
                        "s3:// URI")
    _check(dataset)
    return dataset


def _builtin(name: str) -> Dataset:
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, BUILTIN[name])()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target)
    digest = hashlib.sha256(X.tobytes() + y.tobytes()).hexdigest()
    names = [str(n) for n in bunch.feature_names] if hasattr(bunch, "feature_names") else None
    names = names or [f"x{i}" for i in range(X.shape[1])]
    return Dataset(X, y, "tabular", names, f"sklearn:{name}", digest, [column(n, "number") for n in names])


def _newsgroups() -> Dataset:
    from sklearn.datasets import fetch_20newsgroups

    try:
        bunch = fetch_20newsgroups(subset="all", remove=("headers", "footers", "quotes"))
    except OSError as exc:
        raise DataError(f"20newsgroups needs the network to download: {exc}") from None
    y = np.asarray([bunch.target_names[t] for t in bunch.target])
    digest = hashlib.sha256("\x00".join(bunch.data).encode()).hexdigest()
    return Dataset(list(bunch.data), y, "text", None, "sklearn:20newsgroups", digest)


def _read_source(uri: str, s3_client) -> bytes:
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        from model.backends import S3Backend

        backend = S3Backend(parsed.netloc, "", client=s3_client)
        try:
            return backend.read(parsed.path.lstrip("/"))[0]
        except ModelError as exc:
            raise DataError(f"cannot read {uri}: {exc}") from None
    try:
        return Path(uri).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {uri}: {exc.strerror}") from None


def _csv(uri: str, label_column: str, text_column: str | None, s3_client,
         column_kinds: dict[str, str] | None) -> Dataset:
    raw = _read_source(uri, s3_client)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{uri} is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if not header:
        raise DataError(f"{uri} is empty (no header row)")
    if label_column not in header:
        raise DataError(
            f"{uri} has no label column {label_column!r} (columns: {', '.join(header)}); "
            "name it with --label-column"
        )
    rows = list(reader)
    if not rows:
        raise DataError(f"{uri} has a header but no data rows")
    y = _numeric_labels(np.asarray([row[label_column] for row in rows]))
    digest = hashlib.sha256(raw).hexdigest()
    if text_column:
        if text_column not in header:
            raise DataError(
                f"{uri} has no text column {text_column!r} (columns: {', '.join(header)}); "
                "name it with --text-column"
            )
        X = [row[text_column] or "" for row in rows]
        return Dataset(X, y, "text", None, uri, digest)
    features = [c for c in header if c != label_column]
    if not features:
        raise DataError(f"{uri} has no feature columns besides {label_column!r}")
    if any(row.get(c) is None for row in rows for c in features):
        short = next(i for i, row in enumerate(rows) if any(row.get(c) is None for c in features))
        raise DataError(f"{uri} row {short + 2} has fewer values than the header has columns")
    cells = [[row[c] for c in features] for row in rows]
    columns, typed = parse_columns(uri, features, cells, column_kinds)
    X = to_input(columns, typed, frame=not all_numbers(columns))
    return Dataset(X, y, "tabular", features, uri, digest, columns)


def _numeric_labels(y: np.ndarray) -> np.ndarray:
    # Labels written as integers in a CSV are integers, not strings, for the API's answers.
    try:
        as_int = y.astype(np.int64)
    except ValueError:
        return y
    return as_int if (as_int.astype(str) == y).all() else y


def _check(dataset: Dataset) -> None:
    if dataset.rows == 0:
        raise DataError(f"{dataset.source} is empty")


def check_classes(dataset: Dataset) -> None:
    """DataError unless the labels can train and evaluate a classifier (two classes, two rows each)."""
    classes, counts = np.unique(dataset.y, return_counts=True)
    if len(classes) < 2:
        raise DataError(f"{dataset.source} has one class only ({classes[0].item()!r}); need at least two")
    if counts.min() < 2:
        rare = classes[counts.argmin()].item()
        raise DataError(
            f"{dataset.source}: class {rare!r} has a single row; every class needs at least two "
            "for a held-out split"
        )
