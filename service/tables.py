"""Tabular rows checked against the model's columns, and turned into the estimator's input.

A row is a list in feature order or an object keyed by feature name. Each value must fit its
column's kind (input_schema.columns: number, category, text, boolean; an old manifest without
columns has numbers only): a JSON number that is finite, a string, a string, true/false. A category
the estimator would refuse (its encoder has handle_unknown="error", service/encoders.py) is refused
here with the known values. The estimator's input is then built by model.tabular, the same code
that built it at training time, so dtypes match; pandas is only imported for DataFrame models.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from model.tabular import all_numbers, column, to_input
from service.encoders import refused_unknowns
from service.errors import InvalidInput
from service.wording import SHOWN_NAMES, described, hint, kind_of, show_json

_NON_FINITE = "NaN, Infinity and values beyond ±1.8e308 are not accepted"


class _Bad(Exception):
    """A value that does not fit its column (the message says what was expected)."""


def has_categories(schema: dict) -> bool:
    """Whether a tabular input has category columns: which of their values the model refuses is
    known only by walking the estimator's encoders (service.encoders)."""
    return schema.get("type") == "tabular" and any(
        spec.get("kind") == "category" for spec in schema.get("columns") or [])


class Table:
    """A tabular model's input: its features in order, each column's kind and allowed values."""

    def __init__(self, schema: dict, estimator=None):
        columns = schema.get("columns")
        features = [str(name) for name in schema.get("features") or [spec["name"] for spec in columns or []]]
        self.n_features = int(schema.get("n_features") or len(features))
        self.features = features or [f"x{i}" for i in range(self.n_features)]
        self.index = {name: i for i, name in enumerate(self.features)}
        self.feature_hint = hint(self.features)
        # Old manifests have no columns: every feature is a number.
        self.columns = [dict(spec) for spec in columns] if columns else [
            column(name, "number") for name in self.features]
        if [spec["name"] for spec in self.columns] != self.features:
            raise ValueError("input_schema.columns do not name the input_schema.features in order")
        self.frame = bool(schema.get("frame"))
        self.numbers = all_numbers(self.columns)
        if not self.frame and not self.numbers:
            raise ValueError("input_schema has columns that are not numbers but no frame: the estimator's "
                             "input cannot be a float matrix")
        self.what = "numbers" if self.numbers else "values"
        categories = [spec["name"] for spec in self.columns if spec["kind"] == "category"]
        # Only the category columns matter; a model of numbers never walks its estimator.
        refused = refused_unknowns(estimator, self.features) if categories and estimator is not None else {}
        self.closed: dict[str, list[str]] = {name: sorted(refused[name]) for name in categories
                                             if name in refused}
        self._checks = [self._check(spec) for spec in self.columns]

    @property
    def matrix(self) -> bool:
        """True when the input is a float64 matrix of numbers (the fast path), False for a DataFrame."""
        return self.numbers and not self.frame

    # -- the shape of a row -----------------------------------------------------------------
    def as_list(self, i: int, row) -> list:
        """instances[i] as a list in feature order, or InvalidInput naming what is wrong with it."""
        if type(row) is dict:
            return self.from_object(i, row)
        if type(row) is not list:
            raise InvalidInput(
                f"instances[{i}] is {kind_of(row)}: this model takes rows of {self.n_features} {self.what}, "
                f"as a list or as an object keyed by feature name ({self.feature_hint})"
            )
        if len(row) != self.n_features:
            raise InvalidInput(
                f"instances[{i}] has {len(row)} values, the model expects {self.n_features} "
                f"(features: {self.feature_hint})"
            )
        return row

    def from_object(self, i: int, row: dict) -> list:
        """A row keyed by feature name as a list in feature order (every feature, no other key)."""
        index = self.index
        if len(row) != self.n_features or any(key not in index for key in row):
            unknown = [key for key in row if key not in index]
            missing = [name for name in self.features if name not in row]
            parts = []
            if unknown:
                parts.append(f"has unknown features {hint(unknown)}")
            if missing:
                parts.append(
                    f"is missing {len(missing)} of the {self.n_features} features ({hint(missing)})"
                )
            raise InvalidInput(
                f"instances[{i}] {' and '.join(parts)}: use exactly the model's feature names as keys"
            )
        return [row[name] for name in self.features]

    # -- the values of a row ------------------------------------------------------------------
    def typed_rows(self, instances: list) -> list[list]:
        """Every row as a list of Python values of its columns' kinds, or InvalidInput naming the
        row, the feature, what it expects and what it got."""
        checks, features = self._checks, self.features
        typed = []
        for i, row in enumerate(instances):
            row = self.as_list(i, row)
            values = []
            for j, check in enumerate(checks):
                try:
                    values.append(check(row[j]))
                except _Bad as bad:
                    raise InvalidInput(f"instances[{i}].{features[j]}: {bad}") from None
            typed.append(values)
        return typed

    def to_input(self, instances: list):
        """The estimator's input for checked instances: a DataFrame (frame models) or a float matrix."""
        return to_input(self.columns, self.typed_rows(instances), frame=self.frame)

    def _check(self, spec: dict) -> Callable:
        kind, name = spec["kind"], spec["name"]
        if kind == "number":
            return _number
        if kind == "boolean":
            return _boolean
        if kind == "text":
            return _text
        if name in self.closed:
            return _closed_category(self.closed[name])
        return _open_category(spec.get("values") or [])


def _number(value) -> float:
    if type(value) is int or type(value) is float:  # bool is an int subclass, not a number here
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
        raise _Bad(f"expected a finite number ({_NON_FINITE}), got {show_json(value)}")
    raise _Bad(f"expected a number, got {described(value)}")


def _boolean(value) -> bool:
    if type(value) is bool:
        return value
    raise _Bad(f"expected true or false, got {described(value)}")


def _text(value) -> str:
    if type(value) is str:
        return value
    raise _Bad(f"expected a string, got {described(value)}")


def _values_hint(values: list[str]) -> str:
    shown = hint(values)
    return shown if len(values) <= SHOWN_NAMES else f"{shown} ({len(values)} values)"


def _closed_category(values: list[str]) -> Callable:
    known = frozenset(values)
    expected = f"expected one of {_values_hint(values)}"

    def check(value) -> str:
        if type(value) is str and value in known:
            return value
        if type(value) is str:
            raise _Bad(f"{expected}; got {show_json(value)}")
        raise _Bad(f"{expected} (as a string); got {described(value)}")

    return check


def _open_category(values: list[str]) -> Callable:
    known = f" (known: {_values_hint(values)})" if values else ""

    def check(value) -> str:
        if type(value) is str:
            return value
        raise _Bad(f"expected a category as a string{known}, got {described(value)}")

    return check
