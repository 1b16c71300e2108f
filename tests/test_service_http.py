"""The service over real HTTP: gunicorn workers on 127.0.0.1, the API contract and its OpenAPI document."""

import json
import socket

import pytest
import requests
from helpers import GunicornServer
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate


@pytest.fixture(scope="module")
def spec(gunicorn_server):
    response = requests.get(gunicorn_server.url + "/openapi.json", timeout=5)
    assert response.status_code == 200
    return response.json()


def check(spec, schema_name, body):
    """Validate a real response body against a component schema of the served OpenAPI document."""
    Draft202012Validator({**spec, "$ref": f"#/components/schemas/{schema_name}"}).validate(body)


def test_openapi_document_is_valid_and_specific_to_the_model(spec, gunicorn_server):
    validate(spec)  # raises on any violation of the OpenAPI 3.1 schema
    model = requests.get(gunicorn_server.url + "/model", timeout=5).json()
    assert model["version"] in spec["info"]["title"]
    instance = spec["components"]["schemas"]["PredictRequest"]["properties"]["instances"]
    assert instance["items"]["oneOf"][0]["minItems"] == model["input_schema"]["n_features"] == 64
    assert spec["components"]["schemas"]["PredictResponse"]["properties"]["predictions"]["items"][
        "properties"
    ]["label"] == {"enum": model["classes"]}
    for path in ("/predict", "/invocations", "/health", "/ready", "/ping", "/model", "/metrics", "/"):
        assert path in spec["paths"]


def test_predict_contract(spec, gunicorn_server):
    model = requests.get(gunicorn_server.url + "/model", timeout=5).json()
    request_body = {"instances": [model["example"], model["example"]]}
    check(spec, "PredictRequest", request_body)
    response = requests.post(gunicorn_server.url + "/predict", json=request_body, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    check(spec, "PredictResponse", body)
    assert body["model"] == {"name": "digits", "version": model["version"]}
    assert len(body["predictions"]) == 2
    sagemaker = requests.post(gunicorn_server.url + "/invocations", json=request_body, timeout=5)
    assert sagemaker.json() == body


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "schema"),
    [
        ("get", "/health", {}, 200, "Status"),
        ("get", "/ready", {}, 200, "Status"),
        ("get", "/ping", {}, 200, "Status"),
        ("get", "/model", {}, 200, "Manifest"),
        ("post", "/predict", {"data": "{", "headers": {"Content-Type": "application/json"}}, 400, "Error"),
        ("post", "/predict", {"data": "{}", "headers": {"Content-Type": "text/plain"}}, 415, "Error"),
        ("post", "/predict", {"json": {"instances": [[1.0] * 64] * 1001}}, 413, "Error"),
        ("post", "/predict", {"json": {"instances": [[1.0] * 3]}}, 400, "Error"),
        ("get", "/nowhere", {}, 404, "Error"),
        ("put", "/model", {}, 405, "Error"),
    ],
)
def test_statuses_and_bodies_match_the_document(spec, gunicorn_server, method, path, kwargs, status, schema):
    response = requests.request(method, gunicorn_server.url + path, timeout=10, **kwargs)
    assert response.status_code == status, response.text
    check(spec, schema, response.json())
    documented = spec["paths"].get(path, {}).get(method, {}).get("responses", {})
    if path in spec["paths"] and status != 405:
        assert str(status) in documented


def test_huge_bodies_are_refused_without_reading_them(gunicorn_server):
    big = b'{"instances": [' + b"[" + b"0," * 63 + b"0]," * 0 + b"0" * (2 * 1024 * 1024) + b"]}"
    response = requests.post(
        gunicorn_server.url + "/predict", data=big, timeout=10, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"

    def chunks():  # no Content-Length: the limit must hold for a streamed body too
        yield b'{"instances": ['
        for _ in range(2048):
            yield b"0," * 512
        yield b"0]}"

    response = requests.post(
        gunicorn_server.url + "/predict",
        data=chunks(),
        timeout=10,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"


def test_garbage_http_does_not_break_the_workers(gunicorn_server):
    with socket.create_connection(("127.0.0.1", gunicorn_server.port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01garbage that is not HTTP\r\n\r\n")
        sock.recv(1024)
    assert requests.get(gunicorn_server.url + "/ready", timeout=5).status_code == 200


def test_json_access_log_with_request_id(gunicorn_server):
    response = requests.get(
        gunicorn_server.url + "/health", headers={"X-Request-ID": "http-test-7"}, timeout=5
    )
    assert response.headers["X-Request-ID"] == "http-test-7"
    response = requests.post(gunicorn_server.url + "/predict", json={"instances": []}, timeout=5)
    generated = response.headers["X-Request-ID"]
    lines = [json.loads(line) for line in gunicorn_server.log().splitlines() if line.startswith("{")]
    access = {line.get("request_id"): line for line in lines if line["logger"] == "service.access"}
    assert access["http-test-7"]["path"] == "/health" and access["http-test-7"]["status"] == 200
    assert access[generated]["status"] == 400 and access[generated]["duration_ms"] >= 0
    assert any(line["logger"] == "service.model" and line["message"] == "model loaded" for line in lines)
    assert "Traceback" not in gunicorn_server.log()


def test_sigterm_shuts_down_cleanly(served_store, tmp_path):
    server = GunicornServer(tmp_path / "g", {"MODEL_STORE": served_store}, workers=1)
    assert requests.get(server.url + "/ready", timeout=5).status_code == 200
    assert server.stop(timeout=25) == 0
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    assert any(line["message"] == "Shutting down: Master" for line in lines)
    assert not server.pidfile.exists()  # gunicorn removes its pidfile on a clean exit


def test_each_worker_computes_on_one_thread():
    """OpenMP and BLAS thread pools in every worker starved each other (a gradient-boosted model
    served 28 requests/s with timeouts on 2 cores, 335 with one thread each): gunicorn.conf.py sets
    one compute thread per worker, before any numerical library loads, unless the operator chose."""
    import os
    import subprocess

    from helpers import PYTHON, ROOT

    probe = ("import runpy, sys; runpy.run_path('service/gunicorn.conf.py'); import os; "
             "print(os.environ['OMP_NUM_THREADS'], os.environ['OPENBLAS_NUM_THREADS'], "
             "'numpy' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([PYTHON, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1", "False"]
    chosen = subprocess.run([PYTHON, "-c", probe], cwd=ROOT, env={**env, "OMP_NUM_THREADS": "4"},
                            capture_output=True, text=True, check=True)
    assert chosen.stdout.split()[0] == "4"
