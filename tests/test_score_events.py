"""The scoring Lambda (model/scoring/events.py) against the moto server: S3, DynamoDB and SQS.

Events are real documents: an EventBridge S3 "Object Created" event per upload, sent through an SQS
queue and received from it, then shaped as Lambda's SQS event source hands them to the function.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import uuid
from collections import Counter

import boto3
import numpy as np
import pytest

from model.scoring import events
from model.scoring import table as predictions

DAY = "2026-12-02"


@pytest.fixture(autouse=True)
def fresh_container(monkeypatch):
    """Each test starts as a cold container: no model cached."""
    monkeypatch.setattr(events, "_cached", None)


@pytest.fixture
def serializable_dynamodb(monkeypatch):
    """moto's DynamoDB made as isolated as DynamoDB is: one write at a time in the (in-process) server.

    moto 5.2 has no lock: an `ADD` is a read and a write in Python, and a cancelled TransactWriteItems
    rolls back by putting back a copy of the whole table taken when it started, erasing what other
    requests wrote meanwhile (8 racing deliveries of one file gave doubled counts with one transaction
    reported as committed). DynamoDB applies each write atomically and runs transactions serializably,
    which is what model/scoring/table.py relies on; a read-modify-write counter or a done check outside
    the transaction still loses or doubles counts under this lock, so the tests below can fail.
    """
    import threading as _threading

    from moto.dynamodb.models import DynamoDBBackend

    lock = _threading.RLock()  # re-entrant: a transaction calls put_item/update_item itself
    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)

        def locked(self, *args, _original=original, **kwargs):
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)


@pytest.fixture
def scoring(aws_env, s3_bucket, trained_digits, tmp_path, monkeypatch, serializable_dynamodb):
    """What the stack gives the function, in moto: a versioned bucket holding the model store and the
    uploads, the predictions table, a source queue and a dead-letter queue; the function's environment."""
    from model.store import ModelStore

    s3, dynamodb, sqs = boto3.client("s3"), boto3.client("dynamodb"), boto3.client("sqs")
    s3.put_bucket_versioning(Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"})
    store_uri = f"s3://{s3_bucket}/models"
    store = ModelStore(store_uri)
    artifact, manifest = trained_digits
    store.publish(artifact, manifest)
    store.move_alias("digits", "production", manifest["version"])
    suffix = uuid.uuid4().hex[:8]
    table = f"predictions-{suffix}"
    predictions.create_table(dynamodb, table)
    source = sqs.create_queue(QueueName=f"score-{suffix}")["QueueUrl"]
    dlq = sqs.create_queue(QueueName=f"score-dlq-{suffix}")["QueueUrl"]
    env = {"MODEL_STORE": store_uri, "MODEL_NAME": "digits", "PREDICTIONS_TABLE": table,
           "DEAD_LETTER_QUEUE_URL": dlq, "MODEL_CACHE_DIR": str(tmp_path / "cache"), "ID_COLUMN": "rid"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {"bucket": s3_bucket, "table": table, "source": source, "dlq": dlq, "store": store,
            "manifest": manifest, "estimator_bytes": artifact, "s3": s3, "dynamodb": dynamodb, "sqs": sqs}


def digits_rows(n: int, seed: int) -> np.ndarray:
    from model.data import load_dataset

    X = load_dataset("digits").X
    return X[np.random.default_rng(seed).choice(len(X), n, replace=False)]


def digits_csv(X: np.ndarray, ids: bool = True) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    features = [f"pixel_{i // 8}_{i % 8}" for i in range(64)]
    writer.writerow((["rid"] if ids else []) + features)
    for i, row in enumerate(X):
        writer.writerow(([f"r{i}"] if ids else []) + [repr(float(v)) for v in row])
    return out.getvalue().encode()


def upload(ctx, key: str, data: bytes) -> dict:
    """Put an object; return its EventBridge "Object Created" event as S3 sends it."""
    put = ctx["s3"].put_object(Bucket=ctx["bucket"], Key=key, Body=data)
    obj = {"key": key, "size": len(data), "etag": put["ETag"].strip('"'), "sequencer": "0062E99A88DC407460"}
    if put.get("VersionId"):
        obj["version-id"] = put["VersionId"]
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Object Created", "source": "aws.s3",
        "account": "123456789012", "time": f"{DAY}T10:00:00Z", "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{ctx['bucket']}"],
        "detail": {"version": "0", "bucket": {"name": ctx["bucket"]}, "object": obj,
                   "request-id": "57H08PA84AB1JZW0", "requester": "123456789012",
                   "source-ip-address": "192.0.2.1", "reason": "PutObject"},
    }


def through_queue(ctx, *docs) -> dict:
    """Send each event to the source queue, receive them and shape them as Lambda's SQS event."""
    sqs = ctx["sqs"]
    for doc in docs:
        sqs.send_message(QueueUrl=ctx["source"], MessageBody=json.dumps(doc))
    arn = sqs.get_queue_attributes(QueueUrl=ctx["source"],
                                   AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    records = []
    while len(records) < len(docs):
        got = sqs.receive_message(QueueUrl=ctx["source"], MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                  AttributeNames=["All"]).get("Messages", [])
        assert got, f"only {len(records)} of {len(docs)} messages came back from the queue"
        for message in got:
            sqs.delete_message(QueueUrl=ctx["source"], ReceiptHandle=message["ReceiptHandle"])
            records.append({"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
                            "body": message["Body"], "attributes": message.get("Attributes", {}),
                            "messageAttributes": {}, "md5OfBody": message["MD5OfBody"],
                            "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": "us-east-1"})
    return {"Records": records}


def invoke(ctx, *docs, aws=None) -> dict:
    return events.handler(through_queue(ctx, *docs), None, aws=aws)


def table_items(ctx) -> list[dict]:
    items, pages = [], ctx["dynamodb"].get_paginator("scan")
    for page in pages.paginate(TableName=ctx["table"], ConsistentRead=True):
        items += page["Items"]
    return sorted(items, key=lambda i: (i["PK"]["S"], i["SK"]["S"]))


def dead_letters(ctx) -> list[dict]:
    got = ctx["sqs"].receive_message(QueueUrl=ctx["dlq"], MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                     MessageAttributeNames=["All"])
    return got.get("Messages", [])


def in_process(ctx, X: np.ndarray) -> list[dict]:
    """The same version's predictions computed here, from the estimator itself (not the service path)."""
    import joblib

    estimator = joblib.load(io.BytesIO(ctx["estimator_bytes"]))
    labels = ctx["manifest"]["classes"]
    proba = estimator.predict_proba(X)
    return [{"label": labels[int(p.argmax())], "probabilities": dict(zip(map(str, labels), p.tolist(),
                                                                         strict=True))} for p in proba]


def test_a_file_is_scored_into_items_and_counters_that_match_in_process_predictions(scoring, capsys):
    X = digits_rows(40, seed=1)
    doc = upload(scoring, "score/nightly/export.csv", digits_csv(X))
    answer = invoke(scoring, doc)
    assert answer["batchItemFailures"] == []
    (result,) = answer["results"]
    version = scoring["manifest"]["version"]
    assert (result["action"], result["rows"], result["version"]) == ("scored", 40, version), result
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert logged[-1]["action"] == "scored" and logged[-1]["object"] == f"s3://{scoring['bucket']}/" \
        "score/nightly/export.csv" and logged[-1]["seconds"] >= 0

    expected = in_process(scoring, X)
    obj = doc["detail"]["object"]
    stored = predictions.by_object(scoring["dynamodb"], scoring["table"], scoring["bucket"], obj["key"],
                                   obj["version-id"])
    assert [p["row"] for p in stored["predictions"]] == list(range(1, 41))
    for i, (got, want) in enumerate(zip(stored["predictions"], expected, strict=True)):
        assert got["label"] == want["label"], i
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-9), i
        assert (got["id"], got["version"], got["model"], got["day"]) == (f"r{i}", version, "digits", DAY)
    assert stored["done"] == [{"done": version, "rows": 40, "errors": 0, "model": "digits",
                               "version": version, "scored_at": stored["done"][0]["scored_at"]}]
    counts = predictions.counts(scoring["dynamodb"], scoring["table"], "digits", DAY)
    assert counts == dict(Counter(str(p["label"]) for p in expected))
    day = predictions.by_day(scoring["dynamodb"], scoring["table"], "digits", DAY)
    where = f"{scoring['bucket']}/{obj['key']}"
    assert [(p["object"], p["row"]) for p in day] == [(where, r) for r in range(1, 41)]


def test_json_lines_are_scored_with_their_id_and_in_order(scoring):
    X = digits_rows(5, seed=2)
    features = [f"pixel_{i // 8}_{i % 8}" for i in range(64)]
    lines = [json.dumps({"rid": f"a{i}", **dict(zip(features, row.tolist(), strict=True))})
             if i % 2 else json.dumps(row.tolist()) for i, row in enumerate(X)]
    doc = upload(scoring, "score/mixed.jsonl", ("\n".join(lines) + "\n").encode())
    answer = invoke(scoring, doc)
    assert answer["batchItemFailures"] == [] and answer["results"][0]["action"] == "scored", answer
    stored = predictions.by_object(scoring["dynamodb"], scoring["table"], scoring["bucket"],
                                   "score/mixed.jsonl", doc["detail"]["object"]["version-id"])["predictions"]
    assert [p.get("id") for p in stored] == [None, "a1", None, "a3", None]
    assert [p["label"] for p in stored] == [p["label"] for p in in_process(scoring, X)]


def test_the_same_event_twice_gives_the_same_items_and_counts_once(scoring):
    X = digits_rows(30, seed=3)
    doc = upload(scoring, "score/twice.csv", digits_csv(X))
    assert invoke(scoring, doc)["results"][0]["action"] == "scored"
    first = table_items(scoring)
    counts = predictions.counts(scoring["dynamodb"], scoring["table"], "digits", DAY)
    assert sum(counts.values()) == 30
    # Delivered again, alone and twice in one batch (SQS is at-least-once).
    again = invoke(scoring, doc)
    assert [r["action"] for r in again["results"]] == ["duplicate"]
    both = invoke(scoring, doc, doc)
    assert [r["action"] for r in both["results"]] == ["duplicate", "duplicate"]
    assert table_items(scoring) == first
    assert predictions.counts(scoring["dynamodb"], scoring["table"], "digits", DAY) == counts


def test_a_redelivery_racing_the_first_rewrites_the_items_and_counts_once(scoring):
    """Deliveries that both passed the done check race to the transaction: one counts, the others
    find the marker and only rewrite the same items."""
    scored = predictions.Scored(scoring["bucket"], "score/race.csv", "v1", "digits", "V", DAY,
                                [{"label": i % 3, "probabilities": {"0": 0.5}} for i in range(50)])
    outcomes, errors = [], []

    def write():
        try:
            outcomes.append(predictions.write_scored(events.clients().dynamodb, scoring["table"], scored))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sorted(outcomes) == [False] * 7 + [True]
    counts = predictions.counts(scoring["dynamodb"], scoring["table"], "digits", DAY)
    assert counts == {"0": 17, "1": 17, "2": 16}
    assert len([i for i in table_items(scoring) if i["SK"]["S"].startswith("row#")]) == 50


def test_eight_concurrent_invocations_give_exact_counter_totals(scoring):
    files = [digits_rows(25, seed=10 + i) for i in range(8)]
    batches = [through_queue(scoring, upload(scoring, f"score/part-{i}.csv", digits_csv(X)))
               for i, X in enumerate(files)]
    answers, errors = [None] * 8, []
    start = threading.Barrier(8)

    def run(i):
        try:
            aws = events.clients()
            start.wait()
            answers[i] = events.handler(batches[i], None, aws=aws)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [a["results"][0]["action"] for a in answers] == ["scored"] * 8, answers
    expected = Counter(str(p["label"]) for X in files for p in in_process(scoring, X))
    assert predictions.counts(scoring["dynamodb"], scoring["table"], "digits", DAY) == dict(expected)
    assert sum(expected.values()) == 200
    assert len(predictions.by_day(scoring["dynamodb"], scoring["table"], "digits", DAY)) == 200


@pytest.mark.parametrize("data, reason", [
    (b"\xff\xfe\x00\x81 not text at all", "not UTF-8"),
    (b"rid,colour,size\nx,red,3\n", "the header does not fit the model"),
    (None, "row 8"),  # a CSV whose eighth data row has a value that is not a number
    (b"", "no rows"),
])
def test_a_corrupt_file_is_dead_lettered_with_the_reason_and_writes_nothing(scoring, data, reason):
    if data is None:
        text = digits_csv(digits_rows(12, seed=4)).decode().splitlines()
        cells = text[8].split(",")
        cells[5] = "n/a"
        text[8] = ",".join(cells)
        data = ("\n".join(text) + "\n").encode()
    doc = upload(scoring, "score/broken.csv", data)
    answer = invoke(scoring, doc)
    assert answer["batchItemFailures"] == []
    assert answer["results"][0]["action"] == "dead-lettered" and reason in answer["results"][0]["reason"]
    (message,) = dead_letters(scoring)
    assert json.loads(message["Body"]) == doc
    assert reason in message["MessageAttributes"]["reason"]["StringValue"]
    assert message["MessageAttributes"]["object"]["StringValue"] == f"s3://{scoring['bucket']}/score/broken.csv"
    assert table_items(scoring) == []


def test_a_missing_model_is_dead_lettered_and_writes_nothing(scoring, monkeypatch):
    monkeypatch.setenv("MODEL_NAME", "nosuchmodel")
    doc = upload(scoring, "score/orphan.csv", digits_csv(digits_rows(5, seed=5)))
    answer = invoke(scoring, doc)
    assert answer["batchItemFailures"] == []
    assert answer["results"][0]["action"] == "dead-lettered"
    (message,) = dead_letters(scoring)
    assert json.loads(message["Body"]) == doc
    assert "no usable model" in message["MessageAttributes"]["reason"]["StringValue"]
    assert "nosuchmodel" in message["MessageAttributes"]["reason"]["StringValue"]
    assert table_items(scoring) == []


@pytest.mark.parametrize("key, reason", [("elsewhere/file.csv", "is not under score/"),
                                         ("score/notes.txt", "not a .csv or .jsonl")])
def test_a_key_the_function_does_not_score_is_dead_lettered(scoring, key, reason):
    doc = upload(scoring, key, b"a,b\n1,2\n")
    answer = invoke(scoring, doc)
    assert answer["batchItemFailures"] == [] and reason in answer["results"][0]["reason"]
    (message,) = dead_letters(scoring)
    assert reason in message["MessageAttributes"]["reason"]["StringValue"]


def test_a_body_that_is_not_an_s3_event_is_dead_lettered_as_it_came(scoring):
    scoring["sqs"].send_message(QueueUrl=scoring["source"], MessageBody="not json {")
    got = scoring["sqs"].receive_message(QueueUrl=scoring["source"], WaitTimeSeconds=1)["Messages"][0]
    record = {"messageId": got["MessageId"], "body": got["Body"], "eventSource": "aws:sqs"}
    answer = events.handler({"Records": [record]}, None)
    assert answer["batchItemFailures"] == [] and answer["results"][0]["action"] == "dead-lettered"
    (message,) = dead_letters(scoring)
    assert message["Body"] == "not json {"


def test_a_transient_failure_is_a_batch_item_failure_and_a_retry_scores_it_once(scoring, monkeypatch):
    doc = upload(scoring, "score/later.csv", digits_csv(digits_rows(10, seed=6)))
    batch = through_queue(scoring, doc)
    monkeypatch.setenv("PREDICTIONS_TABLE", f"missing-{uuid.uuid4().hex[:6]}")
    answer = events.handler(batch, None)
    assert answer["batchItemFailures"] == [{"itemIdentifier": batch["Records"][0]["messageId"]}]
    assert answer["results"][0]["action"] == "failed" and "ResourceNotFound" in answer["results"][0]["reason"]
    assert dead_letters(scoring) == []
    monkeypatch.setenv("PREDICTIONS_TABLE", scoring["table"])
    retried = events.handler(batch, None)
    assert retried["batchItemFailures"] == [] and retried["results"][0]["action"] == "scored"
    assert sum(predictions.counts(scoring["dynamodb"], scoring["table"], "digits", DAY).values()) == 10


def test_the_model_is_loaded_once_and_a_moved_alias_is_picked_up_after_the_recheck(scoring, monkeypatch):
    store, manifest = scoring["store"], scoring["manifest"]
    later = dict(manifest, version=f"20990101T000000Z-{manifest['artifact']['sha256'][:8]}")
    store.publish(scoring["estimator_bytes"], later)
    loads = []
    real_load = events._load
    monkeypatch.setattr(events, "_load", lambda *a: loads.append(1) or real_load(*a))
    doc = upload(scoring, "score/alias.csv", digits_csv(digits_rows(6, seed=7)))
    assert invoke(scoring, doc)["results"][0]["version"] == manifest["version"]
    store.move_alias("digits", "production", later["version"])
    # Within the recheck window the container keeps its model (and the file is a duplicate for it).
    assert invoke(scoring, doc)["results"][0]["action"] == "duplicate"
    assert len(loads) == 1
    monkeypatch.setattr(events, "RECHECK_SECONDS", 0.0)
    result = invoke(scoring, doc)["results"][0]
    assert (result["action"], result["version"]) == ("scored", later["version"])
    assert len(loads) == 2
    # Counted once per (object version, model version): both versions' counts are in.
    assert sum(predictions.counts(scoring["dynamodb"], scoring["table"], "digits", DAY).values()) == 12


def test_an_unversioned_bucket_is_keyed_by_etag_and_a_replaced_object_is_not_scored_stale(scoring):
    s3 = scoring["s3"]
    bucket = f"plain-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    ctx = dict(scoring, bucket=bucket)
    first = upload(ctx, "score/plain.csv", digits_csv(digits_rows(4, seed=8)))
    assert "version-id" not in first["detail"]["object"]
    assert invoke(ctx, first)["results"][0]["action"] == "scored"
    etag = first["detail"]["object"]["etag"]
    assert len(predictions.by_object(scoring["dynamodb"], scoring["table"], bucket, "score/plain.csv",
                                     etag)["predictions"]) == 4
    upload(ctx, "score/plain.csv", digits_csv(digits_rows(5, seed=9)))  # replaced before this delivery
    stale = dict(first, detail=dict(first["detail"], object=dict(first["detail"]["object"], etag="0" * 32)))
    result = invoke(ctx, stale)["results"][0]
    assert result["action"] == "dead-lettered" and "gone or was replaced" in result["reason"]


def test_more_labels_than_one_transaction_holds_are_counted_in_parts_exactly_once(scoring):
    labels = [f"c{i:03d}" for i in range(230)]
    scored = predictions.Scored(scoring["bucket"], "score/wide.csv", "v1", "wide", "V", DAY,
                                [{"label": label} for label in labels])
    dynamodb, name = scoring["dynamodb"], scoring["table"]
    # A crash after the first part's transaction: the retry adds only the parts that are missing.
    first = [(label, 1) for label in labels[:predictions.COUNTERS_PER_TRANSACTION]]
    marker = predictions._marker(scored, predictions.done_sk("V", 1, 3), "t")
    assert predictions._count_transaction(dynamodb, name, marker, first, scored)
    assert predictions.write_scored(dynamodb, name, scored) is True
    assert predictions.write_scored(dynamodb, name, scored) is False
    assert predictions.counts(dynamodb, name, "wide", DAY) == {label: 1 for label in labels}
    assert predictions.is_done(dynamodb, name, scoring["bucket"], "score/wide.csv", "v1", "V")
    assert [d["done"] for d in predictions.by_object(dynamodb, name, scoring["bucket"], "score/wide.csv",
                                                     "v1")["done"]] == ["V"]


def test_unprocessed_items_are_retried_until_written():
    calls = []

    class Throttled:
        def batch_write_item(self, RequestItems):
            calls.append(RequestItems)
            (table, requests), = RequestItems.items()
            return {"UnprocessedItems": {table: requests[1:]} if len(requests) > 1 else {}}

    predictions.batch_put(Throttled(), "t", [{"PK": {"S": str(i)}} for i in range(30)], sleep=lambda s: None,
                          workers=1)
    assert [len(c["t"]) for c in calls] == [*range(25, 0, -1), 5, 4, 3, 2, 1]

    class Stuck:
        def batch_write_item(self, RequestItems):
            return {"UnprocessedItems": RequestItems}

    with pytest.raises(predictions.Unprocessed, match="unprocessed"):
        predictions.batch_put(Stuck(), "t", [{"PK": {"S": "x"}}], sleep=lambda s: None)


def test_an_unsigned_version_is_refused_when_a_verification_key_is_set(scoring, tmp_path, monkeypatch):
    from model.signing import generate_key_pair

    _, public = generate_key_pair(tmp_path / "keys")
    monkeypatch.setenv("MODEL_VERIFY_KEY", str(public))
    doc = upload(scoring, "score/unsigned.csv", digits_csv(digits_rows(3, seed=11)))
    result = invoke(scoring, doc)["results"][0]
    assert result["action"] == "dead-lettered" and "not signed" in result["reason"], result
    assert table_items(scoring) == []


def test_settings_name_what_is_missing_and_have_the_contract_defaults():
    with pytest.raises(RuntimeError, match="MODEL_STORE, PREDICTIONS_TABLE, DEAD_LETTER_QUEUE_URL"):
        events.settings({})
    config = events.settings({"MODEL_STORE": "s3://b/models", "PREDICTIONS_TABLE": "t",
                              "DEAD_LETTER_QUEUE_URL": "https://queue", "ID_COLUMN": "",
                              "MODEL_VERIFY_KEY": ""})
    assert (config.name, config.alias, config.version, config.prefix, config.id_column,
            config.verify_key) == ("digits", "production", None, "score", None, None)
    assert config.cache_dir.endswith("model-cache")


def test_the_stacks_score_role_allows_every_call_the_handler_makes(scoring, monkeypatch):
    """moto evaluates no IAM: the calls a scored file and a dead-lettered one make are recorded here
    and each checked against the stack's ScoreRole (as tests/test_stack_iam.py does for the deployer)."""
    import botocore.client
    from test_stack_iam import allows, statements

    from deploy.stack.template import load, render

    good = through_queue(scoring, upload(scoring, "score/ok.csv", digits_csv(digits_rows(5, seed=8))))
    bad = through_queue(scoring, upload(scoring, "score/bad.csv", b"not,a\nmodel,file\n"))
    calls, original = set(), botocore.client.BaseClient._make_api_call

    def record(client, operation, params):
        service = client.meta.service_model.endpoint_prefix
        if service == "s3" and operation == "GetObject" and params.get("VersionId"):
            calls.add("s3:GetObjectVersion")
        else:
            calls.add({"s3": {"ListObjectsV2": "s3:ListBucket", "HeadObject": "s3:GetObject"}}.get(
                service, {}).get(operation, f"{service}:{operation}"))
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    assert events.handler(good, None)["results"][0]["action"] == "scored"
    assert events.handler(bad, None)["results"][0]["action"] == "dead-lettered"
    monkeypatch.undo()
    # TransactWriteItems is authorised as the item actions it holds.
    needed = (calls - {"dynamodb:TransactWriteItems"}) | {"dynamodb:PutItem", "dynamodb:UpdateItem",
                                                           "dynamodb:ConditionCheckItem"}
    assert {"s3:GetObjectVersion", "dynamodb:BatchWriteItem", "sqs:SendMessage"} <= needed, calls
    role = statements(render(load()), "ScoreRole", "score-uploads")
    assert sorted(a for a in needed if not allows(role, a)) == []
