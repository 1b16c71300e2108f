"""schemathesis against the running service's /openapi.json: generated requests to every operation,
valid ones and ones that break the schema, failing on any 5xx and on any answer that breaks the
service's own schema (the `1e308` row the issue found broke it: `null` probabilities).

The operations are driven through schemathesis' strategies with hypothesis directly (its pytest
plugin does not load under this pytest), a bounded, derandomized number of examples each.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def fuzz(runs, *, max_examples: int) -> None:
    """Drive each (operation, generation mode) with bounded, derandomized examples; fail on any 5xx
    or answer outside the schema."""
    for operation, mode in runs:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def answers_within_schema(case):
            case.call_and_validate(checks=CHECKS)

        answers_within_schema()


def predict_and_reads(schema, reads: tuple[str, ...]) -> list:
    """Valid and invalid bodies for /predict, valid requests for the read-only endpoints `reads`."""
    operations = [result.ok() for result in schema.get_all_operations()]
    predict = next(op for op in operations if op.path == "/predict")
    runs = [(predict, schemathesis.GenerationMode.POSITIVE), (predict, schemathesis.GenerationMode.NEGATIVE)]
    return runs + [(op, schemathesis.GenerationMode.POSITIVE) for op in operations if op.path in reads]


def test_every_operation_answers_within_its_schema(gunicorn_server):
    schema = schemathesis.openapi.from_url(gunicorn_server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/predict", "/invocations", "/ready", "/model", "/health"}
    # Invalid variants exist only where there is input: the POST bodies.
    runs = [(op, schemathesis.GenerationMode.POSITIVE) for op in operations] + [
        (op, schemathesis.GenerationMode.NEGATIVE) for op in operations if op.method.upper() == "POST"]
    fuzz(runs, max_examples=30)


@pytest.fixture(scope="module")
def kinds(tmp_path_factory):
    """Flask apps (WSGI: no server needed), started on first use, serving a mixed-type table
    classifier and a regressor."""
    from test_service_models import Served, build_models, publish_models

    uri = str(tmp_path_factory.mktemp("fuzz") / "store")
    publish_models(uri, build_models(), names=["churn", "diabetes"])
    served = Served(uri)
    yield served
    served.stop()


@pytest.mark.parametrize("name", ["churn", "diabetes"])
def test_other_kinds_of_model_answer_within_their_schema(kinds, name):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", kinds[name].application)
    fuzz(predict_and_reads(schema, ("/model", "/report", "/ready")), max_examples=25)


@pytest.fixture(scope="module")
def compiled_churn(tmp_path_factory):
    """The churn table (examples/churn_recipe.py: one-hot, handle_unknown="error") compiled to ONNX and
    served pickle-free: every category string reaches onnxruntime, which refuses unknown ones."""
    from test_service_onnx import build_churn, publish, serve

    folder = tmp_path_factory.mktemp("fuzz-onnx")
    uri = str(folder / "store")
    publish(uri, build_churn(folder).candidate)
    app = serve(uri, "churn", folder / "cache", MODEL_FORMAT="onnx")
    assert app.extensions["service"].holder.predictor.path == "onnx"
    yield app
    app.extensions["service"].holder.stop()


def test_a_compiled_model_served_pickle_free_answers_within_its_schema(compiled_churn):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", compiled_churn)
    fuzz(predict_and_reads(schema, ("/model", "/ready")), max_examples=25)
