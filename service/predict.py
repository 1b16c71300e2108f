"""Validate request instances against a model's input schema and predict, cheaply.

The request path is kept lean on purpose: the schema is digested once per loaded model, rows are
type-checked in plain Python (bools and strings are not numbers here, though numpy would accept
them), the batch becomes one float64 array, and `predict_proba` runs once; the label is its argmax.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from service.errors import InvalidInput, TooLarge

_SHOWN_FEATURES = 6
_NUMBER_TYPES = frozenset((int, float))


def _kind(value) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        str: "a string",
        list: "a list",
        dict: "an object",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def _show(value) -> str:
    text = repr(value) if isinstance(value, str) else _json_repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _json_repr(value) -> str:
    import json

    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


class Predictor:
    """A loaded model plus everything the request path needs, computed once."""

    def __init__(self, estimator, manifest: dict, *, max_batch: int):
        self.estimator = estimator
        self.manifest = manifest
        self.max_batch = max_batch
        self.info = {"name": manifest["name"], "version": manifest["version"]}
        self.labels = list(manifest["classes"])
        self.keys = [str(label) for label in self.labels]
        schema = manifest["input_schema"]
        self.kind = schema["type"]
        if self.kind == "tabular":
            self.features: list[str] = list(schema.get("features") or [])
            self.n_features = int(schema.get("n_features") or len(self.features))
            if not self.features:
                self.features = [f"x{i}" for i in range(self.n_features)]
            self.index = {name: i for i, name in enumerate(self.features)}
            self._feature_hint = self._hint(self.features)
        import sklearn

        self._fast_context = sklearn.config_context
        self._direct = self._compile_direct()

    def _compile_direct(self):
        """The checked numpy path for the default pipelines (service.fastpath), or None."""
        from service.fastpath import compile_proba

        if self.kind == "text":
            example = self.manifest.get("example")
            return compile_proba(self.estimator, [example if isinstance(example, str) else ""])
        rng = np.random.default_rng(0)
        example = self.manifest.get("example")
        base = np.asarray(example, dtype=np.float64) if example is not None else np.zeros(self.n_features)
        if base.shape != (self.n_features,):
            return None
        # The example, zeros, and rows spread well beyond it: agreement must not be luck.
        sample = np.vstack([base, np.zeros_like(base), base + rng.normal(0, 10, (30, base.size))])
        return compile_proba(self.estimator, sample)

    @property
    def path(self) -> str:
        """Which prediction path this model uses: 'direct' (numpy) or 'predict_proba'."""
        return "direct" if self._direct is not None else "predict_proba"

    @staticmethod
    def _hint(names: Sequence[str]) -> str:
        if len(names) <= _SHOWN_FEATURES:
            return ", ".join(names)
        return ", ".join(names[: _SHOWN_FEATURES - 1]) + f", ... {names[-1]}"

    # -- validation -----------------------------------------------------------------------
    def check_batch(self, body) -> list:
        """The `instances` list of a parsed body, or InvalidInput/TooLarge saying what to send."""
        if not isinstance(body, dict) or "instances" not in body:
            raise InvalidInput(
                'the body must be a JSON object with an "instances" list, e.g. {"instances": [<instance>]}'
                " (GET /model shows the input schema and an example)"
            )
        instances = body["instances"]
        if not isinstance(instances, list):
            raise InvalidInput(f'"instances" must be a list of instances, got {_kind(instances)}')
        if not instances:
            raise InvalidInput('"instances" is empty: send at least one instance')
        if len(instances) > self.max_batch:
            raise TooLarge(
                f'"instances" has {len(instances)} items; at most {self.max_batch} are accepted per '
                "request: split the batch"
            )
        return instances

    def to_matrix(self, instances: list):
        """The model's input for a checked batch: a float64 array (tabular) or a list of strings."""
        if self.kind == "text":
            for i, text in enumerate(instances):
                if type(text) is not str:
                    raise InvalidInput(
                        f"instances[{i}] is {_kind(text)} ({_show(text)}): this model takes text; "
                        "send each instance as a string"
                    )
            return instances
        n = self.n_features
        rows = instances
        for i, row in enumerate(instances):
            if type(row) is dict:
                if rows is instances:
                    rows = list(instances)  # never modify the caller's body
                rows[i] = row = self._from_object(i, row)
            elif type(row) is not list:
                raise InvalidInput(
                    f"instances[{i}] is {_kind(row)}: this model takes rows of {n} numbers, as a list "
                    f"or as an object keyed by feature name ({self._feature_hint})"
                )
            elif len(row) != n:
                raise InvalidInput(
                    f"instances[{i}] has {len(row)} values, the model expects {n} "
                    f"(features: {self._feature_hint})"
                )
            # One C-level pass per row; bools and numeric strings must not slip into float64.
            if not _NUMBER_TYPES.issuperset(map(type, row)):
                self._bad_value(i, row, next(v for v in row if type(v) not in _NUMBER_TYPES))
        try:
            matrix = np.array(rows, dtype=np.float64)
        except OverflowError:
            matrix = None  # an integer beyond float range: reported below like an infinity
        if matrix is None or not np.isfinite(matrix).all():
            self._non_finite(rows)
        return matrix

    def _from_object(self, i: int, row: dict) -> list:
        index = self.index
        if len(row) != self.n_features or any(key not in index for key in row):
            unknown = [key for key in row if key not in index]
            missing = [name for name in self.features if name not in row]
            parts = []
            if unknown:
                parts.append(f"has unknown features {self._hint(unknown)}")
            if missing:
                parts.append(
                    f"is missing {len(missing)} of the {self.n_features} features ({self._hint(missing)})"
                )
            raise InvalidInput(
                f"instances[{i}] {' and '.join(parts)}: use exactly the model's feature names as keys"
            )
        return [row[name] for name in self.features]

    def _bad_value(self, i: int, row: list, value) -> None:
        j = next(j for j, v in enumerate(row) if v is value)
        raise InvalidInput(
            f"instances[{i}][{j}] ({self.features[j]}) is {_kind(value)} ({_show(value)}): "
            "feature values must be numbers"
        )

    def _non_finite(self, rows: list) -> None:
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                try:
                    finite = math.isfinite(value)
                except OverflowError:
                    finite = False
                if not finite:
                    raise InvalidInput(
                        f"instances[{i}][{j}] ({self.features[j]}) is not a finite number: "
                        "NaN, Infinity and values beyond ±1.8e308 are not accepted"
                    )
        raise InvalidInput("the instances contain a value that is not a finite number")

    def _overflow(self, matrix, proba) -> None:
        """Refuse a batch whose finite inputs overflow inside the model, naming the row and value.

        Values near ±1.8e308 are finite but overflow once the model scales or weighs them; then
        scikit-learn refuses the input ("Input X contains infinity"), and so does the service: a
        probability that is not a number is never returned.
        """
        i = int(np.flatnonzero(~np.isfinite(proba).all(axis=1))[0])
        where = ""
        if self.kind == "tabular":
            with np.errstate(all="ignore"):
                row = np.asarray(matrix[i], dtype=np.float64)
                scaled = self._scaled(row)
            bad = np.flatnonzero(~np.isfinite(scaled)) if scaled is not None else []
            j = int(bad[0]) if len(bad) else int(np.argmax(np.abs(row)))
            where = f"[{j}] ({self.features[j]}) = {row[j]:.6g}"
        raise InvalidInput(
            f"instances[{i}]{where} is too large for this model: its arithmetic overflows (scikit-learn "
            "refuses such input too); send values within the range the model was trained on"
        )

    def _scaled(self, row):
        """The row after the pipeline's scaler, when it has one (else None)."""
        steps = getattr(self.estimator, "steps", None)
        if not steps or not hasattr(steps[0][1], "transform") or self.kind != "tabular":
            return None
        try:
            with self._fast_context(assume_finite=True):
                return steps[0][1].transform(row[None, :])[0]
        except (ValueError, TypeError, FloatingPointError):
            return None

    def warm_up(self) -> None:
        """Predict the manifest's example once: proves the model runs, and the first real request
        does not pay for lazy initialisation inside numpy/scikit-learn."""
        example = self.manifest.get("example")
        if example is not None:
            self.predict(self.to_matrix(self.check_batch({"instances": [example]})))

    # -- prediction -----------------------------------------------------------------------
    def predict(self, matrix) -> tuple[list[dict], list]:
        """Predictions (label + probability per class) and the labels alone, for metrics."""
        # Overflow shows in the output, which is checked below: numpy's warnings would only reach the
        # log as plain-text lines between the JSON ones.
        with np.errstate(all="ignore"):
            if self._direct is not None:
                proba = self._direct(matrix)
            else:
                # Finiteness was checked above, so sklearn's own (slower) check is skipped.
                with self._fast_context(assume_finite=True):
                    proba = self.estimator.predict_proba(matrix)
        if not np.isfinite(proba).all():
            self._overflow(matrix, proba)
        labels, keys = self.labels, self.keys
        chosen = [labels[k] for k in proba.argmax(axis=1).tolist()]
        return [
            {"label": label, "probabilities": dict(zip(keys, row, strict=True))}
            for label, row in zip(chosen, proba.tolist(), strict=True)
        ], chosen
