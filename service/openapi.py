"""The OpenAPI 3.1 description of the service, specialised to the loaded model when there is one."""

from __future__ import annotations

from service import outputs
from service.predict import PATHS, Predictor

JSON = "application/json"


def _text(description: str, media_type: str) -> dict:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


_ANY_INSTANCE = {
    "oneOf": [
        {"type": "string", "description": "text models"},
        {
            "type": "array",
            "items": {"type": ["number", "string", "boolean"]},
            "description": "tabular row, in feature order",
        },
        {
            "type": "object",
            "additionalProperties": {"type": ["number", "string", "boolean"]},
            "description": "tabular row keyed by feature name",
        },
    ]
}


def _column_schema(predictor: Predictor, spec: dict) -> dict:
    """A tabular value by its column's kind; a category's values are an enum only when the model
    refuses the others (handle_unknown="error"), else any string is accepted."""
    kind, name = spec["kind"], spec["name"]
    if kind == "number":
        return {"type": "number", "description": "a finite number"}
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "text":
        return {"type": "string", "description": "free text"}
    closed = predictor.table.closed.get(name)
    if closed is not None:
        return {"type": "string", "enum": closed, "description": "a category the model knows"}
    if predictor.estimator is None:
        # Pickle-free: no encoder to read; onnxruntime decides, and a refusal is a 400.
        description = "a category; one the model never saw may be refused (400)"
    else:
        description = "a category; unknown values are accepted"
    schema = {"type": "string", "description": description}
    if spec.get("values"):
        schema["examples"] = list(spec["values"])
    return schema


def _row_schema(predictor: Predictor) -> dict:
    table = predictor.table
    n, names = table.n_features, table.features
    if table.matrix:
        items = {"type": "array", "items": {"type": "number"}, "minItems": n, "maxItems": n,
                 "description": f"{n} finite numbers in feature order"}
        properties = {name: {"type": "number"} for name in names}
    else:
        columns = [_column_schema(predictor, spec) for spec in table.columns]
        items = {"type": "array", "prefixItems": columns, "items": False, "minItems": n, "maxItems": n,
                 "description": f"{n} values in feature order ({', '.join(names)})"}
        properties = dict(zip(names, columns, strict=True))
    return {
        "oneOf": [
            items,
            {
                "type": "object",
                "additionalProperties": False,
                "required": names,
                "properties": properties,
                "description": "the same row keyed by feature name",
            },
        ]
    }


def _instance_schema(predictor: Predictor | None, max_batch: int) -> dict:
    if predictor is None:
        instance = _ANY_INSTANCE
    elif predictor.kind == "text":
        instance = {"type": "string", "description": "the text to predict from"}
    else:
        instance = _row_schema(predictor)
    request = {
        "type": "object",
        "required": ["instances"],
        "properties": {
            "instances": {"type": "array", "minItems": 1, "maxItems": max_batch, "items": instance}
        },
    }
    if predictor is not None and predictor.manifest.get("example") is not None:
        request["example"] = {"instances": [predictor.manifest["example"]]}
    return request


def _label_schema(predictor: Predictor | None) -> dict:
    if predictor is None or not predictor.labels:
        return {"type": ["string", "integer", "number", "boolean"]}
    return {"enum": predictor.labels}


def _prediction_schema(predictor: Predictor | None) -> dict:
    """One prediction, by what the model answers (service.outputs)."""
    label = _label_schema(predictor)
    probabilities = {"type": "object", "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1},
                     "description": "the probability of each class"}
    scores = {"type": "object", "additionalProperties": {"type": "number"},
              "description": "the decision score of each class (binary: of the positive class only)"}
    shapes = {
        outputs.PROBABILITIES: {"required": ["label", "probabilities"],
                                "properties": {"label": label, "probabilities": probabilities}},
        outputs.SCORES: {"required": ["label", "scores"], "properties": {"label": label, "scores": scores}},
        outputs.LABEL: {"required": ["label"], "properties": {"label": label}},
        outputs.VALUE: {"required": ["value"],
                        "properties": {"value": {"type": "number", "description": "the predicted value"}}},
    }
    if predictor is None:
        return {"oneOf": [{"type": "object", "additionalProperties": False, **shape}
                          for shape in shapes.values()]}
    return {"type": "object", "additionalProperties": False, **shapes[predictor.output]}


def build_spec(predictor: Predictor | None, max_batch: int, max_body_bytes: int) -> dict:
    """The OpenAPI document; `predictor` (if loaded) narrows instances and labels to the model."""
    ref = "#/components/schemas/"

    def json_response(description: str, schema: str) -> dict:
        return {"description": description, "content": {JSON: {"schema": {"$ref": ref + schema}}}}

    errors = {
        "400": json_response("Invalid JSON or instances that do not fit the model's input schema", "Error"),
        "413": json_response(f"Body over {max_body_bytes} bytes or more than {max_batch} instances", "Error"),
        "415": json_response("Content-Type is not application/json", "Error"),
        "503": json_response("No verified model is loaded yet", "Error"),
    }
    predict = {
        "summary": "Predict each instance: its class (classifiers) or value (regressors)",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": ref + "PredictRequest"}}},
        },
        "responses": {
            "200": json_response("One prediction per instance, in order", "PredictResponse"),
            **errors,
        },
    }
    status = {"200": json_response("OK", "Status"), "503": json_response("Not ready", "Error")}
    degraded = ("present only while the store cannot be reached and the last verified version is "
                "served from the local cache: why")
    path = {"enum": list(PATHS), "description": "which code predicts: onnx (the version's model.onnx in "
                                                 "onnxruntime), numpy (the direct path) or sklearn"}
    serving = {
        "type": "object",
        "required": ["path", "model_format"],
        "description": "how this worker serves the version (not part of the published manifest)",
        "properties": {
            "path": path,
            "reason": {"type": "string", "description": "why the version is not served through "
                                                        "onnxruntime (absent when it is)"},
            "model_format": {"enum": ["auto", "onnx"],
                             "description": "MODEL_FORMAT: onnx means nothing is ever unpickled"},
            "runtime": {"type": "string", "description": "onnxruntime's version (path onnx)"},
            "file": {"type": "string"},
            "parity": {"type": "object", "description": "the parity re-check at load: rows run and the "
                                                        "worst difference from scikit-learn's answers"},
        },
    }
    title = "Model prediction service"
    if predictor is not None:
        title += f": {predictor.info['name']} {predictor.info['version']}"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": "1.0.0",
            "description": "Predictions from a verified scikit-learn model from the model store, run "
                           "by onnxruntime when the version has a model.onnx that passes its parity "
                           "re-check (GET /model: serving).",
        },
        "paths": {
            "/predict": {"post": {**predict, "operationId": "predict"}},
            "/invocations": {
                "post": {
                    **predict,
                    "operationId": "invocations",
                    "description": "SageMaker-style alias of POST /predict",
                }
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness: the process answers",
                    "responses": {"200": json_response("Alive", "Status")},
                }
            },
            "/ready": {
                "get": {
                    "operationId": "ready",
                    "summary": "Readiness: a verified model is loaded",
                    "responses": status,
                }
            },
            "/ping": {
                "get": {
                    "operationId": "ping",
                    "summary": "SageMaker-style alias of GET /ready",
                    "responses": status,
                }
            },
            "/model": {
                "get": {
                    "operationId": "model",
                    "summary": "The loaded model's manifest",
                    "responses": {"200": json_response("The manifest", "Manifest"), "503": errors["503"]},
                }
            },
            "/report": {
                "get": {
                    "operationId": "report",
                    "summary": "The served version's HTML model report (metrics, plots, lineage)",
                    "responses": {
                        "200": _text("HTML, self-contained (no scripts)", "text/html"),
                        "404": json_response("The served version has no report", "Error"),
                        "503": json_response("No model is loaded, or the store cannot be reached",
                                             "Error"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics of all workers",
                    "responses": {"200": _text("Prometheus text format", "text/plain")},
                }
            },
            "/": {
                "get": {
                    "operationId": "page",
                    "summary": "HTML page to try the model",
                    "responses": {
                        "200": _text("HTML", "text/html"),
                        "503": _text("HTML saying the model is not ready", "text/html"),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "PredictRequest": _instance_schema(predictor, max_batch),
                "PredictResponse": {
                    "type": "object",
                    "required": ["model", "predictions"],
                    "properties": {
                        "model": {"$ref": ref + "ModelRef"},
                        "predictions": {"type": "array", "items": _prediction_schema(predictor)},
                    },
                },
                "ModelRef": {
                    "type": "object",
                    "required": ["name", "version"],
                    "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
                },
                "Status": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {"status": {"type": "string"}, "model": {"$ref": ref + "ModelRef"},
                                   "path": path,
                                   "degraded": {"type": "string", "description": degraded}},
                },
                "Manifest": {
                    "type": "object",
                    "required": ["name", "version", "classes", "input_schema", "metrics", "serving"],
                    "description": "task (classification or regression, default classification), "
                                   "input_schema.columns (kinds number, category, text, boolean) and "
                                   "example describe what /predict takes; onnx records the version's "
                                   "compiled model (or why it has none); serving says how it is served",
                    "properties": {"serving": serving,
                                   "degraded": {"type": "string", "description": degraded}},
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                        }
                    },
                },
            }
        },
    }
