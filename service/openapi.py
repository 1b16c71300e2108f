"""The OpenAPI 3.1 description of the service, specialised to the loaded model when there is one."""

from __future__ import annotations

from service.predict import Predictor

JSON = "application/json"


def _text(description: str, media_type: str) -> dict:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


def _instance_schema(predictor: Predictor | None, max_batch: int) -> dict:
    if predictor is None:
        instance = {
            "oneOf": [
                {"type": "string", "description": "text models"},
                {
                    "type": "array",
                    "items": {"type": "number"},
                    "description": "tabular row, in feature order",
                },
                {
                    "type": "object",
                    "additionalProperties": {"type": "number"},
                    "description": "tabular row keyed by feature name",
                },
            ]
        }
    elif predictor.kind == "text":
        instance = {"type": "string", "description": "the text to classify"}
    else:
        n, names = predictor.n_features, predictor.features
        instance = {
            "oneOf": [
                {
                    "type": "array",
                    "items": {"type": "number"},
                    "minItems": n,
                    "maxItems": n,
                    "description": f"{n} finite numbers in feature order",
                },
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": names,
                    "properties": {name: {"type": "number"} for name in names},
                    "description": "the same row keyed by feature name",
                },
            ]
        }
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
    if predictor is None:
        return {"type": ["string", "integer", "number", "boolean"]}
    return {"enum": predictor.labels}


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
        "summary": "Predict the class of each instance",
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
    title = "Model prediction service"
    if predictor is not None:
        title += f": {predictor.info['name']} {predictor.info['version']}"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": "1.0.0",
            "description": "Predictions from a verified scikit-learn model from the model store.",
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
                        "predictions": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["label", "probabilities"],
                                "properties": {
                                    "label": _label_schema(predictor),
                                    "probabilities": {
                                        "type": "object",
                                        "additionalProperties": {
                                            "type": "number",
                                            "minimum": 0,
                                            "maximum": 1,
                                        },
                                    },
                                },
                            },
                        },
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
                                   "degraded": {"type": "string", "description": degraded}},
                },
                "Manifest": {
                    "type": "object",
                    "required": ["name", "version", "classes", "input_schema", "metrics"],
                    "properties": {"degraded": {"type": "string", "description": degraded}},
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
