"""A worker whose store is unreachable at start stays alive, is not ready, and recovers by itself."""

import time

import boto3
import requests
from helpers import GunicornServer


def test_unreachable_store_then_recovery(aws_env, tmp_path, trained_digits):
    from model.store import ModelStore

    bucket = "late-bucket-for-service"
    uri = f"s3://{bucket}/models"
    server = GunicornServer(
        tmp_path / "g",
        {
            **aws_env,
            "MODEL_STORE": uri,
            "MODEL_LOAD_WAIT": "0.5",
            "MODEL_RETRY_INITIAL": "0.1",
            "MODEL_RETRY_MAX": "0.5",
        },
        workers=1,
        wait_ready=False,
    )
    try:
        url = server.url
        assert requests.get(url + "/health", timeout=5).json() == {"status": "alive"}
        for path in ("/ready", "/ping"):
            # Until the first attempt has failed the message says "not loaded yet"; after it, it
            # names the missing bucket. Every answer meanwhile is 503 not_ready.
            deadline = time.monotonic() + 15
            while True:
                response = requests.get(url + path, timeout=5)
                assert response.status_code == 503
                assert response.json()["error"]["code"] == "not_ready"
                if bucket in response.json()["error"]["message"]:
                    break
                assert time.monotonic() < deadline, response.json()
                time.sleep(0.1)
        response = requests.post(url + "/predict", json={"instances": [[0] * 64]}, timeout=5)
        assert response.status_code == 503 and response.json()["error"]["code"] == "not_ready"

        # The store appears: the worker's background retry loads and verifies the model.
        boto3.client("s3").create_bucket(Bucket=bucket)
        artifact, manifest = trained_digits
        store = ModelStore(uri)
        store.publish(artifact, manifest)
        store.move_alias("digits", "production", manifest["version"])
        deadline = time.monotonic() + 20
        while requests.get(url + "/ready", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, server.log()[-2000:]
            time.sleep(0.1)
        response = requests.post(url + "/predict", json={"instances": [manifest["example"]]}, timeout=5)
        assert response.status_code == 200
        assert response.json()["model"]["version"] == manifest["version"]
        assert "model load failed; retrying" in server.log()
        assert "Traceback" not in server.log()
    finally:
        assert server.stop() == 0
