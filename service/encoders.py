"""Which category columns a fitted estimator refuses unknown values for, found once at load time.

A category the model never saw is the estimator's call: a OneHotEncoder or OrdinalEncoder with
`handle_unknown="error"` raises on it, one that ignores or maps unknowns ("ignore",
"infrequent_if_exist", "use_encoded_value", "warn") encodes it. The service refuses exactly what
the estimator would refuse, but up front, with a 400 naming the row, the feature and the known
values, instead of scikit-learn's "Found unknown categories ['gold'] in column 0".

The walk follows the columns from the estimator's input to the encoders: a Pipeline's first step
sees the input, a ColumnTransformer hands each transformer its selected columns (names, integer
indices, masks or slices), a FeatureUnion hands every part all of them. Steps after a Pipeline's
first see transformed features, not request columns, so the walk stops there.
"""

from __future__ import annotations

from collections.abc import Sequence

# The one handle_unknown value with which an encoder raises on a category it never saw.
REFUSES_UNKNOWN = "error"


def refused_unknowns(estimator, names: Sequence[str]) -> dict[str, frozenset[str]]:
    """For each input column some encoder refuses unknown categories for: the categories it knows.

    A column encoded twice (say one-hot and ordinal) is refused if either refuses, and then only
    values both know are accepted. Columns reaching no encoder are absent: the estimator decides.
    """
    found: dict[str, list[tuple[str, frozenset[str]]]] = {}
    _walk(estimator, list(names), found)
    refused = {}
    for name, encoders in found.items():
        known = [categories for policy, categories in encoders if policy == REFUSES_UNKNOWN]
        if known:
            refused[name] = frozenset.intersection(*known)
    return refused


def _walk(estimator, names: list[str], found: dict) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    if not names or estimator is None or isinstance(estimator, str):  # "drop", "passthrough"
        return
    if isinstance(estimator, Pipeline):
        first = next((step for _, step in estimator.steps if step not in (None, "passthrough")), None)
        _walk(first, names, found)
    elif isinstance(estimator, ColumnTransformer):
        for _, transformer, selection in getattr(estimator, "transformers_", ()):
            _walk(transformer, select(selection, names), found)
    elif isinstance(estimator, FeatureUnion):
        for _, transformer in estimator.transformer_list:
            _walk(transformer, names, found)
    elif isinstance(estimator, OneHotEncoder | OrdinalEncoder):
        policy = str(getattr(estimator, "handle_unknown", REFUSES_UNKNOWN))
        for name, categories in zip(names, getattr(estimator, "categories_", ()), strict=False):
            # Requests send categories as strings; a missing-value category (NaN/None) is not one.
            known = frozenset(str(c) for c in categories if isinstance(c, str) or _is_number(c))
            found.setdefault(name, []).append((policy, known))


def _is_number(value) -> bool:
    import numpy as np

    return isinstance(value, int | float | np.number) and value == value  # NaN != NaN


def select(selection, names: list[str]) -> list[str]:
    """The column names a fitted ColumnTransformer's column selection picks out of `names`.

    Anything it cannot resolve (a callable, a label slice) selects nothing: no encoder is found for
    those columns, so the estimator decides about their values.
    """
    import numpy as np

    try:
        if isinstance(selection, str):
            return [selection] if selection in names else []
        if isinstance(selection, int | np.integer) and not isinstance(selection, bool):
            return [names[int(selection)]]
        if isinstance(selection, slice):
            bounds = (selection.start, selection.stop, selection.step)
            return names[selection] if all(isinstance(v, int | type(None)) for v in bounds) else []
        items = list(selection)
        if items and all(isinstance(v, bool | np.bool_) for v in items):
            return [name for name, keep in zip(names, items, strict=False) if keep]
        if all(isinstance(v, int | np.integer) for v in items):
            return [names[int(v)] for v in items]
        if all(isinstance(v, str) for v in items):
            return [v for v in items if v in names]
    except (TypeError, IndexError):
        pass
    return []
