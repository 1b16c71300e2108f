"""The ONNX path: a version's verified model.onnx, run by onnxruntime, trusted only after it has
re-answered the parity sample its manifest records.

The loader (model.loader) has already checked the file's sha256 and size; this module checks what a
hash cannot: that the runtime in this image, on this machine, answers what scikit-learn answered when
the version was published (model.compiled.check_parity). A version that has no model.onnx, whose file
onnxruntime cannot load, or that disagrees is not served through onnxruntime: `open_compiled` says
why, and the caller decides between the pickle and refusing the version (pickle-free mode).

At request time onnxruntime's own errors (an unknown category refused by a OneHotEncoder with
handle_unknown="error", say) are the client's 400, like scikit-learn's ValueError on the other path,
with the row (and, for tables, the column) found by re-running the batch's rows one by one: that
only happens on the error path, so requests that succeed pay nothing for it.
"""

from __future__ import annotations

import re

import numpy as np

from service.errors import InvalidInput
from service.wording import SHOWN_NAMES, hint, show_json

_MESSAGE_CHARS = 200
# "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running OneHotEncoder node.
# Name:'OneHotEncoder' Status Message: Unknown Category and zeros = 0."
_ORT_MESSAGE = re.compile(r"running (\w+) node\. Name:'[^']*' Status Message: (.+)", re.DOTALL)


class NotCompiled(Exception):
    """Why a version is not served through onnxruntime (the text is the reason /model shows)."""


def _refusals() -> tuple[type[BaseException], ...]:
    """The exception types onnxruntime raises from a run (all plain Exception subclasses of its
    binding module), plus what feeding a column of the wrong type raises."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    types = [value for value in vars(state).values()
             if isinstance(value, type) and issubclass(value, Exception)]
    return (*types, ValueError, TypeError)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _cut(text: str) -> str:
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 3] + "..."


def explain_runtime_error(exc: BaseException) -> str:
    """onnxruntime's message without its status-code preamble: 'OneHotEncoder: Unknown Category ...'."""
    text = str(exc).strip()
    match = _ORT_MESSAGE.search(text)
    if match:
        return _cut(f"{match.group(1)}: {_first_line(Exception(match.group(2)))}")
    return _cut(_first_line(exc))


class Compiled:
    """A loaded model.onnx that passed its parity re-check, run the way the service needs it."""

    def __init__(self, session, manifest: dict, worst: float):
        self.session = session
        self.manifest = manifest
        record = manifest["onnx"]
        self.info = {
            "file": record["file"],
            "runtime": _runtime(),
            "parity": {"rows": len(record["parity"]["rows"]), "worst_difference": worst},
        }
        classes = manifest.get("classes") or []
        # onnxruntime gives labels as int64 or strings: each is the manifest's class of that text,
        # the way the publisher's parity check compared them.
        self._labels = {str(label): label for label in classes}
        self._refused = _refusals()
        self.has_matrix = len(session.outputs) > 1
        # skl2onnx converts tables of numbers for 32-bit input: values beyond ±3.4e38 become infinite.
        self.float32 = any(kind == "tensor(float)" for _, kind in session.inputs)
        schema = manifest["input_schema"]
        self._columns = [spec for spec in schema.get("columns") or []
                         if spec["kind"] in ("category", "text")] if schema.get("frame") else []
        self._reference = None  # a row the model accepts, built on the error path when needed

    def run(self, X) -> dict:
        """Session.run's arrays for checked input; InvalidInput when onnxruntime refuses a row."""
        try:
            return self.session.run(X)
        except self._refused as exc:
            raise InvalidInput(f"the model refused the instances: {self._explain(X, exc)}") from None

    def labels(self, predicted: np.ndarray) -> list:
        """onnxruntime's labels as the manifest's classes (as the scikit-learn path returns them)."""
        lookup = self._labels
        return [lookup.get(str(value), value) for value in np.asarray(predicted).tolist()]

    # -- the error path -------------------------------------------------------------------------
    def _explain(self, X, exc: BaseException) -> str:
        """Name the first row onnxruntime refuses (and the column, for tables), with its reason."""
        if len(X) == 1:
            return self._blame(0, X, exc)
        for i in range(len(X)):
            row = _row(X, i)
            try:
                self.session.run(row)
            except self._refused as row_exc:
                return self._blame(i, row, row_exc)
        return f"onnxruntime: {explain_runtime_error(exc)}"  # each row passes alone

    def _blame(self, i: int, row, exc: BaseException) -> str:
        """'instances[i].column: <value> is not a value the model knows (...); onnxruntime: ...'"""
        culprit = self._culprit(row)
        return f"instances[{i}]{culprit}; onnxruntime: {explain_runtime_error(exc)}" if culprit else \
            f"instances[{i}]: onnxruntime: {explain_runtime_error(exc)}"

    def _culprit(self, row) -> str:
        """'.plan: "gold" is not a value the model knows (known: ...)' when putting an accepted value
        into that one string column makes the row pass, else ''. Only tables (DataFrames) have columns
        to blame."""
        if not self._columns:
            return ""
        reference = self._accepted_row()
        if reference is None:
            return ""
        for spec in self._columns:
            name = spec["name"]
            fixed = row.copy()
            fixed[name] = reference[name].to_numpy()
            try:
                self.session.run(fixed)
            except self._refused:
                continue
            value = row[name].iloc[0]
            known = spec.get("values") or []
            count = f", {len(known)} values" if len(known) > SHOWN_NAMES else ""
            shown = f" (known: {hint(known)}{count})" if known else ""
            return f".{name}: {show_json(value)} is not a value the model knows{shown}"
        return ""

    def _accepted_row(self):
        """The parity sample's first row as the model's input (it passed at load time)."""
        if self._reference is None:
            from model.tabular import to_input

            schema = self.manifest["input_schema"]
            rows = self.manifest["onnx"]["parity"]["rows"][:1]
            try:
                self._reference = to_input(schema["columns"], rows, frame=True)
            except (KeyError, TypeError, ValueError):
                return None
        return self._reference


def _row(X, i: int):
    """Row i of the model's input, as a one-row input of the same kind."""
    if hasattr(X, "iloc"):
        return X.iloc[i: i + 1].reset_index(drop=True)
    return X[i: i + 1]


def _runtime() -> str:
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__}"


def open_compiled(onnx: bytes | None, manifest: dict) -> Compiled:
    """The version's model.onnx in onnxruntime, re-checked on its parity sample; NotCompiled saying
    why the version cannot be served through it (no file, not loadable, or it disagrees)."""
    record = manifest.get("onnx")
    if onnx is None:
        if not record:
            raise NotCompiled("no model.onnx: the version was published before models were compiled")
        if record.get("skipped"):
            raise NotCompiled(f"no model.onnx: {record['skipped']}")
        raise NotCompiled("model.onnx was not loaded with the version")
    try:
        from model.compiled import CompileError, Session, check_parity
    except ImportError as exc:  # onnxruntime is pinned for the service; a trimmed environment may lack it
        raise NotCompiled(f"onnxruntime is not installed ({exc})") from None
    task = manifest.get("task") or "classification"
    try:
        session = Session(onnx, manifest["input_schema"], task)
    except CompileError as exc:
        raise NotCompiled(f"model.onnx cannot be loaded: {exc}") from None
    try:
        worst = check_parity(session, record, manifest)
    except CompileError as exc:
        raise NotCompiled(f"model.onnx fails its parity re-check: {exc}") from None
    except Exception as exc:  # a sample the runtime cannot even run, or a malformed record
        raise NotCompiled(f"model.onnx fails its parity re-check: {explain_runtime_error(exc)}") from None
    return Compiled(session, manifest, worst)
