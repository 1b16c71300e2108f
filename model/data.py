"""Training data: datasets that ship with scikit-learn, or a CSV file (local or s3://)."""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from model.errors import DataError, ModelError

# Offline, shipped inside scikit-learn; all multi-class or binary tabular data.
BUILTIN = {
    "digits": "load_digits",
    "iris": "load_iris",
    "wine": "load_wine",
    "breast_cancer": "load_breast_cancer",
}
NETWORK = {"20newsgroups"}


@dataclass
class Dataset:
    """Features (a 2-D float array, or a list of strings for text), labels and provenance."""

    X: object
    y: np.ndarray
    kind: str  # "tabular" or "text"
    feature_names: list[str] | None
    source: str
    sha256: str

    @property
    def rows(self) -> int:
        return len(self.y)


def load_dataset(
    spec: str,
    *,
    label_column: str = "label",
    text_column: str | None = None,
    s3_client=None,
) -> Dataset:
    """Load a dataset by name (see BUILTIN) or from a CSV path / s3:// URI, and check it."""
    if spec in BUILTIN:
        dataset = _builtin(spec)
    elif spec == "20newsgroups":
        dataset = _newsgroups()
    elif spec.endswith(".csv") or spec.startswith("s3://"):
        dataset = _csv(spec, label_column, text_column, s3_client)
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
    return Dataset(X, y, "tabular", names, f"sklearn:{name}", digest)


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


def _csv(uri: str, label_column: str, text_column: str | None, s3_client) -> Dataset:
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
    y = np.asarray([row[label_column] for row in rows])
    digest = hashlib.sha256(raw).hexdigest()
    if text_column:
        if text_column not in header:
            raise DataError(f"{uri} has no text column {text_column!r} (columns: {', '.join(header)})")
        X = [row[text_column] or "" for row in rows]
        return Dataset(X, y, "text", None, uri, digest)
    features = [c for c in header if c != label_column]
    if not features:
        raise DataError(f"{uri} has no feature columns besides {label_column!r}")
    X = np.empty((len(rows), len(features)), dtype=np.float64)
    for i, row in enumerate(rows):
        for j, column in enumerate(features):
            value = row[column]
            try:
                X[i, j] = float(value)
            except (TypeError, ValueError):
                raise DataError(
                    f"{uri} row {i + 2} column {column!r} is not a number ({value!r}); "
                    "for text data pass --text-column"
                ) from None
    if not np.isfinite(X).all():
        raise DataError(f"{uri} has NaN or infinite feature values")
    y = _numeric_labels(y)
    return Dataset(X, y, "tabular", features, uri, digest)


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
    classes, counts = np.unique(dataset.y, return_counts=True)
    if len(classes) < 2:
        raise DataError(f"{dataset.source} has one class only ({classes[0]!r}); need at least two")
    if counts.min() < 2:
        rare = classes[counts.argmin()]
        raise DataError(
            f"{dataset.source}: class {rare!r} has a single row; every class needs at least two "
            "for a held-out split"
        )
