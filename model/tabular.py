"""Tables of mixed columns: each column's kind, inferred from training data, and the one way rows
become the estimator's input, shared by training, import and the service.

A column is a number, a category (with the values seen in training), free text, or a boolean. A
table of numbers only is a float64 matrix, as before; any other table is a pandas DataFrame with
the column names (what a `ColumnTransformer` selecting columns by name needs), built here with the
same dtypes at training and at serving time. The manifest records the columns in
`input_schema.columns` and whether the estimator takes a DataFrame in `input_schema.frame`.
"""

from __future__ import annotations

from collections.abc import Sequence

from model.errors import DataError

KINDS = ("number", "category", "text", "boolean")
_TRUE = frozenset(("true", "yes"))
_FALSE = frozenset(("false", "no"))
# A string column is a category when it has at most this many distinct values (else free text).
MAX_CATEGORIES = 50
_TEXT_LENGTH = 40  # or when its values average this many characters or more


def column(name: str, kind: str, values: Sequence[str] | None = None) -> dict:
    """One column of `input_schema.columns`."""
    if kind not in KINDS:
        raise ValueError(f"unknown column kind {kind!r}")
    spec = {"name": name, "kind": kind}
    if kind == "category":
        spec["values"] = sorted({str(v) for v in values or ()})
    return spec


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def infer_kind(values: Sequence[str]) -> str:
    """The kind of a column given as CSV strings: number, boolean, category or text."""
    present = [v for v in values if v != ""]
    if present and all(_number(v) is not None for v in present):
        return "number"
    lowered = {v.strip().lower() for v in present}
    if lowered and lowered <= (_TRUE | _FALSE) and lowered & _TRUE and lowered & _FALSE:
        return "boolean"
    distinct = set(present)
    average = sum(map(len, present)) / len(present) if present else 0
    if len(distinct) <= MAX_CATEGORIES and average < _TEXT_LENGTH:
        return "category"
    return "text"


def parse_columns(source: str, header: Sequence[str], rows: Sequence[Sequence[str]],
                  kinds: dict[str, str] | None = None) -> tuple[list[dict], list[list]]:
    """Columns (with kinds) and typed rows from a CSV's strings; DataError naming a bad cell.

    `kinds` forces a column's kind (e.g. a numeric code that is really a category).
    """
    kinds = dict(kinds or {})
    unknown = sorted(set(kinds) - set(header))
    if unknown:
        raise DataError(f"{source} has no column {unknown[0]!r} (columns: {', '.join(header)})")
    columns = []
    for j, name in enumerate(header):
        values = [row[j] for row in rows]
        kind = kinds.get(name) or infer_kind(values)
        columns.append(column(name, kind, values if kind == "category" else None))
    typed = [[_typed_cell(source, i + 2, spec, value) for spec, value in zip(columns, row, strict=True)]
             for i, row in enumerate(rows)]
    return columns, typed


def _typed_cell(source: str, line: int, spec: dict, value: str):
    kind = spec["kind"]
    if kind == "number":
        number = _number(value)
        if number is None or number != number or number in (float("inf"), float("-inf")):
            raise DataError(f"{source} row {line} column {spec['name']!r} is not a finite number ({value!r})")
        return number
    if kind == "boolean":
        lowered = value.strip().lower()
        if lowered not in _TRUE | _FALSE:
            raise DataError(f"{source} row {line} column {spec['name']!r} is not true/false ({value!r})")
        return lowered in _TRUE
    return value


def all_numbers(columns: Sequence[dict]) -> bool:
    """True when every column is a number (the input is then a float64 matrix)."""
    return all(spec["kind"] == "number" for spec in columns)


def to_frame(columns: Sequence[dict], rows: Sequence[Sequence]):
    """A pandas DataFrame of typed rows (lists in column order), with each kind's dtype."""
    import pandas as pd

    data = {}
    for j, spec in enumerate(columns):
        values = [row[j] for row in rows]
        kind = spec["kind"]
        if kind == "number":
            data[spec["name"]] = pd.Series(values, dtype="float64")
        elif kind == "boolean":
            data[spec["name"]] = pd.Series(values, dtype="bool")
        else:
            data[spec["name"]] = pd.Series(values, dtype="object")
    return pd.DataFrame(data, columns=[spec["name"] for spec in columns])


def to_input(columns: Sequence[dict], rows: Sequence[Sequence], *, frame: bool):
    """The estimator's input for typed rows: a DataFrame when `frame`, else a float64 matrix."""
    if frame:
        return to_frame(columns, rows)
    import numpy as np

    return np.asarray(rows, dtype=np.float64)


def columns_of_frame(frame) -> list[dict]:
    """Columns (with kinds) of a DataFrame a notebook hands over (`publish_estimator`)."""
    import pandas as pd

    columns = []
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_bool_dtype(series):
            columns.append(column(str(name), "boolean"))
        elif pd.api.types.is_numeric_dtype(series):
            columns.append(column(str(name), "number"))
        else:
            values = [str(v) for v in series.dropna()]
            kind = infer_kind(values)
            kind = "category" if kind in ("number", "boolean") else kind
            columns.append(column(str(name), kind, values if kind == "category" else None))
    return columns


def rows_to_input(schema: dict, rows: Sequence):
    """A manifest's input schema applied to rows as a client sends them (lists in column order, or
    objects keyed by column name; strings for text): the estimator's input. No checks: for rows
    already known to be valid (tests, benchmarks); the service checks each value first."""
    if schema["type"] == "text":
        return list(rows)
    columns = schema.get("columns") or [{"name": n, "kind": "number"} for n in schema["features"]]
    if rows and isinstance(rows[0], dict):
        rows = [[row[c["name"]] for c in columns] for row in rows]
    return to_input(columns, rows, frame=bool(schema.get("frame")))
