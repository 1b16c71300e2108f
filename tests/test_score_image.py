"""The Lambda image (docker/Dockerfile's `score` target) and the Runtime API stand-in it is run against.

Fast tests run the real runtime interface client (`python -m awslambdaric`, from the `lambda` extra)
as a subprocess against standin/lambda_runtime.py with tiny handlers: an answer comes back as the
invocation's response, an exception as its error, a handler that cannot be imported as an init error.
The slow test builds the `score` image on the session's debootstrapped base, runs it under podman
(as Lambda does: read-only root filesystem, a user that is not the image's) against that stand-in
and moto, invokes it with an SQS batch holding an EventBridge "Object Created" event for an uploaded
CSV, checks the predictions table, and prints the cold start.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from helpers import PYTHON

from standin.lambda_runtime import LambdaRuntime

HANDLERS = '''
import os

def answer(event, context):
    return {"sum": sum(event["numbers"]), "request_id": context.aws_request_id,
            "arn": context.invoked_function_arn, "time_left": context.get_remaining_time_in_millis() > 0,
            "trace": os.environ.get("_X_AMZN_TRACE_ID", "")}

def fails(event, context):
    raise ValueError("no numbers in " + repr(event))
'''


def start_client(folder, runtime: LambdaRuntime, handler: str) -> subprocess.Popen:
    """`python -m awslambdaric HANDLER` from the venv, with `folder` (holding handlers.py) as cwd."""
    (folder / "handlers.py").write_text(textwrap.dedent(HANDLERS))
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_LAMBDA")}
    env["AWS_LAMBDA_RUNTIME_API"] = runtime.address
    return subprocess.Popen([PYTHON, "-m", "awslambdaric", handler], cwd=folder, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.terminate()
    out, _ = process.communicate(timeout=30)
    return out


def test_the_runtime_client_answers_invocations_through_the_stand_in(tmp_path):
    with LambdaRuntime(function_arn="arn:aws:lambda:us-east-1:123456789012:function:t") as runtime:
        client = start_client(tmp_path, runtime, "handlers.answer")
        try:
            first = runtime.invoke({"numbers": [1, 2, 3]}, timeout=60)
            second = runtime.invoke({"numbers": [40, 2]}, timeout=30)
        finally:
            log = stop(client)
    assert first[0] is True, (first, log)
    assert first[1]["sum"] == 6 and first[1]["arn"].endswith(":function:t") and first[1]["time_left"]
    assert first[1]["trace"].startswith("Root=1-")
    assert second == (True, {**second[1], "sum": 42})
    # Each answer belongs to its own invocation: the request id the handler saw is the one queued.
    ids = [item.request_id for item in runtime.invocations.values()]
    assert [first[1]["request_id"], second[1]["request_id"]] == ids
    assert runtime.first_next_at is not None and runtime.next_calls >= 2
    assert runtime.unknown == [] and runtime.init_error is None


def test_an_exception_is_the_invocations_error_and_the_runtime_keeps_serving(tmp_path):
    with LambdaRuntime() as runtime:
        client = start_client(tmp_path, runtime, "handlers.fails")
        try:
            ok, error = runtime.invoke({"numbers": None}, timeout=60)
            again, _ = runtime.invoke({}, timeout=30)
        finally:
            log = stop(client)
    assert ok is False and again is False, log
    assert error["errorType"] == "ValueError" and "no numbers in" in error["errorMessage"]
    assert any("handlers.py" in line for line in error["stackTrace"])
    item = next(iter(runtime.invocations.values()))
    assert item.error_type == "ValueError"
    assert item.xray_cause["exceptions"][0]["type"] == "ValueError"  # the X-Ray header the client sends
    assert runtime.init_error is None and runtime.unknown == []


def test_a_handler_that_cannot_be_imported_is_an_init_error(tmp_path):
    with LambdaRuntime() as runtime:
        client = start_client(tmp_path, runtime, "no_such_module.handler")
        try:
            ok, error = runtime.invoke({}, timeout=60)
            client.wait(timeout=30)
        finally:
            log = stop(client)
    assert ok is False and error["errorType"] == "Runtime.ImportModuleError", (error, log)
    assert client.returncode == 1 and runtime.first_next_at is None


def test_an_invocation_nobody_fetches_times_out():
    with LambdaRuntime() as runtime, pytest.raises(TimeoutError, match="never fetched"):
        runtime.invoke({"x": 1}, timeout=0.3)


# ---- the image, end to end ------------------------------------------------------------------------
ROWS = 24


def digits_csv(feature_names: list[str], start: int, rows: int = ROWS) -> tuple[bytes, list, list[str]]:
    """A CSV of digits rows (an `id` column, then the model's features); (bytes, the rows, their ids)."""
    from sklearn.datasets import load_digits

    data = load_digits().data[start:start + rows]
    ids = [f"scan-{start + i:05d}" for i in range(len(data))]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", *feature_names])
    for row_id, row in zip(ids, data, strict=True):
        writer.writerow([row_id, *(f"{value:g}" for value in row)])
    return out.getvalue().encode(), data, ids


def uploads_bucket_delivering_to(s3, events, sqs, prefix: str) -> tuple[str, str, str]:
    """A versioned bucket whose uploads under `prefix` reach an SQS queue through EventBridge, as the
    stack wires them (S3 EventBridge notifications, a rule on Object Created, the queue as target).
    Returns (bucket, queue url, queue arn)."""
    bucket = f"uploads-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(Bucket=bucket,
                                             NotificationConfiguration={"EventBridgeConfiguration": {}})
    url = sqs.create_queue(QueueName=f"{bucket}-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = f"{bucket}-created"
    events.put_rule(Name=rule, EventPattern=json.dumps({
        "source": ["aws.s3"], "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"prefix": f"{prefix}/"}]}}}))
    events.put_targets(Rule=rule, Targets=[{"Id": "score-queue", "Arn": arn}])
    return bucket, url, arn


def sqs_batch(sqs, queue_url: str, queue_arn: str) -> dict:
    """The next message on the queue as the SQS event source mapping hands it to the function."""
    received = sqs.receive_message(QueueUrl=queue_url, AttributeNames=["All"], MaxNumberOfMessages=1,
                                   WaitTimeSeconds=5).get("Messages", [])
    assert len(received) == 1, received
    message = received[0]
    body = json.loads(message["Body"])
    assert body["detail-type"] == "Object Created" and body["source"] == "aws.s3", body
    # moto writes the object's etag as "eTag"; S3's EventBridge documents spell it "etag".
    obj = body["detail"]["object"]
    if "eTag" in obj:
        obj["etag"] = obj.pop("eTag")
    return {"Records": [{
        "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
        "body": json.dumps(body), "attributes": message.get("Attributes", {}), "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1"}]}


def container_log(tool: str, name: str) -> str:
    result = subprocess.run([tool, "logs", name], capture_output=True, text=True, timeout=60)
    return (result.stdout + result.stderr)[-6000:]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_score_image_scores_an_uploaded_file_under_the_lambda_runtime(
        podman_env, aws_env, s3_bucket, trained_digits):
    import boto3
    import joblib

    from deploy.image import build, container_tool, host_pip_settings
    from model.scoring.table import by_object, counts, create_table
    from model.store import ModelStore

    tool = container_tool("podman")
    started = time.monotonic()
    image = build(tool, tag="score-test", name="localhost/model-score", base_image=podman_env["base"],
                  pip=host_pip_settings(), network="host", isolation="chroot", target="score")
    built_in = time.monotonic() - started
    inspected = json.loads(subprocess.run([tool, "image", "inspect", image], capture_output=True, text=True,
                                          check=True).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == "10001"
    assert config["Entrypoint"] == ["python", "-m", "awslambdaric"]
    assert config["Cmd"] == ["model.scoring.events.handler"]
    assert "MODEL_CACHE_DIR=/tmp/model-cache" in config["Env"] and not config.get("ExposedPorts")
    size_mb = inspected["Size"] / 1e6
    # Lambda's filesystem is read-only: the bytecode must be in the image, or every cold start compiles.
    compiled = subprocess.run(
        [tool, "run", "--rm", "--read-only", "--entrypoint", "python", image, "-c",
         "import importlib.util as u, os; s = u.find_spec('model.scoring.events').origin; "
         "print(os.path.exists(u.cache_from_source(s)))"], capture_output=True, text=True, timeout=120)
    assert compiled.stdout.strip() == "True", compiled.stdout + compiled.stderr

    # The model, published to an s3:// store in moto, and what the function writes to.
    artifact, manifest = trained_digits
    store_uri = f"s3://{s3_bucket}/models"
    store = ModelStore(store_uri)
    store.publish(artifact, manifest)
    store.move_alias("digits", "production", manifest["version"])
    s3, sqs, dynamodb = boto3.client("s3"), boto3.client("sqs"), boto3.client("dynamodb")
    table = f"predictions-{uuid.uuid4().hex[:8]}"
    create_table(dynamodb, table)
    dead_letters = sqs.create_queue(QueueName=f"{table}-dead-letters")["QueueUrl"]
    bucket, queue_url, queue_arn = uploads_bucket_delivering_to(s3, boto3.client("events"), sqs, "score")

    features = manifest["input_schema"]["features"]
    body, rows, ids = digits_csv(features, start=100)
    version_id = s3.put_object(Bucket=bucket, Key="score/2026/12/scans.csv", Body=body)["VersionId"]
    first_batch = sqs_batch(sqs, queue_url, queue_arn)

    name = f"score-{uuid.uuid4().hex[:8]}"
    env = {"AWS_ENDPOINT_URL": aws_env["AWS_ENDPOINT_URL"], "AWS_REGION": "us-east-1",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
           "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
           "AWS_SESSION_TOKEN": os.environ["AWS_SESSION_TOKEN"],
           "AWS_LAMBDA_FUNCTION_NAME": name, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
           "MODEL_STORE": store_uri, "MODEL_NAME": "digits", "PREDICTIONS_TABLE": table,
           "SCORE_PREFIX": "score", "ID_COLUMN": "id", "DEAD_LETTER_QUEUE_URL": dead_letters}
    with LambdaRuntime(function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}") as runtime:
        env["AWS_LAMBDA_RUNTIME_API"] = runtime.address
        # As Lambda runs it: a user that is not the image's, a read-only root (podman mounts /tmp as tmpfs).
        cmd = [tool, "run", "-d", "--name", name, "--network", "host", "--read-only", "--user", "993:990"]
        for key, value in sorted(env.items()):
            cmd += ["-e", f"{key}={value}"]
        t0 = time.monotonic()
        subprocess.run([*cmd, image], check=True, capture_output=True, text=True, timeout=120)
        try:
            ok, answer = runtime.invoke(first_batch, timeout=300)
            first = next(iter(runtime.invocations.values()))
            # The same message delivered again (SQS is at-least-once): same items, counted once.
            warm_started = time.monotonic()
            again_ok, again = runtime.invoke(first_batch, timeout=120)
            warm = time.monotonic() - warm_started
            # A file the model cannot take is a permanent failure: dead-lettered, not retried.
            s3.put_object(Bucket=bucket, Key="score/2026/12/broken.csv", Body=b"id,colour\n1,red\n")
            broken_ok, broken = runtime.invoke(sqs_batch(sqs, queue_url, queue_arn), timeout=120)
        finally:
            log = container_log(tool, name)
            subprocess.run([tool, "rm", "-f", "-t", "5", name], capture_output=True, timeout=120)
    init = runtime.first_next_at - t0
    cold = first.answered_at - t0
    print(f"\nscore image: built in {built_in:.0f} s, {size_mb:.0f} MB; cold start {cold:.2f} s "
          f"(container start to the runtime's first /next: {init:.2f} s; first invocation, model load "
          f"included: {first.answered_at - first.delivered_at:.2f} s); warm invocation {warm:.2f} s "
          f"(the seed's cold start: 48.7 s)", file=sys.stderr)

    assert ok is True and answer["batchItemFailures"] == [], (answer, log)
    stored = by_object(dynamodb, table, bucket, "score/2026/12/scans.csv", version_id)
    predictions = stored["predictions"]
    expected = joblib.load(io.BytesIO(artifact)).predict(rows)
    assert len(predictions) == ROWS and [p["id"] for p in predictions] == ids, (predictions[:2], log)
    assert [str(p["label"]) for p in predictions] == [str(label) for label in expected]
    assert {p["version"] for p in predictions} == {manifest["version"]}
    assert len(stored["done"]) == 1 and stored["done"][0]["rows"] == ROWS

    assert again_ok is True and again["batchItemFailures"] == [], (again, log)
    day = predictions[0]["day"]
    counted = counts(dynamodb, table, "digits", day)
    assert sum(counted.values()) == ROWS, counted  # the re-delivery counted nothing
    again_stored = by_object(dynamodb, table, bucket, "score/2026/12/scans.csv", version_id)
    assert again_stored["predictions"] == predictions and again_stored["done"] == stored["done"]

    assert broken_ok is True and broken["batchItemFailures"] == [], (broken, log)
    parked = sqs.receive_message(QueueUrl=dead_letters, MessageAttributeNames=["All"],
                                 WaitTimeSeconds=2).get("Messages", [])
    assert len(parked) == 1 and "reason" in parked[0]["MessageAttributes"], parked
    assert "broken.csv" in parked[0]["Body"]
    assert runtime.init_error is None and runtime.unknown == []
