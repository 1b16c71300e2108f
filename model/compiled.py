"""Compiled inference: the fitted estimator as ONNX (skl2onnx), run by onnxruntime, beside the pickle.

At publish time `compile_onnx` converts the estimator and runs both on the held-out rows and on edge
rows (zeros, each column's extremes, every category, empty and odd strings). Only if they agree
(every label equal; probabilities and decision scores within an absolute tolerance, regression
values within a relative one) is `model.onnx` kept; the manifest's `onnx` record says which file,
its sha256 and size, the opsets, the tolerances, the worst difference measured and a small parity
sample (rows and scikit-learn's outputs) that a loader re-checks without unpickling anything. A
model that cannot be converted or disagrees gets `{"skipped": reason}`: publishing never fails
because of ONNX.

The same `Session` runs the model at serving time, so the parity check and the service share one
way of feeding rows and reading outputs.
"""

from __future__ import annotations

import numpy as np

from model.artifact import sha256_bytes
from model.evaluate import CLASSIFICATION, jsonable

ONNX_FILE = "model.onnx"
OPSETS = {"": 18, "ai.onnx.ml": 3}
TOLERANCE = {"probabilities": 1e-5, "scores": 1e-4, "value_relative": 1e-5}
_SAMPLE_ROWS = 8


class CompileError(Exception):
    """The estimator cannot be converted, or ONNX and scikit-learn disagree (the reason is the text)."""


def available() -> bool:
    """True when skl2onnx and onnxruntime are installed (the `onnx` extra)."""
    try:
        import onnxruntime  # noqa: F401
        import skl2onnx  # noqa: F401
    except ImportError:
        return False
    return True


class Session:
    """An onnxruntime session over one model, fed and read the way the service needs it."""

    def __init__(self, data: bytes, schema: dict, task: str):
        import onnxruntime as ort

        ort.set_default_logger_severity(3)  # its errors come back as exceptions; no stderr noise
        options = ort.SessionOptions()
        # One thread per worker: gunicorn already runs one worker per core, so more threads would only
        # contend; a single-row prediction is far too small to split.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        # Refused inputs come back as exceptions: onnxruntime's own log lines would only reach the
        # service's JSON log as plain text.
        options.log_severity_level = 4
        try:
            self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # a corrupt or hostile file: onnxruntime raises its own types
            raise CompileError(f"onnxruntime cannot load the model: {str(exc)[:200]}") from None
        self.schema, self.task = schema, task
        self.inputs = [(i.name, i.type) for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def feeds(self, X) -> dict:
        """Inputs for rows given as the estimator takes them (matrix, DataFrame or list of strings)."""
        if self.schema["type"] == "text":
            name, _ = self.inputs[0]
            return {name: np.asarray(X, dtype=object).reshape(-1, 1)}
        if len(self.inputs) == 1 and not hasattr(X, "columns"):
            name, kind = self.inputs[0]
            return {name: np.asarray(X, dtype=_NUMPY[kind])}
        feeds = {}
        for name, kind in self.inputs:
            column = X[name].to_numpy() if hasattr(X, "columns") else np.asarray(X)[:, self._index(name)]
            feeds[name] = column.astype(_NUMPY[kind]).reshape(-1, 1)
        return feeds

    def _index(self, name: str) -> int:
        return list(self.schema["features"]).index(name)

    def run(self, X) -> dict:
        """{"labels", "matrix" (probabilities or scores)} for a classifier, {"values"} for a regressor."""
        results = self.session.run(None, self.feeds(X))
        if self.task != CLASSIFICATION:
            return {"values": np.asarray(results[0], dtype=np.float64).reshape(-1)}
        out = {"labels": np.asarray(results[0]).reshape(-1)}
        if len(results) > 1:
            out["matrix"] = np.asarray(results[1], dtype=np.float64)
        return out


_NUMPY = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(string)": object,
          "tensor(int64)": np.int64, "tensor(bool)": np.bool_}


def _reference(estimator, X, task: str, output: dict) -> dict:
    """scikit-learn's outputs in the same form as Session.run."""
    if task != CLASSIFICATION:
        return {"values": np.asarray(estimator.predict(X), dtype=np.float64).reshape(-1)}
    out = {"labels": np.asarray(estimator.predict(X)).reshape(-1)}
    if output.get("probabilities"):
        out["matrix"] = np.asarray(estimator.predict_proba(X), dtype=np.float64)
    elif output.get("scores"):
        scores = np.asarray(estimator.decision_function(X), dtype=np.float64)
        out["matrix"] = scores.reshape(len(scores), -1)
    return out


def compare(compiled: dict, reference: dict, task: str, output: dict) -> float:
    """The worst difference between two outputs; CompileError if a label differs or one is beyond
    its tolerance."""
    if task != CLASSIFICATION:
        a, b = compiled["values"], reference["values"]
        if a.shape != b.shape:
            raise CompileError(f"ONNX gives {a.shape[0]} values for {b.shape[0]} rows")
        worst = float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)))) if len(b) else 0.0
        if not worst <= TOLERANCE["value_relative"]:
            raise CompileError(f"values differ by up to {worst:.3g} (relative; tolerance "
                               f"{TOLERANCE['value_relative']:g})")
        return worst
    labels, expected = compiled["labels"], reference["labels"]
    if labels.shape != expected.shape or (labels.astype(str) != expected.astype(str)).any():
        wrong = int(np.flatnonzero(labels.astype(str) != expected.astype(str))[0]) if labels.shape == \
            expected.shape else 0
        raise CompileError(f"ONNX predicts another label than scikit-learn (row {wrong})")
    if "matrix" not in reference:
        return 0.0
    kind = "probabilities" if output.get("probabilities") else "scores"
    a, b = compiled.get("matrix"), reference["matrix"]
    if a is not None and b.shape[1] == 1 and a.shape[1] == 2:  # binary scores: ONNX gives [-s, s]
        a = a[:, 1:]
    if a is None or a.shape != b.shape:
        raise CompileError(f"ONNX gives no {kind} of the shape scikit-learn does")
    worst = float(np.max(np.abs(a - b))) if b.size else 0.0
    if not worst <= TOLERANCE[kind]:
        raise CompileError(f"{kind} differ by up to {worst:.3g} (tolerance {TOLERANCE[kind]:g})")
    return worst


def edge_rows(X, schema: dict):
    """Rows at the edges of the data: zeros, each column's smallest and largest held-out value,
    every category; for text, empty, blank, non-ASCII and very long strings."""
    if schema["type"] == "text":
        return ["", " ", "a", "Ünïcödé ñ 日本語 😀", "?!.,;:", "word " * 400]
    if hasattr(X, "columns"):
        import pandas as pd

        rows = []
        columns = schema.get("columns") or []
        longest = max([len(c.get("values", [])) for c in columns] + [2])
        for i in range(longest):
            row = {}
            for spec in columns:
                series = X[spec["name"]]
                if spec["kind"] == "number":
                    row[spec["name"]] = float([series.min(), series.max(), 0.0][i % 3])
                elif spec["kind"] == "boolean":
                    row[spec["name"]] = bool(i % 2)
                elif spec["kind"] == "category" and spec.get("values"):
                    row[spec["name"]] = spec["values"][i % len(spec["values"])]
                else:
                    row[spec["name"]] = ["", "x", str(series.iloc[0])][i % 3]
            rows.append(row)
        return pd.DataFrame(rows, columns=list(X.columns)).astype(X.dtypes.to_dict())
    X = np.asarray(X, dtype=np.float64)
    return np.vstack([np.zeros(X.shape[1]), X.min(axis=0), X.max(axis=0)])


def _sample(X, schema: dict, n: int) -> list:
    if schema["type"] == "text":
        return list(X[:n])
    if hasattr(X, "iloc"):
        return [[jsonable(v) for v in row] for row in X.iloc[:n].itertuples(index=False)]
    return np.asarray(X[:n], dtype=np.float64).tolist()


def _concat(a, b, schema: dict):
    if schema["type"] == "text":
        return list(a) + list(b)
    if hasattr(a, "columns"):
        import pandas as pd

        return pd.concat([a, b], ignore_index=True)
    return np.vstack([np.asarray(a, dtype=np.float64), b])


def _steps(estimator):
    """Every estimator inside a pipeline or column transformer, depth first."""
    yield estimator
    for _, step in getattr(estimator, "steps", []):
        yield from _steps(step)
    for _, part, _ in getattr(estimator, "transformers_", []):
        if not isinstance(part, str):
            yield from _steps(part)


def manifest_task_is_classification(output: dict) -> bool:
    """A classifier's output record names probabilities and scores; a regressor's names a value."""
    return "probabilities" in output


def _convert(estimator, X, schema: dict, output: dict) -> bytes:
    from skl2onnx import to_onnx

    if schema["type"] == "text":
        sample = np.asarray(list(X[:1]), dtype=object).reshape(-1, 1)
    elif hasattr(X, "columns"):
        sample = X.iloc[:1]
    else:
        sample = np.asarray(X[:1], dtype=np.float32)
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    # Probabilities as one tensor (not a list of per-row maps), for classifiers that have them. A
    # classifier without them must be given some option of its own, or skl2onnx applies zipmap to it.
    options = {}
    if output.get("probabilities"):
        options[id(final)] = {"zipmap": False}
    elif manifest_task_is_classification(output):
        options[id(final)] = {"output_class_labels": False}
    for step in _steps(estimator):
        if type(step).__name__ in ("TfidfVectorizer", "CountVectorizer"):
            # onnxruntime's lower-casing needs a named locale; "C" exists on every machine (the
            # default en_US.UTF-8 often does not, and then the model cannot even be loaded).
            options[id(step)] = {"locale": "C"}
    try:
        model = to_onnx(estimator, sample, options=options or None, target_opset=dict(OPSETS))
    except Exception as exc:  # skl2onnx raises many types for "not supported"
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        # skl2onnx quotes whole weight arrays in some messages: the node's name is what helps.
        message = message.split(" with name=")[0]
        raise CompileError(f"skl2onnx cannot convert {type(final).__name__}: {message[:160]}") from None
    return model.SerializeToString()


def compile_onnx(estimator, manifest: dict, X_test) -> tuple[bytes | None, dict]:
    """(model.onnx bytes or None, the manifest's `onnx` record) for a fitted estimator."""
    if not available():
        return None, {"skipped": "skl2onnx or onnxruntime is not installed (pip install '.[onnx]')"}
    import onnxruntime
    import skl2onnx

    schema, task, output = manifest["input_schema"], manifest.get("task", CLASSIFICATION), manifest["output"]
    try:
        data = _convert(estimator, X_test, schema, output)
        session = Session(data, schema, task)
        rows = _concat(X_test, edge_rows(X_test, schema), schema)
        worst = compare(session.run(rows), _reference(estimator, rows, task, output), task, output)
    except CompileError as exc:
        return None, {"skipped": str(exc)}
    except Exception as exc:  # onnxruntime failing on a converted graph (an unsupported op, a locale)
        return None, {"skipped": f"onnxruntime cannot run the converted model: {str(exc)[:200]}"}
    head = X_test.iloc[:_SAMPLE_ROWS] if hasattr(X_test, "iloc") else X_test[:_SAMPLE_ROWS]
    sample = _concat(head, edge_rows(X_test, schema), schema)
    expected = _reference(estimator, sample, task, output)
    record = {
        "file": ONNX_FILE,
        "sha256": sha256_bytes(data),
        "size": len(data),
        "opset": dict(OPSETS),
        "converter": f"skl2onnx {skl2onnx.__version__}",
        "runtime": f"onnxruntime {onnxruntime.__version__}",
        "tolerance": dict(TOLERANCE),
        "worst_difference": worst,
        "rows_checked": len(rows),
        "parity": {"rows": _sample(sample, schema, len(sample)),
                   "expected": {k: _plain(v) for k, v in expected.items()}},
    }
    return data, record


def _plain(array: np.ndarray) -> list:
    return [jsonable(v) for v in array.tolist()] if array.ndim == 1 else array.tolist()


def check_parity(session: Session, record: dict, manifest: dict) -> float:
    """Re-run the manifest's parity sample on a loaded session; CompileError if it disagrees."""
    from model.tabular import to_input

    schema, task = manifest["input_schema"], manifest.get("task", CLASSIFICATION)
    rows = record["parity"]["rows"]
    if schema["type"] == "text":
        X = rows
    else:
        X = to_input(schema.get("columns") or [{"name": n, "kind": "number"} for n in schema["features"]],
                     rows, frame=bool(schema.get("frame")))
    expected = {k: np.asarray(v) for k, v in record["parity"]["expected"].items()}
    if "matrix" in expected:
        expected["matrix"] = expected["matrix"].astype(np.float64).reshape(len(rows), -1)
    if "values" in expected:
        expected["values"] = expected["values"].astype(np.float64)
    return compare(session.run(X), expected, task, manifest.get("output") or {})
