"""Validate request instances against a model's input schema and predict, cheaply.

The request path is kept lean on purpose: the schema is digested once per loaded model, rows are
type-checked in plain Python (bools and strings are not numbers here, though numpy would accept
them), the batch becomes one estimator input, and the estimator runs once. A table of numbers only
becomes a float64 array; a table of mixed columns is checked by service.tables and becomes a
DataFrame; text is a list of strings. What a prediction holds depends on the model (service.outputs).

Which code computes the prediction (`Predictor.path`), in order of preference:
- "onnx": the version's model.onnx in onnxruntime, when it has one that passed its parity re-check
  at load (service.compiled): the default model in about 10 µs a row, a random forest in ~30 µs
  where scikit-learn takes ~13 ms;
- "numpy": the checked direct path for the default text pipeline (service.fastpath), which never
  compiles to the same answers;
- "sklearn": the estimator's own methods (a version published without model.onnx, one that does not
  compile, or one whose model.onnx failed its re-check).
In pickle-free mode (MODEL_FORMAT=onnx) there is no estimator: the path is always "onnx" and
everything else (classes, task, outputs, columns) comes from the manifest.
"""

from __future__ import annotations

import math

import numpy as np

from service import outputs
from service.compiled import Compiled
from service.errors import InvalidInput, TooLarge
from service.tables import Table
from service.wording import kind_of, show

_NUMBER_TYPES = frozenset((int, float))
_REFUSAL_CHARS = 200
_FLOAT32_MAX = float(np.finfo(np.float32).max)
ONNX, NUMPY, SKLEARN = "onnx", "numpy", "sklearn"
PATHS = (ONNX, NUMPY, SKLEARN)


class Predictor:
    """A loaded model plus everything the request path needs, computed once.

    `estimator` is the unpickled estimator (None in pickle-free mode); `compiled` the version's
    model.onnx when it passed its parity re-check (service.compiled), else None and `reason` says why.
    """

    def __init__(self, estimator, manifest: dict, *, max_batch: int, compiled: Compiled | None = None,
                 reason: str = ""):
        if estimator is None and compiled is None:
            raise ValueError("a Predictor needs an estimator or a compiled model")
        self.estimator = estimator
        self.manifest = manifest
        self.max_batch = max_batch
        self.info = {"name": manifest["name"], "version": manifest["version"]}
        self.task = manifest.get("task") or "classification"  # old manifests: classifiers
        self.labels = list(manifest.get("classes") or [])
        self.keys = [str(label) for label in self.labels]
        self.output = outputs.output_kind(self.task, estimator) if estimator is not None else \
            outputs.declared_kind(self.task, manifest.get("output"))
        if compiled is not None and self.output in (outputs.PROBABILITIES, outputs.SCORES) \
                and not compiled.has_matrix:
            # The parity re-check compares what the manifest recorded; the estimator may offer more.
            if estimator is None:
                raise ValueError(f"model.onnx gives no {self.output}, which the manifest promises")
            compiled, reason = None, f"model.onnx gives no {self.output}, which the estimator has"
        self.compiled = compiled
        self.reason = "" if compiled is not None else (reason or "no model.onnx was loaded")
        self._as_label = self._label_lookup(estimator)
        schema = manifest["input_schema"]
        self.kind = schema["type"]
        self.table: Table | None = None
        if self.kind == "tabular":
            # Without an estimator no encoder can be walked: every category is accepted here and
            # onnxruntime refuses what its encoders refuse (a 400 naming the row and column).
            self.table = Table(schema, estimator)
            self.features, self.n_features = self.table.features, self.table.n_features
        self._fast_context = None
        if estimator is not None:
            # Imported only when there is an estimator: pickle-free mode never loads scikit-learn.
            import sklearn

            self._fast_context = sklearn.config_context
        self._direct = self._compile_direct() if compiled is None else None

    def _label_lookup(self, estimator) -> dict:
        """The manifest's label for each of the estimator's classes, as predict() returns them."""
        classes = getattr(estimator, "classes_", None) if self.task == "classification" else None
        if classes is None or len(classes) != len(self.labels):
            return {}
        return dict(zip(np.asarray(classes).tolist(), self.labels, strict=True))

    def _compile_direct(self):
        """The checked numpy path for the default text pipeline (service.fastpath), or None."""
        if self.output != outputs.PROBABILITIES or self.kind != "text":
            return None
        from service.fastpath import compile_proba

        example = self.manifest.get("example")
        return compile_proba(self.estimator, [example if isinstance(example, str) else ""])

    @property
    def path(self) -> str:
        """Which code predicts: 'onnx' (onnxruntime), 'numpy' (service.fastpath) or 'sklearn'."""
        if self.compiled is not None:
            return ONNX
        return NUMPY if self._direct is not None else SKLEARN

    @property
    def serving(self) -> dict:
        """What /model shows about the path: onnxruntime's version and the parity re-check's result,
        or why the version is not served through onnxruntime."""
        if self.compiled is not None:
            return {"path": ONNX, **self.compiled.info}
        return {"path": self.path, "reason": self.reason}

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
            raise InvalidInput(f'"instances" must be a list of instances, got {kind_of(instances)}')
        if not instances:
            raise InvalidInput('"instances" is empty: send at least one instance')
        if len(instances) > self.max_batch:
            raise TooLarge(
                f'"instances" has {len(instances)} items; at most {self.max_batch} are accepted per '
                "request: split the batch"
            )
        return instances

    def to_matrix(self, instances: list):
        """The model's input for a checked batch: a float64 array or a DataFrame (tabular), or a list
        of strings (text)."""
        if self.kind == "text":
            for i, text in enumerate(instances):
                if type(text) is not str:
                    raise InvalidInput(
                        f"instances[{i}] is {kind_of(text)} ({show(text)}): this model takes text; "
                        "send each instance as a string"
                    )
            return instances
        table = self.table
        if not table.matrix:
            return table.to_input(instances)
        n = self.n_features
        rows = instances
        for i, row in enumerate(instances):
            if type(row) is not list or len(row) != n:
                if rows is instances:
                    rows = list(instances)  # never modify the caller's body
                rows[i] = row = table.as_list(i, row)
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

    def _bad_value(self, i: int, row: list, value) -> None:
        j = next(j for j, v in enumerate(row) if v is value)
        raise InvalidInput(
            f"instances[{i}][{j}] ({self.features[j]}) is {kind_of(value)} ({show(value)}): "
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

    def _overflow(self, matrix, i: int) -> None:
        """Refuse a batch whose row `i` gives an output that is not a number, naming what we can.

        Values near ±1.8e308 are finite but overflow once the model scales or weighs them; then
        scikit-learn refuses the input ("Input X contains infinity"), and so does the service: a
        probability, score or value that is not a number is never returned. For a matrix of numbers
        the message names the feature that overflowed.
        """
        if self.table is None or not self.table.matrix:
            raise InvalidInput(
                f"instances[{i}]: the model's output for this instance is not a finite number (its "
                "arithmetic overflows); send values within the range the model was trained on"
            )
        with np.errstate(all="ignore"):
            row = np.asarray(matrix[i], dtype=np.float64)
            scaled = self._scaled(row)
        bad = np.flatnonzero(~np.isfinite(scaled)) if scaled is not None else []
        j = int(bad[0]) if len(bad) else int(np.argmax(np.abs(row)))
        if self.compiled is not None and self.compiled.float32 and abs(row[j]) > _FLOAT32_MAX:
            raise InvalidInput(
                f"instances[{i}][{j}] ({self.features[j]}) = {row[j]:.6g} is too large for this model: it "
                f"computes in 32-bit floats (at most ±{_FLOAT32_MAX:.3g}) and its arithmetic overflows; "
                "send values within the range the model was trained on"
            )
        raise InvalidInput(
            f"instances[{i}][{j}] ({self.features[j]}) = {row[j]:.6g} is too large for this model: its "
            "arithmetic overflows (scikit-learn refuses such input too); send values within the range "
            "the model was trained on"
        )

    def _scaled(self, row):
        """The row after the pipeline's scaler, when it has one (else None)."""
        steps = getattr(self.estimator, "steps", None)
        if not steps or not hasattr(steps[0][1], "transform") or self._fast_context is None:
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
        """Predictions (shaped by service.outputs) and the labels to count in metrics: the
        predicted classes, or outputs.VALUE_LABEL per instance for a regressor."""
        # Overflow shows in the output, which is checked below: numpy's warnings would only reach the
        # log as plain-text lines between the JSON ones.
        with np.errstate(all="ignore"):
            if self.compiled is not None:
                return self._predict_compiled(matrix)
            if self.output == outputs.PROBABILITIES:
                direct = self._direct
                proba = direct(matrix) if direct is not None else self._call("predict_proba", matrix)
                self._check_finite(matrix, proba)
                return outputs.with_probabilities(proba, self.labels, self.keys)
            if self.output == outputs.VALUE:
                values = outputs.one_value_per_row(self._call("predict", matrix))
                self._check_finite(matrix, values)
                return outputs.with_values(values)
            chosen = self._chosen(self._call("predict", matrix))
            if self.output == outputs.LABEL:
                return outputs.with_labels(chosen)
            scores = np.asarray(self._call("decision_function", matrix), dtype=np.float64)
            self._check_finite(matrix, scores)
            return outputs.with_scores(chosen, scores, self.keys)

    def _predict_compiled(self, matrix) -> tuple[list[dict], list]:
        """The same predictions from onnxruntime's arrays (service.compiled), checked the same way."""
        out = self.compiled.run(matrix)
        if self.output == outputs.VALUE:
            values = out["values"]
            if len(values) != len(matrix):
                raise ValueError(f"model.onnx predicts {len(values)} values for {len(matrix)} instances; "
                                 "the service serves one value per instance")
            self._check_finite(matrix, values)
            return outputs.with_values(values)
        if self.output == outputs.PROBABILITIES:
            proba = out["matrix"]
            self._check_finite(matrix, proba)
            return outputs.with_probabilities(proba, self.labels, self.keys)
        chosen = self.compiled.labels(out["labels"])
        if self.output == outputs.LABEL:
            return outputs.with_labels(chosen)
        scores = out["matrix"]
        if len(self.keys) == 2 and scores.shape[1] <= 2:
            # Binary: scikit-learn has one score, for the positive class; onnxruntime has it alone
            # or as the last of [-s, s].
            scores = scores[:, -1]
        self._check_finite(matrix, scores)
        return outputs.with_scores(chosen, scores, self.keys)

    def _check_finite(self, matrix, output) -> None:
        row = outputs.first_non_finite(output)
        if row is not None:
            self._overflow(matrix, row)

    def _chosen(self, predicted) -> list:
        lookup = self._as_label
        return [lookup.get(value, value) for value in np.asarray(predicted).tolist()]

    def _call(self, method: str, matrix):
        """The estimator's own method on checked input; what it refuses is the client's 400."""
        try:
            # Finiteness was checked already, so scikit-learn's own (slower) check is skipped.
            with self._fast_context(assume_finite=True):
                return getattr(self.estimator, method)(matrix)
        except (ValueError, TypeError) as exc:
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            message = lines[0] if len(lines[0]) <= _REFUSAL_CHARS else lines[0][: _REFUSAL_CHARS - 3] + "..."
            raise InvalidInput(f"the model refused the instances: {message}") from None
