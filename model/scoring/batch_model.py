"""The model a batch run scores with: the service's Predictor over a verified version, and chunks of
rows through it.

The Predictor is built exactly as a service worker builds it (service.holder): through the version's
model.onnx in onnxruntime when it passes its parity re-check, else through the pickle. A chunk is
checked and predicted as one batch; only when the service's checks or the model refuse it is each of
its rows tried alone, so every good row is scored and every bad one gets the service's own message.
"""

from __future__ import annotations

import re

from model.scoring.batch_rows import Row

# The service's messages name a row of the request ("instances[0]..."); a file's rows have numbers.
_INDEXED = re.compile(r"instances\[0\]\[\d+\] \(([^)]*)\)")
_NAMED = re.compile(r"instances\[0\]\.([^:\s]+)")


def open_predictor(loaded, *, max_batch: int):
    """The service's Predictor of a loaded version (model.loader.LoadedModel), warmed up."""
    from service.compiled import NotCompiled, open_compiled
    from service.predict import Predictor

    compiled, reason = None, ""
    try:
        compiled = open_compiled(loaded.onnx, loaded.manifest)
    except NotCompiled as exc:
        reason = str(exc)
        if loaded.estimator is None:
            raise
    predictor = Predictor(loaded.estimator, loaded.manifest, max_batch=max_batch, compiled=compiled,
                          reason=reason)
    predictor.warm_up()
    return predictor


def _reworded(message: str) -> str:
    """A service message about a one-instance batch, about "the row" instead."""
    message = _INDEXED.sub(r"column \1", message)
    message = _NAMED.sub(r"column \1", message)
    return message.replace("instances[0]", "the row")


def _predict(predictor, instances: list) -> list[dict]:
    predictions, _ = predictor.predict(predictor.to_matrix(instances))
    return predictions


def score_chunk(predictor, rows: list[Row]) -> list[tuple[Row, dict | None]]:
    """Each row with its prediction, or with None and its `error` set."""
    from service.errors import ApiError

    good = [row for row in rows if row.error is None]
    try:
        found = dict(zip(map(id, good), _predict(predictor, [row.instance for row in good]), strict=True)) \
            if good else {}
    except ApiError:
        found = {}
        for row in good:
            try:
                found[id(row)] = _predict(predictor, [row.instance])[0]
            except ApiError as exc:
                row.error = _reworded(exc.message)
    return [(row, found.get(id(row))) for row in rows]
