"""What the try-it page (templates/index.html) shows about the served model, by task and input."""

from __future__ import annotations

import json

from service import outputs
from service.predict import Predictor

# (manifest metric, label on the page, element id), by task; absent metrics are left out.
_METRICS = {
    "classification": (("accuracy", "Accuracy", "metric-accuracy"),
                       ("macro_f1", "Macro F1", "metric-macro-f1")),
    "regression": (("r2", "R²", "metric-r2"), ("mae", "MAE", "metric-mae"),
                   ("rmse", "RMSE", "metric-rmse")),
}
_OUTPUTS = {
    outputs.PROBABILITIES: "the class and each class's probability",
    outputs.SCORES: "the class and its decision scores",
    outputs.LABEL: "the class",
    outputs.VALUE: "a number",
}
_SHOWN_COLUMNS = 8
# How each prediction path is named on the page (service.predict.Predictor.path).
_PATHS = {
    "onnx": "onnxruntime (model.onnx)",
    "numpy": "numpy (direct path)",
    "sklearn": "scikit-learn",
}


def _metrics(predictor: Predictor) -> list[tuple[str, str, str]]:
    metrics = predictor.manifest.get("metrics") or {}
    shown = []
    for key, label, element in _METRICS.get(predictor.task, ()):
        value = metrics.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            shown.append((label, f"{value:.4f}", element))
    return shown


def _input(predictor: Predictor) -> str:
    if predictor.kind == "text":
        return "text"
    table = predictor.table
    if table.numbers:
        return f"{table.n_features} numbers"
    columns = [f"{spec['name']} ({spec['kind']})" for spec in table.columns]
    if len(columns) > _SHOWN_COLUMNS:
        columns = [*columns[: _SHOWN_COLUMNS - 1], "...", columns[-1]]
    return f"{table.n_features} columns: {', '.join(columns)}"


def _prompt(predictor: Predictor) -> str:
    if predictor.kind == "text":
        return "Text to predict from" if predictor.task == "regression" else "Text to classify"
    table = predictor.table
    if table.matrix:
        return (f"One row as a JSON list of {table.n_features} numbers (or an object keyed by feature "
                "name)")
    return (f"One row as a JSON list of {table.n_features} {table.what} in feature order "
            f"({table.feature_hint}), or an object keyed by feature name")


def page_context(predictor: Predictor, *, has_report: bool) -> dict:
    """The template's variables for a loaded model."""
    manifest = predictor.manifest
    example = manifest.get("example")
    if predictor.kind == "tabular":
        example = json.dumps(example) if example is not None else ""
    return {
        "model": predictor,
        "manifest": manifest,
        "metrics": _metrics(predictor),
        "input": _input(predictor),
        "answers": _OUTPUTS[predictor.output],
        "prompt": _prompt(predictor),
        "example": example or "",
        "has_report": has_report,
        "serving": _PATHS.get(predictor.path, predictor.path),
        "serving_reason": predictor.reason,
    }
