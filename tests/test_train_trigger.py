"""The train-trigger Lambda (deploy/training/trigger.py) called in-process with real event documents
against the moto server: what it asks ECS to run, its DynamoDB lock, its S3 debounce, its refusals.

moto runs no containers: RunTask records a task (group, startedBy, overrides, the ENI in the subnet and
security group it was given), stop_task marks it STOPPED. What moto does not keep (assignPublicIp) is
read from the RunTask request itself, captured with a botocore event hook.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path

import boto3
import pytest

from deploy.training import trigger

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT, REGION = "123456789012", "us-east-1"
DIGEST = "sha256:" + hashlib.sha256(b"a training image").hexdigest()
PLAN_COMMAND = ["python", "-m", "model", "train", "--plan", "model/training.toml"]


@pytest.fixture
def world(aws_env, monkeypatch):
    """What the function's stack gives it, made in moto: a VPC, a cluster, the training family (from
    ecs/train-task-def.json), the runs table and the store bucket; the function's environment set."""
    suffix = uuid.uuid4().hex[:8]
    ec2, ecs = boto3.client("ec2"), boto3.client("ecs")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    # moto builds a Fargate task's ENI DNS name only in a VPC with DNS hostnames (as the stack's has).
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.0.0/20")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"train-{suffix}", Description="train", VpcId=vpc)["GroupId"]
    cluster, family = f"mlops-{suffix}", f"mlops-{suffix}-train"
    table, bucket = f"runs-{suffix}", f"store-{suffix}"
    ecs.create_cluster(clusterName=cluster)
    definition = json.loads((ROOT / "ecs" / "train-task-def.json").read_text())
    definition["family"] = family
    definition["taskRoleArn"] = f"arn:aws:iam::{ACCOUNT}:role/train-task"
    definition["executionRoleArn"] = f"arn:aws:iam::{ACCOUNT}:role/train-execution"
    container = definition["containerDefinitions"][0]
    container["image"] = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlops:train-old"
    container["logConfiguration"]["options"].update({"awslogs-group": "/mlops", "awslogs-region": REGION})
    container["memory"] = 4096  # moto's RunTask sums container memory (AWS uses the task's for Fargate)
    first = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    boto3.client("dynamodb").create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "model", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "model", "AttributeType": "S"}])
    boto3.client("s3").create_bucket(Bucket=bucket)
    env = {"CLUSTER": cluster, "TASK_FAMILY": family, "SUBNETS": subnet, "SECURITY_GROUPS": group,
           "RUNS_TABLE": table, "MODEL_NAME": "digits", "REPOSITORY_NAME": "mlops", "DATA_BUCKET": bucket}
    for name in ("CONTAINER_NAME", "ASSIGN_PUBLIC_IP", "IMAGE_TAG_PREFIX", "DATA_PREFIX", "PLAN", "PROMOTE",
                 "LEASE_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    aws = trigger.clients()
    requests = []  # every RunTask request the handler makes, as sent
    aws.ecs.meta.events.register("provide-client-params.ecs.RunTask",
                                 lambda params, **_: requests.append(json.loads(json.dumps(params))))
    return type("World", (), dict(ecs=ecs, ec2=ec2, s3=boto3.client("s3"), dynamodb=boto3.client("dynamodb"),
                                  aws=aws, requests=requests, cluster=cluster, family=family, first=first,
                                  table=table, bucket=bucket, subnet=subnet, group=group))


def run(world, event):
    """The handler's answer to one event (the clients with the RunTask hook)."""
    return trigger.handler(event, None, aws=world.aws)


def tasks(world) -> list[dict]:
    """Every task moto holds in the world's cluster, running or stopped."""
    arns = world.ecs.list_tasks(cluster=world.cluster, desiredStatus="RUNNING")["taskArns"]
    arns += world.ecs.list_tasks(cluster=world.cluster, desiredStatus="STOPPED")["taskArns"]
    if not arns:
        return []
    return world.ecs.describe_tasks(cluster=world.cluster, tasks=arns)["tasks"]


def lock(world, model="digits") -> dict | None:
    """The model's lock item, plain values."""
    item = world.dynamodb.get_item(TableName=world.table, Key={"model": {"S": model}},
                                   ConsistentRead=True).get("Item")
    return {name: next(iter(value.values())) for name, value in item.items()} if item else None


def train_override(task: dict) -> dict:
    """The task's override of the `train` container: {"command": [...], "environment": {name: value}}."""
    (override,) = task["overrides"]["containerOverrides"]
    assert override["name"] == "train"
    environment = {pair["name"]: pair["value"] for pair in override["environment"]}
    return {"command": override["command"], "environment": environment}


def logged(capsys) -> list[dict]:
    """The JSON lines the handler printed since the last call."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


# ---- real event documents (the shapes AWS documents, with this world's names) ------------------
def push_event(tag="train-abc123", repository="mlops", digest=DIGEST, **detail) -> dict:
    """EventBridge "ECR Image Action" for a push."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "ECR Image Action", "source": "aws.ecr",
            "account": ACCOUNT, "time": "2026-12-02T10:00:00Z", "region": REGION, "resources": [],
            "detail": {"result": "SUCCESS", "repository-name": repository, "image-digest": digest,
                       "action-type": "PUSH", "image-tag": tag, **detail}}


def upload_event(bucket: str, key: str) -> dict:
    """EventBridge S3 "Object Created"."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Object Created", "source": "aws.s3",
            "account": ACCOUNT, "time": "2026-12-02T10:00:00Z", "region": REGION,
            "resources": [f"arn:aws:s3:::{bucket}"],
            "detail": {"version": "0", "bucket": {"name": bucket},
                       "object": {"key": key, "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184",
                                  "sequencer": "00617F08299329D189"},
                       "request-id": "N4N7GDK58NMKJ12R", "requester": ACCOUNT, "source-ip-address": "1.2.3.4",
                       "reason": "PutObject"}}


def sqs(*bodies) -> dict:
    """An SQS batch as Lambda's event source mapping delivers it; bodies are events (or raw text)."""
    return {"Records": [{
        "messageId": str(uuid.uuid4()), "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764669600000",
                       "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                       "ApproximateFirstReceiveTimestamp": "1764669660000"},
        "messageAttributes": {}, "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3", "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:mlops-train-uploads", "awsRegion": REGION,
    } for body in bodies]}


def schedule_event() -> dict:
    """EventBridge "Scheduled Event" from a cron rule."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": ACCOUNT, "time": "2026-12-02T03:00:00Z", "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/mlops-train-weekly"], "detail": {}}


def stopped_event(world, task_arn: str, **detail) -> dict:
    """EventBridge "ECS Task State Change" for a task, its detail from moto's description of it."""
    (task,) = world.ecs.describe_tasks(cluster=world.cluster, tasks=[task_arn])["tasks"]
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "ECS Task State Change",
            "source": "aws.ecs", "account": ACCOUNT, "time": "2026-12-02T11:00:00Z", "region": REGION,
            "resources": [task_arn],
            "detail": {"clusterArn": task["clusterArn"], "taskArn": task_arn, "group": task["group"],
                       "lastStatus": task["lastStatus"], "desiredStatus": "STOPPED", "launchType": "FARGATE",
                       "startedBy": task["startedBy"], "taskDefinitionArn": task["taskDefinitionArn"],
                       "overrides": task["overrides"], "stoppedReason": "Essential container in task exited",
                       "stopCode": "EssentialContainerExited",
                       "containers": [{"name": "train", "exitCode": 0, "lastStatus": "STOPPED",
                                       "taskArn": task_arn}], **detail}}


def put_csv(world, key: str) -> None:
    world.s3.put_object(Bucket=world.bucket, Key=key, Body=b"a,label\n1,0\n")


# ---- the three triggers -----------------------------------------------------------------------
def test_image_push_registers_a_revision_with_the_pushed_digest_and_runs_it(world, capsys):
    answer = run(world, push_event())

    (result,) = answer["results"]
    assert result["action"] == "started", result
    revision = world.ecs.describe_task_definition(taskDefinition=world.family)["taskDefinition"]
    assert revision["revision"] == 2
    (container,) = revision["containerDefinitions"]
    assert container["image"] == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlops@{DIGEST}"
    # Everything else is the previous revision's (what RegisterTaskDefinition accepts).
    before = world.ecs.describe_task_definition(taskDefinition=world.first)["taskDefinition"]
    assert {k: v for k, v in container.items() if k != "image"} == {
        k: v for k, v in before["containerDefinitions"][0].items() if k != "image"}
    for field in ("cpu", "memory", "networkMode", "taskRoleArn", "executionRoleArn",
                  "requiresCompatibilities"):
        assert revision[field] == before[field], field

    (task,) = tasks(world)
    assert task["taskArn"] == result["task_arn"]
    assert task["taskDefinitionArn"] == revision["taskDefinitionArn"]
    assert task["group"] == "train:digits"
    assert (task["startedBy"], task["launchType"]) == ("train-trigger", "FARGATE")
    override = train_override(task)
    assert override["command"] == [*PLAN_COMMAND, "--model", "digits"]  # no dataset, no --promote by default
    assert override["environment"] == {"MODEL_NAME": "digits", "TRAINING_TRIGGER": "ecr-push train-abc123"}
    # The network: moto puts the task's ENI in the subnet and security group it was given...
    details = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
    assert details["subnetId"] == world.subnet
    eni = world.ec2.describe_network_interfaces(NetworkInterfaceIds=[details["networkInterfaceId"]])
    assert [g["GroupId"] for g in eni["NetworkInterfaces"][0]["Groups"]] == [world.group]
    # ...and keeps no public-IP setting: that one is read from the request.
    (request,) = world.requests
    assert request["networkConfiguration"] == {"awsvpcConfiguration": {
        "subnets": [world.subnet], "securityGroups": [world.group], "assignPublicIp": "ENABLED"}}
    assert request["cluster"] == world.cluster and request["count"] == 1

    assert lock(world)["task_arn"] == task["taskArn"]
    assert logged(capsys) == [result]


def test_new_data_starts_a_run_on_that_dataset(world, capsys, monkeypatch):
    monkeypatch.setenv("ASSIGN_PUBLIC_IP", "DISABLED")
    key = "data/iris/2026-12-02.csv"
    put_csv(world, key)
    batch = sqs(upload_event(world.bucket, key))

    answer = run(world, batch)

    assert answer["batchItemFailures"] == []
    (result,) = answer["results"]
    assert (result["action"], result["model"]) == ("started", "iris"), result
    (task,) = tasks(world)
    assert task["group"] == "train:iris"
    assert task["taskDefinitionArn"] == world.first  # the family's latest revision: no image change
    override = train_override(task)
    dataset = f"s3://{world.bucket}/{key}"
    assert override["command"] == [*PLAN_COMMAND, "--model", "iris", "--dataset", dataset]
    assert override["environment"] == {"MODEL_NAME": "iris", "TRAINING_TRIGGER": f"data {dataset}"}
    assert lock(world, "iris")["task_arn"] == task["taskArn"] and lock(world, "digits") is None
    (request,) = world.requests
    assert request["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"
    assert logged(capsys)[0]["action"] == "started"


def test_schedule_runs_the_model_and_promotes_when_set(world, monkeypatch):
    monkeypatch.setenv("PROMOTE", "production")

    # No clients given: the handler builds its own (AWS_ENDPOINT_URL points them at moto).
    answer = trigger.handler(schedule_event(), None)

    (result,) = answer["results"]
    assert result["action"] == "started", result
    (task,) = tasks(world)
    override = train_override(task)
    assert override["command"] == [*PLAN_COMMAND, "--model", "digits", "--promote", "production"]
    assert override["environment"]["TRAINING_TRIGGER"] == "schedule mlops-train-weekly"
    assert lock(world)["task_arn"] == task["taskArn"]


# ---- refusals ---------------------------------------------------------------------------------
def ecs_change(**detail) -> dict:
    base = {"clusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/CLUSTER", "lastStatus": "STOPPED",
            "group": "train:digits", "taskArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/CLUSTER/abc"}
    return {"version": "0", "id": "1", "detail-type": "ECS Task State Change", "source": "aws.ecs",
            "account": ACCOUNT, "region": REGION, "resources": [], "detail": {**base, **detail}}


FOREIGN = {
    "not a dict": (["not", "an", "event"], "not an event document"),
    "another source": ({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification",
                        "detail": {"state": "running"}}, "not an event this function handles"),
    "no detail": ({"source": "aws.ecr", "detail-type": "ECR Image Action"}, "missing detail"),
    "another repository": (push_event(repository="someone-else"), "repository 'someone-else' is not 'mlops'"),
    "tag without the prefix": (push_event(tag="latest"), "tag 'latest' does not start with 'train-'"),
    "a failed push": (push_event(result="FAILURE"), "not a successful push"),
    "a deleted image": (push_event(**{"action-type": "DELETE"}), "not a successful push"),
    "a malformed digest": (push_event(digest="sha256:xyz"), "malformed digest"),
    "no tag": (push_event(**{"image-tag": ""}), "missing detail.image-tag"),
    "task still running": (ecs_change(lastStatus="RUNNING"), "task RUNNING, not STOPPED"),
    "not a training task": (ecs_change(group="service:mlops"), "is not train:<model>"),
    "another cluster": (ecs_change(clusterArn="arn:aws:ecs:us-east-1:123456789012:cluster/other"), "cluster"),
}
FOREIGN_UPLOADS = {
    "another bucket": ("elsewhere", "data/iris/a.csv", "bucket 'elsewhere' is not"),
    "outside the data prefix": (None, "models/iris/a.csv", "is not data/<model>/<file>.csv"),
    "a nested key": (None, "data/iris/2026/a.csv", "is not data/<model>/<file>.csv"),
    "the prefix itself": (None, "data/iris/", "is not data/<model>/<file>.csv"),
    "not a csv": (None, "data/iris/a.parquet", "not a .csv file"),
    "an invalid model name": (None, "data/-iris/a.csv", "invalid model name '-iris'"),
    "a model name with a space": (None, "data/my+model/a.csv", "invalid model name"),
}


def assert_nothing_changed(world):
    assert tasks(world) == []
    assert world.dynamodb.scan(TableName=world.table)["Items"] == []
    assert world.ecs.list_task_definitions(familyPrefix=world.family)["taskDefinitionArns"] == [world.first]


@pytest.mark.parametrize("case", FOREIGN, ids=list(FOREIGN))
def test_foreign_or_malformed_events_are_refused_with_a_reason(world, capsys, case):
    event, reason = FOREIGN[case]
    event = json.loads(json.dumps(event).replace("CLUSTER", world.cluster))

    answer = run(world, event)

    (result,) = answer["results"]
    assert result["action"] == "refused" and reason in result["reason"], result
    assert logged(capsys) == [result]
    assert_nothing_changed(world)


@pytest.mark.parametrize("case", FOREIGN_UPLOADS, ids=list(FOREIGN_UPLOADS))
def test_foreign_uploads_are_refused_and_not_retried(world, capsys, case):
    bucket, key, reason = FOREIGN_UPLOADS[case]
    put_csv(world, "data/iris/a.csv")  # a real upload exists: the refusal is the event's, not the data's

    answer = run(world, sqs(upload_event(bucket or world.bucket, key)))

    (result,) = answer["results"]
    assert result["action"] == "refused" and reason in result["reason"], result
    assert answer["batchItemFailures"] == []  # a malformed message must not come back
    assert logged(capsys) == [result]
    assert_nothing_changed(world)


def test_malformed_sqs_records_are_refused_not_retried(world, capsys):
    batch = sqs("{not json", json.dumps([1, 2]))
    batch["Records"].append({"messageId": "m-3", "eventSource": "aws:kinesis", "body": "{}"})

    answer = run(world, batch)

    assert [r["action"] for r in answer["results"]] == ["refused"] * 3
    assert [r["reason"] for r in answer["results"]] == [
        "the SQS message body is not JSON", "not an event document but list", "not an SQS record"]
    assert answer["batchItemFailures"] == []
    assert len(logged(capsys)) == 3
    assert_nothing_changed(world)


def test_settings_refuse_a_misconfigured_function(world, monkeypatch):
    monkeypatch.delenv("RUNS_TABLE")
    with pytest.raises(RuntimeError, match="lacks RUNS_TABLE"):
        run(world, schedule_event())
    monkeypatch.setenv("RUNS_TABLE", world.table)
    monkeypatch.setenv("MODEL_NAME", "../etc")
    with pytest.raises(RuntimeError, match="invalid MODEL_NAME"):
        run(world, schedule_event())
    assert_nothing_changed(world)


# ---- one run per model ------------------------------------------------------------------------
def test_two_events_in_quick_succession_start_one_task(world, capsys):
    first = run(world, schedule_event())["results"][0]
    second = run(world, push_event())["results"][0]

    assert first["action"] == "started"
    assert second["action"] == "recorded", second
    assert second["task_arn"] == first["task_arn"] and "1 event(s) pending" in second["reason"]
    assert [t["taskArn"] for t in tasks(world)] == [first["task_arn"]]
    held = lock(world)
    assert (held["task_arn"], held["pending_count"], held["pending_trigger"]) == (
        first["task_arn"], "1", "ecr-push train-abc123")
    # The push registered its revision anyway: the pending run will use the family's latest.
    assert world.ecs.describe_task_definition(taskDefinition=world.family)["taskDefinition"]["revision"] == 2
    assert [line["action"] for line in logged(capsys)] == ["started", "recorded"]


def test_stopped_holder_releases_the_lock_and_starts_the_recorded_run(world, capsys):
    first = run(world, schedule_event())["results"][0]["task_arn"]
    key = "data/digits/more.csv"
    put_csv(world, key)
    recorded = run(world, sqs(upload_event(world.bucket, key)))
    assert recorded["results"][0]["action"] == "recorded" and recorded["batchItemFailures"] == []
    run(world, schedule_event())  # a third event: still one pending run, not two
    assert lock(world)["pending_count"] == "2"
    world.ecs.stop_task(cluster=world.cluster, task=first, reason="done")
    capsys.readouterr()

    answer = run(world, stopped_event(world, first))

    released, started = answer["results"]
    assert (released["action"], released["task_arn"]) == ("released", first)
    assert "exit code 0" in released["reason"]
    assert started["action"] == "started", started
    assert "2 event(s) recorded" in started["reason"]
    by_arn = {task["taskArn"]: task for task in tasks(world)}
    old, new = by_arn.pop(first), by_arn.pop(started["task_arn"])
    assert by_arn == {}
    assert old["taskArn"] == first and old["lastStatus"] == "STOPPED"
    assert new["taskArn"] == started["task_arn"] and new["lastStatus"] == "RUNNING"
    override = train_override(new)
    assert override["command"][-2:] == ["--dataset", f"s3://{world.bucket}/{key}"]  # the newest data recorded
    assert override["environment"]["TRAINING_TRIGGER"] == f"pending after {first}"
    held = lock(world)
    assert held["task_arn"] == new["taskArn"] and "pending_count" not in held
    assert [line["action"] for line in logged(capsys)] == ["released", "started"]

    # The same STOPPED event again (EventBridge delivers at least once): not the holder any more.
    (again,) = run(world, stopped_event(world, first))["results"]
    assert again["action"] == "ignored" and "does not hold the lock" in again["reason"]
    assert lock(world)["task_arn"] == new["taskArn"] and len(tasks(world)) == 2


def test_stopped_holder_without_recorded_events_only_releases(world):
    first = run(world, schedule_event())["results"][0]["task_arn"]
    world.ecs.stop_task(cluster=world.cluster, task=first, reason="done")

    (released,) = run(world, stopped_event(world, first))["results"]

    assert released["action"] == "released"
    assert lock(world) is None and len(tasks(world)) == 1


@pytest.mark.parametrize("holder", ["stopped", "unknown to ECS", "an expired start"])
def test_a_dead_holder_is_taken_over(world, holder):
    if holder == "stopped":  # its STOPPED event was lost
        arn = run(world, schedule_event())["results"][0]["task_arn"]
        world.ecs.stop_task(cluster=world.cluster, task=arn, reason="lost event")
        item = {"task_arn": {"S": arn}, "lease_until": {"N": str(int(time.time()) + 3600)}}
    elif holder == "unknown to ECS":
        arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{world.cluster}/0123456789abcdef"
        item = {"task_arn": {"S": arn}, "lease_until": {"N": str(int(time.time()) + 3600)}}
    else:  # a function that died between taking the lock and RunTask's answer
        item = {"task_arn": {"S": "starting"}, "lease_until": {"N": str(int(time.time()) - 1)}}
    world.dynamodb.put_item(TableName=world.table, Item={"model": {"S": "digits"}, **item,
                                                         "pending_count": {"N": "3"}})
    before = len(tasks(world))

    (result,) = run(world, push_event())["results"]

    assert result["action"] == "started", result
    assert len(tasks(world)) == before + 1
    assert lock(world)["task_arn"] == result["task_arn"] and "pending_count" not in lock(world)


def test_a_running_holder_is_not_taken_over_even_if_its_lease_is_long(world):
    first = run(world, schedule_event())["results"][0]["task_arn"]
    (result,) = run(world, schedule_event())["results"]
    assert result["action"] == "recorded" and len(tasks(world)) == 1 and lock(world)["task_arn"] == first


# ---- the debounce -----------------------------------------------------------------------------
@pytest.mark.parametrize("delivery", ["one batch", "separately"])
def test_a_burst_of_uploads_starts_one_run_for_the_newest(world, capsys, delivery):
    keys = [f"data/iris/part-{name}.csv" for name in "edcb"]
    for key in keys:
        put_csv(world, key)
    # S3 times objects to the second: cross a second so the last upload is newer by time, not by name.
    time.sleep(1.05 - time.time() % 1)
    keys.append("data/iris/part-a.csv")
    put_csv(world, keys[-1])
    world.s3.put_object(Bucket=world.bucket, Key="data/iris/zz-notes.txt", Body=b"newest, not data")
    events = [upload_event(world.bucket, key) for key in keys]

    if delivery == "one batch":
        answers = [run(world, sqs(*events))]
    else:
        answers = [run(world, sqs(event)) for event in events]

    results = [r for answer in answers for r in answer["results"]]
    assert [r["action"] for r in results] == ["ignored"] * 4 + ["started"], results
    assert all(r["reason"] == "debounced: a newer upload data/iris/part-a.csv follows" for r in results[:4])
    assert all(answer["batchItemFailures"] == [] for answer in answers)
    (task,) = tasks(world)
    assert train_override(task)["command"][-2:] == ["--dataset", f"s3://{world.bucket}/data/iris/part-a.csv"]
    assert [line["action"] for line in logged(capsys)] == ["ignored"] * 4 + ["started"]


def test_an_upload_deleted_before_its_message_arrives_is_ignored(world):
    put_csv(world, "data/iris/kept.csv")
    (result,) = run(world, sqs(upload_event(world.bucket, "data/iris/gone.csv")))["results"]
    assert result["action"] == "ignored" and result["reason"].startswith("deleted:")
    assert tasks(world) == []


def test_an_url_encoded_key_is_found(world):
    put_csv(world, "data/iris/new data.csv")
    (result,) = run(world, sqs(upload_event(world.bucket, "data/iris/new+data.csv")))["results"]
    assert result["action"] == "started", result
    (task,) = tasks(world)
    assert train_override(task)["command"][-1] == f"s3://{world.bucket}/data/iris/new data.csv"


# ---- failures ---------------------------------------------------------------------------------
def test_run_task_failure_releases_the_lock_and_retries_only_that_record(world, monkeypatch, capsys):
    monkeypatch.setenv("CLUSTER", "no-such-cluster")
    put_csv(world, "data/iris/a.csv")
    batch = sqs(upload_event(world.bucket, "data/iris/a.csv"), "{not json")

    answer = run(world, batch)

    failed, refused = answer["results"]
    assert failed["action"] == "failed" and "ClusterNotFoundException" in failed["reason"], failed
    assert "lock released" in failed["reason"]
    assert refused["action"] == "refused"
    assert answer["batchItemFailures"] == [{"itemIdentifier": batch["Records"][0]["messageId"]}]
    assert lock(world, "iris") is None  # the next delivery can take it
    assert [line["action"] for line in logged(capsys)] == ["failed", "refused"]

    # An EventBridge event raises, so that Lambda retries it and then hands it to the dead-letter queue.
    with pytest.raises(trigger.Failed, match=r"ClusterNotFoundException.*lock released"):
        run(world, schedule_event())
    assert lock(world) is None
    assert [line["action"] for line in logged(capsys)] == ["failed"]


def test_an_aws_error_before_run_task_is_a_batch_failure(world, monkeypatch):
    monkeypatch.setenv("RUNS_TABLE", "no-such-table")
    put_csv(world, "data/iris/a.csv")
    batch = sqs(upload_event(world.bucket, "data/iris/a.csv"))

    answer = run(world, batch)

    (result,) = answer["results"]
    assert result["action"] == "failed" and "ResourceNotFoundException" in result["reason"], result
    assert answer["batchItemFailures"] == [{"itemIdentifier": batch["Records"][0]["messageId"]}]
    assert tasks(world) == []


def test_the_module_is_self_contained():
    """The stack inlines the file as the function's code, where the project is not installed."""
    import ast

    tree = ast.parse((ROOT / "deploy" / "training" / "trigger.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    stdlib = {"__future__", "json", "os", "re", "time", "dataclasses", "urllib"}
    assert imported <= stdlib | {"boto3", "botocore"}, imported
