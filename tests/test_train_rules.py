"""The training triggers' EventBridge rules, deployed by `scripts/stack` into moto and proven by behaviour.

Each rule's pattern is read back from EventBridge, then real event documents (an ECR push, an S3 object
created, an ECS task state change; shapes as AWS documents them) are put on the bus, and a queue added
as the rule's target shows which ones the rule let through: moto's TestEventPattern call is not
reliable, its delivery is. moto cannot deliver to a Lambda target (it raises NotImplementedError for
one), so the function's target is checked, then swapped for the observing queue (and the schedule
rules', which moto wrongly matches against every event, are set aside while events are put).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from contextlib import contextmanager

import pytest
from helpers import ROOT


def clients(env: dict[str, str]) -> dict:
    import boto3

    return {service: boto3.client(service, endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
            for service in ("events", "sqs", "lambda", "cloudformation", "ecs")}


def deploy(env: dict[str, str], *params: str) -> dict:
    """A fresh stack (its own names) deployed with `params`: its names, outputs and clients."""
    suffix = uuid.uuid4().hex[:8]
    stack, environment = f"r-{suffix}", f"r{suffix}"
    args = ["--param", f"EnvironmentName={environment}"]
    for param in params:
        args += ["--param", param]
    result = subprocess.run([str(ROOT / "scripts/stack"), "deploy", "--stack-name", stack, *args],
                            capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    outputs = dict(line.split(": ", 1) for line in result.stdout.splitlines()
                   if ": " in line and not line.startswith("stack: "))
    return {"stack": stack, "environment": environment, "outputs": outputs, "aws": clients(env)}


@pytest.fixture(scope="module")
def env(moto_endpoint):
    import os

    return {**os.environ, "AWS_ENDPOINT_URL": moto_endpoint, "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def deployed(env):
    """The stack with its default parameters (weekly schedule, 300 s debounce)."""
    return deploy(env)


@pytest.fixture(scope="module")
def unscheduled(env):
    """The stack with TrainSchedule empty and a shorter debounce."""
    return deploy(env, "TrainSchedule=", "TrainDebounceSeconds=45")


def rule_name(deployed: dict, kind: str) -> str:
    return f"{deployed['environment']}-train-{kind}"


def logical_ids(deployed: dict) -> dict[str, str]:
    resources = deployed["aws"]["cloudformation"].list_stack_resources(StackName=deployed["stack"])[
        "StackResourceSummaries"]
    return {r["LogicalResourceId"]: r["ResourceType"] for r in resources}


def function_arn(deployed: dict) -> str:
    return deployed["aws"]["lambda"].get_function_configuration(
        FunctionName=deployed["outputs"]["TrainTriggerFunction"])["FunctionArn"]


def data_queue(deployed: dict) -> tuple[str, dict]:
    """The debounce queue's URL and attributes."""
    sqs = deployed["aws"]["sqs"]
    url = sqs.get_queue_url(QueueName=f"{deployed['environment']}-train-data")["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def observe(deployed: dict, kind: str, expected_target: str) -> str:
    """Swap the rule's one target (checked to be `expected_target`) for a new queue; the queue's URL."""
    events, sqs = deployed["aws"]["events"], deployed["aws"]["sqs"]
    name = rule_name(deployed, kind)
    (target,) = events.list_targets_by_rule(Rule=name)["Targets"]
    assert target["Arn"] == expected_target
    url = sqs.create_queue(QueueName=f"observe-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.remove_targets(Rule=name, Ids=[target["Id"]])
    events.put_targets(Rule=name, Targets=[{"Id": "observe", "Arn": arn}])
    return url


@contextmanager
def schedules_set_aside(events):
    """moto matches a rule without an event pattern (a schedule rule) against every event put on the
    bus, and then fails on its Lambda target; EventBridge never gives a schedule rule such events. So
    while events are put, every schedule rule's targets (any stack's in this moto server) are taken
    off, and put back after."""
    held = {}
    for page in events.get_paginator("list_rules").paginate():
        for rule in page["Rules"]:
            if "EventPattern" not in rule:
                targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
                if targets:
                    events.remove_targets(Rule=rule["Name"], Ids=[target["Id"] for target in targets])
                    held[rule["Name"]] = targets
    try:
        yield
    finally:
        for name, targets in held.items():
            events.put_targets(Rule=name, Targets=targets)


def put(deployed: dict, source: str, detail_type: str, detail: dict, resources: list[str]) -> None:
    entry = {"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail),
             "Resources": resources}
    events = deployed["aws"]["events"]
    with schedules_set_aside(events):
        answer = events.put_events(Entries=[entry])
    assert answer["FailedEntryCount"] == 0, answer


def received(deployed: dict, url: str) -> list[dict]:
    """The events the queue holds (each an EventBridge event document)."""
    sqs, found = deployed["aws"]["sqs"], []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return found
        found += [json.loads(m["Body"]) for m in messages]
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])


def test_the_rules_and_the_queue_exist_in_the_stack(deployed):
    kinds = logical_ids(deployed)
    for name in ("TrainOnImagePushRule", "TrainOnNewDataRule", "TrainOnScheduleRule", "TrainTaskStoppedRule"):
        assert kinds[name] == "AWS::Events::Rule", name
    assert kinds["TrainDataQueue"] == "AWS::SQS::Queue"
    assert kinds["TrainTriggerFunction"] == "AWS::Lambda::Function"
    names = {r["Name"] for r in deployed["aws"]["events"].list_rules(
        NamePrefix=f"{deployed['environment']}-")["Rules"]}
    assert names == {rule_name(deployed, kind) for kind in ("on-image-push", "on-new-data", "on-schedule",
                                                             "task-stopped")}


def ecr_action(repository: str, tag: str, result: str, action: str, digest: str) -> dict:
    return {"result": result, "repository-name": repository, "image-digest": digest, "action-type": action,
            "image-tag": tag}


def test_the_image_push_rule_matches_train_tags_of_this_repository_only(deployed):
    repository = deployed["outputs"]["EcrRepository"]
    events = deployed["aws"]["events"]
    pattern = json.loads(events.describe_rule(Name=rule_name(deployed, "on-image-push"))["EventPattern"])
    assert pattern["detail"]["repository-name"] == [repository]
    url = observe(deployed, "on-image-push", function_arn(deployed))

    cases = {  # (repository, tag, result, action-type, matches)
        "a train tag": (repository, "train-0123abc", "SUCCESS", "PUSH", True),
        "a service tag": (repository, "0123abc", "SUCCESS", "PUSH", False),
        "another repository": ("another-repo", "train-0123abc", "SUCCESS", "PUSH", False),
        "a failed push": (repository, "train-0123abc", "FAILURE", "PUSH", False),
        "a deleted image": (repository, "train-0123abc", "SUCCESS", "DELETE", False),
        "train- inside a tag": (repository, "v1-train-0123abc", "SUCCESS", "PUSH", False),
        "a tag that only starts with train": (repository, "trainer-0123abc", "SUCCESS", "PUSH", False),
    }
    digests = {case: "sha256:" + uuid.uuid4().hex * 2 for case in cases}
    for case, (repo, tag, result, action, _) in cases.items():
        put(deployed, "aws.ecr", "ECR Image Action", ecr_action(repo, tag, result, action, digests[case]), [])
    got = {event["detail"]["image-digest"] for event in received(deployed, url)}
    assert got == {digests[case] for case, spec in cases.items() if spec[-1]}, [
        case for case in cases if digests[case] in got]


def s3_created(bucket: str, key: str) -> dict:
    return {"version": "0", "bucket": {"name": bucket},
            "object": {"key": key, "size": 1024, "etag": uuid.uuid4().hex, "sequencer": "0062E99A88DC407460"},
            "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012",
            "source-ip-address": "203.0.113.5", "reason": "PutObject"}


def test_the_new_data_rule_matches_objects_created_under_the_data_prefix_of_this_bucket_only(deployed):
    bucket = deployed["outputs"]["BucketName"]
    _, attributes = data_queue(deployed)
    url = observe(deployed, "on-new-data", attributes["QueueArn"])  # its own target: the debounce queue

    cases = {  # (detail-type, bucket, key, matches)
        "new data": ("Object Created", bucket, "data/digits/2026-12-01.csv", True),
        "another model's data": ("Object Created", bucket, "data/iris/a+b.csv", True),
        "a published model": ("Object Created", bucket, "models/digits/versions/v/model.joblib", False),
        "a prefix that only starts with data": ("Object Created", bucket, "datasets/digits.csv", False),
        "another bucket": ("Object Created", f"{bucket}-other", "data/digits/2026-12-01.csv", False),
        "deleted data": ("Object Deleted", bucket, "data/digits/old.csv", False),
    }
    for detail_type, name, key, _ in cases.values():
        put(deployed, "aws.s3", detail_type, s3_created(name, key), [f"arn:aws:s3:::{name}"])
    got = sorted((event["detail-type"], event["detail"]["bucket"]["name"], event["detail"]["object"]["key"])
                 for event in received(deployed, url))
    assert got == sorted(spec[:3] for spec in cases.values() if spec[-1])


def test_new_data_waits_in_the_debounce_queue_as_long_as_the_parameter_says(deployed, unscheduled):
    assert data_queue(deployed)[1]["DelaySeconds"] == "300"
    # In the other stack the rule keeps its own target, and an upload lands in the queue, delayed.
    url, attributes = data_queue(unscheduled)
    assert attributes["DelaySeconds"] == "45"
    (target,) = unscheduled["aws"]["events"].list_targets_by_rule(Rule=rule_name(unscheduled, "on-new-data"))[
        "Targets"]
    assert target["Arn"] == attributes["QueueArn"]
    bucket = unscheduled["outputs"]["BucketName"]
    put(unscheduled, "aws.s3", "Object Created", s3_created(bucket, "data/digits/new.csv"),
        [f"arn:aws:s3:::{bucket}"])
    sqs = unscheduled["aws"]["sqs"]
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessages"])["Attributes"]
    assert counts == {"ApproximateNumberOfMessagesDelayed": "1", "ApproximateNumberOfMessages": "0"}
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []  # nothing before the delay


def test_the_schedule_rule_runs_weekly_by_default_and_not_at_all_when_empty(deployed, unscheduled):
    events = deployed["aws"]["events"]
    rule = events.describe_rule(Name=rule_name(deployed, "on-schedule"))
    assert rule["ScheduleExpression"] == "cron(0 4 ? * MON *)" and rule["State"] == "ENABLED"
    (target,) = events.list_targets_by_rule(Rule=rule_name(deployed, "on-schedule"))["Targets"]
    assert target["Arn"] == function_arn(deployed)

    rules = unscheduled["aws"]["events"].list_rules(NamePrefix=f"{unscheduled['environment']}-")["Rules"]
    assert {r["Name"] for r in rules} == {rule_name(unscheduled, kind) for kind in (
        "on-image-push", "on-new-data", "task-stopped")}
    assert not {"TrainOnScheduleRule", "TrainOnSchedulePermission"} & set(logical_ids(unscheduled))


def ecs_task_change(cluster_arn: str, group: str, status: str) -> dict:
    task = f"{cluster_arn.replace(':cluster/', ':task/')}/{uuid.uuid4().hex}"
    family = cluster_arn.replace(":cluster/", ":task-definition/").removesuffix("-cluster") + "-train:3"
    detail = {"clusterArn": cluster_arn, "taskArn": task, "taskDefinitionArn": family, "group": group,
              "lastStatus": status, "desiredStatus": "STOPPED" if status == "STOPPED" else "RUNNING",
              "launchType": "FARGATE", "startedBy": "train-trigger",
              "containers": [{"name": "train", "lastStatus": status}]}
    if status == "STOPPED":
        detail.update(stopCode="EssentialContainerExited", stoppedReason="Essential container in task exited")
        detail["containers"][0]["exitCode"] = 0
    return detail


def test_the_task_stopped_rule_matches_stopped_training_tasks_of_this_cluster_only(deployed):
    events = deployed["aws"]["events"]
    cluster_arn = deployed["aws"]["ecs"].describe_clusters(clusters=[deployed["outputs"]["ClusterName"]])[
        "clusters"][0]["clusterArn"]
    pattern = json.loads(events.describe_rule(Name=rule_name(deployed, "task-stopped"))["EventPattern"])
    assert pattern["detail"]["clusterArn"] == [cluster_arn]
    url = observe(deployed, "task-stopped", function_arn(deployed))

    service = f"service:{deployed['environment']}-model-service"
    cases = {  # (cluster, group, lastStatus, matches)
        "a training task stopped": (cluster_arn, "train:digits", "STOPPED", True),
        "another model's training stopped": (cluster_arn, "train:iris", "STOPPED", True),
        "a training task running": (cluster_arn, "train:digits", "RUNNING", False),
        "a service task stopped": (cluster_arn, service, "STOPPED", False),
        "a task without a group": (cluster_arn, f"family:{deployed['environment']}-train", "STOPPED", False),
        "another cluster": (cluster_arn + "-other", "train:digits", "STOPPED", False),
    }
    tasks = {}
    for case, (cluster, group, status, _) in cases.items():
        detail = ecs_task_change(cluster, group, status)
        tasks[case] = detail["taskArn"]
        put(deployed, "aws.ecs", "ECS Task State Change", detail, [detail["taskArn"]])
    got = {event["detail"]["taskArn"] for event in received(deployed, url)}
    assert got == {tasks[case] for case, spec in cases.items() if spec[-1]}, [
        case for case in cases if tasks[case] in got]


@contextmanager
def run_task_requests():
    """The parameters of every RunTask boto3's default session sends meanwhile (moto keeps no network
    configuration of a task in this stack's VPC)."""
    import boto3

    requests: list[dict] = []

    def record(params, **_):
        requests.append(dict(params))

    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register("before-parameter-build.ecs.RunTask", record)
    try:
        yield requests
    finally:
        boto3.DEFAULT_SESSION.events.unregister("before-parameter-build.ecs.RunTask", record)


def test_the_deployed_function_trains_with_a_pushed_image_once_at_a_time(unscheduled, aws_env, monkeypatch):
    """The stack's wiring end to end, but for Lambda itself: the push event as the rule delivered it,
    handed to deploy/training/trigger.py with the deployed function's environment, starts one task of
    the stack's training family in its subnets; a second push waits for the first task to stop."""
    from deploy.training import trigger

    stack, aws = unscheduled, unscheduled["aws"]
    out, repository = stack["outputs"], stack["outputs"]["EcrRepository"]
    url = observe(stack, "on-image-push", function_arn(stack))
    digests = ["sha256:" + uuid.uuid4().hex * 2 for _ in range(2)]
    for n, digest in enumerate(digests):
        push = ecr_action(repository, f"train-{n}", "SUCCESS", "PUSH", digest)
        put(stack, "aws.ecr", "ECR Image Action", push, [])
    pushes = received(stack, url)
    assert [event["detail"]["image-digest"] for event in pushes] == digests
    # moto's delivery drops the event's "account" (its default input template has no such field);
    # EventBridge delivers the whole event, account included.
    account = out["EcrRepositoryUri"].split(".", 1)[0]
    for event in pushes:
        event.setdefault("account", account)
    variables = aws["lambda"].get_function_configuration(FunctionName=out["TrainTriggerFunction"])[
        "Environment"]["Variables"]
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    def running() -> list[dict]:
        arns = aws["ecs"].list_tasks(cluster=out["ClusterName"], family=out["TrainTaskFamily"],
                                     desiredStatus="RUNNING")["taskArns"]
        return aws["ecs"].describe_tasks(cluster=out["ClusterName"], tasks=arns)["tasks"] if arns else []

    with run_task_requests() as requests:
        trigger.handler(pushes[0])
    (task,) = running()
    assert (task["group"], task["startedBy"]) == ("train:digits", "train-trigger")
    assert task["launchType"] == "FARGATE"
    definition = aws["ecs"].describe_task_definition(taskDefinition=task["taskDefinitionArn"])[
        "taskDefinition"]
    assert definition["family"] == out["TrainTaskFamily"]
    assert definition["containerDefinitions"][0]["image"].endswith(f"/{repository}@{digests[0]}")
    (request,) = requests
    assert request["networkConfiguration"]["awsvpcConfiguration"] == {
        "subnets": out["TrainSubnets"].split(","), "securityGroups": [out["TrainSecurityGroup"]],
        "assignPublicIp": "ENABLED"}

    trigger.handler(pushes[1])  # while the first runs: recorded, not started
    assert [t["taskArn"] for t in running()] == [task["taskArn"]]

    aws["ecs"].stop_task(cluster=out["ClusterName"], task=task["taskArn"], reason="done")
    (stopped,) = aws["ecs"].describe_tasks(cluster=out["ClusterName"], tasks=[task["taskArn"]])["tasks"]
    detail = {key: stopped[key] for key in ("clusterArn", "taskArn", "taskDefinitionArn", "group",
                                            "lastStatus", "desiredStatus", "startedBy")}
    url = observe(stack, "task-stopped", function_arn(stack))
    put(stack, "aws.ecs", "ECS Task State Change", detail, [task["taskArn"]])
    (change,) = received(stack, url)
    change.setdefault("account", account)
    trigger.handler(change)  # the lock is released, and the recorded push starts one more run
    (after,) = running()
    assert after["taskArn"] != task["taskArn"] and after["group"] == "train:digits"
