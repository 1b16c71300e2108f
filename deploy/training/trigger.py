"""The train-trigger Lambda: start a training run as an ECS task when an event asks for one.

Four kinds of event reach `handler`:

* ECR "ECR Image Action" (PUSH, SUCCESS) of a tag starting with IMAGE_TAG_PREFIX in REPOSITORY_NAME.
  RunTask overrides a container's command and environment but cannot override its image, so the
  handler registers a new revision of TASK_FAMILY with the pushed image pinned by digest and runs that
  revision. It registers before taking the lock: a push that finds a run going is recorded, and the
  run started for it later uses the family's latest revision, which is then the pushed image.
* SQS records whose bodies are EventBridge S3 "Object Created" events for DATA_PREFIX/<model>/<file>.csv.
  The debounce needs no timer and no state of its own: the queue delays each message (the debounce
  time), so when one arrives a burst of uploads has landed, and S3 itself says which upload is the
  newest. Each record lists its model's prefix; only the newest .csv (by LastModified, then key) starts
  a run with `--dataset s3://bucket/key`, the others are ignored as debounced. The listing decides, not
  the batch, so a burst starts one run however SQS groups, repeats or reorders its messages (a burst
  longer than the delay starts one run and records one more).
* EventBridge "Scheduled Event": a run of MODEL_NAME.
* ECS "Task State Change" STOPPED of a task in group `train:<model>`: releases that model's lock and,
  when events were recorded meanwhile, starts one more run for them.

At most one run per model: an item per model in the DynamoDB table RUNS_TABLE is the lock, taken by a
conditional put (no item, or its lease ran out) as task "starting" with a short lease, then given the
task's ARN and a lease of LEASE_SECONDS once RunTask answers. An event that finds the lock held is
recorded on the item (pending_count, pending_trigger, pending_dataset) and the STOPPED event replays
the recorded events as one run. The lease bounds how long a lost STOPPED event can block a model; a
holder that ECS reports stopped, or no longer knows, is taken over at once.

Every decision prints one JSON line: action started | recorded | ignored | refused | released | failed.
"refused" is decided from the event alone (malformed, or not ours) and changes nothing; "ignored" is
decided after looking at AWS. An EventBridge event that failed on an AWS error raises (Lambda retries
it, then the dead-letter queue); for an SQS batch such records are listed in batchItemFailures to be
delivered again. Refused records are never retried, so a malformed message cannot loop.

Self-contained (stdlib and boto3 only): the stack inlines this file as the function's index.py.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from urllib.parse import unquote_plus

import boto3
from botocore.exceptions import BotoCoreError, ClientError

STARTED_BY = "train-trigger"
STARTING = "starting"  # the lock's task_arn between the conditional put and RunTask's answer
STARTING_LEASE = 900  # a Lambda runs 15 minutes at most: a "starting" item older than that is orphaned
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
ACCOUNT = re.compile(r"^[0-9]{12}$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")


@dataclass(frozen=True)
class Settings:
    """The function's configuration (see `settings`)."""

    cluster: str
    task_family: str
    container: str
    subnets: tuple
    security_groups: tuple
    assign_public_ip: str
    runs_table: str
    model: str
    repository: str
    tag_prefix: str
    bucket: str
    data_prefix: str
    plan: str
    promote: str
    lease_seconds: int


def settings(environ) -> Settings:
    """Read the configuration from the environment; raise on a missing or invalid value, so a
    misconfigured function fails on every invocation rather than starting odd tasks."""
    def listed(name):
        return tuple(part.strip() for part in environ.get(name, "").split(",") if part.strip())

    missing = [name for name in ("CLUSTER", "TASK_FAMILY", "SUBNETS", "RUNS_TABLE", "MODEL_NAME")
               if not environ.get(name, "").strip()]
    if missing:
        raise RuntimeError(f"the function's environment lacks {', '.join(missing)}")
    config = Settings(
        cluster=environ["CLUSTER"], task_family=environ["TASK_FAMILY"],
        container=environ.get("CONTAINER_NAME") or "train",
        subnets=listed("SUBNETS"), security_groups=listed("SECURITY_GROUPS"),
        assign_public_ip=environ.get("ASSIGN_PUBLIC_IP") or "ENABLED", runs_table=environ["RUNS_TABLE"],
        model=environ["MODEL_NAME"], repository=environ.get("REPOSITORY_NAME", ""),
        tag_prefix=environ.get("IMAGE_TAG_PREFIX") or "train-", bucket=environ.get("DATA_BUCKET", ""),
        data_prefix=(environ.get("DATA_PREFIX") or "data").strip("/"),
        plan=environ.get("PLAN") or "model/training.toml", promote=environ.get("PROMOTE", "").strip(),
        lease_seconds=int(environ.get("LEASE_SECONDS") or 21600),
    )
    if not MODEL_NAME.match(config.model) or config.assign_public_ip not in ("ENABLED", "DISABLED"):
        raise RuntimeError(f"invalid MODEL_NAME {config.model!r} or ASSIGN_PUBLIC_IP "
                           f"{config.assign_public_ip!r}")
    return config


@dataclass
class Aws:
    """The boto3 clients the handler uses."""

    ecs: object
    dynamodb: object
    s3: object


def clients() -> Aws:
    """Build the clients (region and credentials from the Lambda environment; boto3 honours
    AWS_ENDPOINT_URL, which is how the tests point them at moto)."""
    return Aws(ecs=boto3.client("ecs"), dynamodb=boto3.client("dynamodb"), s3=boto3.client("s3"))


class Refused(Exception):
    """The event is malformed or not one this function acts on; retrying it cannot help."""


@dataclass
class Request:
    """What an event asks for, once parsed."""

    kind: str  # ecr-push | data | schedule | task-stopped | pending (a recorded run, replayed)
    model: str
    trigger: str = ""
    dataset: str = ""  # data: the uploaded key; a run: the s3:// URI passed as --dataset
    image: str = ""  # ecr-push: <registry>/<repository>@<digest>
    task_arn: str = ""  # task-stopped: the task that stopped
    stopped: str = ""  # task-stopped: why, for the log


class Failed(Exception):
    """An EventBridge event failed on an AWS error: raised so that Lambda retries it (twice), then
    hands it to the function's dead-letter queue."""


def handler(event, context=None, aws: Aws | None = None) -> dict:
    """Lambda entry point: act on one EventBridge event or an SQS batch of them.

    Returns {"results": [outcome, ...]}, plus "batchItemFailures" for an SQS batch (the records to
    deliver again). An EventBridge event with a failed outcome raises Failed instead (after logging)."""
    config = settings(os.environ)
    aws = aws or clients()
    if not (isinstance(event, dict) and "Records" in event):
        outcomes = decide(event, config, aws)
        failed = [o["reason"] for o in outcomes if o["action"] == "failed"]
        if failed:
            raise Failed("; ".join(failed))
        return {"results": outcomes}
    records = event["Records"] if isinstance(event["Records"], list) else [event["Records"]]
    results, failures = [], []
    for record in records:
        outcomes = decide(record, config, aws, queued=True)
        results += outcomes
        failed = any(o["action"] == "failed" for o in outcomes)
        if failed and isinstance(record, dict) and record.get("messageId"):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures, "results": results}


def decide(doc, config: Settings, aws: Aws, queued: bool = False) -> list[dict]:
    """Parse one event, act on it, log and return the outcomes (never raises on AWS errors)."""
    request = Request(kind="unknown", model="")
    try:
        if queued:
            if not isinstance(doc, dict) or doc.get("eventSource") != "aws:sqs":
                raise Refused("not an SQS record")
            try:
                doc = json.loads(doc.get("body") or "")
            except ValueError:
                raise Refused("the SQS message body is not JSON") from None
        request = parse(doc, config)
        outcomes = act(request, config, aws)
    except Refused as exc:
        outcomes = [outcome("refused", request, str(exc))]
    except (ClientError, BotoCoreError) as exc:
        outcomes = [outcome("failed", request, f"{type(exc).__name__}: {exc}")]
    for line in outcomes:
        print(json.dumps(line, sort_keys=True))
    return outcomes


def outcome(action: str, request: Request, reason: str, task_arn: str = "") -> dict:
    """One decision, as logged and returned."""
    return {"action": action, "event": request.kind, "model": request.model, "reason": reason,
            "task_arn": task_arn, "trigger": request.trigger}


def text(doc: dict, path: str) -> str:
    """The non-empty string at a dotted path of the event, or Refused naming what is missing."""
    value = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if not isinstance(value, str) or not value:
        raise Refused(f"missing {path}")
    return value


def parse(doc, config: Settings) -> Request:
    """The Request an event document makes, or Refused with the reason."""
    if not isinstance(doc, dict):
        raise Refused(f"not an event document but {type(doc).__name__}")
    source, kind = doc.get("source"), doc.get("detail-type")
    if not isinstance(doc.get("detail"), dict):
        raise Refused("missing detail")
    if (source, kind) == ("aws.ecr", "ECR Image Action"):
        return parse_push(doc, config)
    if (source, kind) == ("aws.s3", "Object Created"):
        return parse_upload(doc, config)
    if source in ("aws.events", "aws.scheduler") and kind == "Scheduled Event":
        rule = (doc.get("resources") or [""])[0]
        trigger = f"schedule {rule.rsplit('/', 1)[-1]}".strip() if isinstance(rule, str) else "schedule"
        return Request(kind="schedule", model=config.model, trigger=trigger)
    if (source, kind) == ("aws.ecs", "ECS Task State Change"):
        return parse_stopped(doc, config)
    raise Refused(f"not an event this function handles (source {source!r}, detail-type {kind!r})")


def parse_push(doc: dict, config: Settings) -> Request:
    """An ECR push of a training tag of our repository."""
    request = Request(kind="ecr-push", model=config.model)
    action, result = text(doc, "detail.action-type"), text(doc, "detail.result")
    if (action, result) != ("PUSH", "SUCCESS"):
        raise Refused(f"ECR {action} {result}, not a successful push")
    repository, tag = text(doc, "detail.repository-name"), text(doc, "detail.image-tag")
    if repository != config.repository:
        raise Refused(f"repository {repository!r} is not {config.repository!r}")
    if not tag.startswith(config.tag_prefix):
        raise Refused(f"tag {tag!r} does not start with {config.tag_prefix!r}")
    digest, account, region = text(doc, "detail.image-digest"), text(doc, "account"), text(doc, "region")
    if not (DIGEST.match(digest) and ACCOUNT.match(account) and REGION.match(region)):
        raise Refused(f"malformed digest, account or region ({digest!r}, {account!r}, {region!r})")
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    request.image = f"{account}.dkr.ecr.{region}.{domain}/{repository}@{digest}"
    request.trigger = f"ecr-push {tag}"
    return request


def parse_upload(doc: dict, config: Settings) -> Request:
    """An object created under DATA_PREFIX/<model>/ as <file>.csv in DATA_BUCKET."""
    bucket, key = text(doc, "detail.bucket.name"), text(doc, "detail.object.key")
    if bucket != config.bucket:
        raise Refused(f"bucket {bucket!r} is not {config.bucket!r}")
    prefix = config.data_prefix + "/"
    model, _, name = key.removeprefix(prefix).partition("/")
    if not key.startswith(prefix) or not name or "/" in name:
        raise Refused(f"key {key!r} is not {config.data_prefix}/<model>/<file>.csv")
    if not name.lower().endswith(".csv") or name.startswith("."):
        raise Refused(f"key {key!r} is not a .csv file")
    if not MODEL_NAME.match(model):
        raise Refused(f"invalid model name {model!r} in key {key!r}")
    return Request(kind="data", model=model, dataset=key, trigger=f"data s3://{bucket}/{key}")


def parse_stopped(doc: dict, config: Settings) -> Request:
    """A training task of our cluster that stopped."""
    status, group, arn = (text(doc, f"detail.{name}") for name in ("lastStatus", "group", "taskArn"))
    cluster = text(doc, "detail.clusterArn").rsplit("/", 1)[-1]
    if status != "STOPPED":
        raise Refused(f"task {status}, not STOPPED")
    if not group.startswith("train:") or not MODEL_NAME.match(group[len("train:"):]):
        raise Refused(f"group {group!r} is not train:<model>")
    if cluster != config.cluster.rsplit("/", 1)[-1]:
        raise Refused(f"cluster {cluster!r} is not {config.cluster!r}")
    codes = [c.get("exitCode") for c in doc["detail"].get("containers") or []
             if isinstance(c, dict) and c.get("name") == config.container]
    stopped = f"{doc['detail'].get('stoppedReason') or 'stopped'} (exit code {codes[0] if codes else None})"
    return Request(kind="task-stopped", model=group[len("train:"):], task_arn=arn, stopped=stopped)


def act(request: Request, config: Settings, aws: Aws) -> list[dict]:
    """Do what a parsed event asks; outcomes in order."""
    if request.kind == "ecr-push":
        # Register before the lock: see the module docstring.
        return [start(request, config, aws, register_revision(request.image, config, aws))]
    if request.kind == "data":
        return [debounce(request, config, aws)]
    if request.kind == "task-stopped":
        return release(request, config, aws)
    return [start(request, config, aws)]


def register_revision(image: str, config: Settings, aws: Aws) -> str:
    """Register a copy of the family's latest ACTIVE revision running `image`; return its ARN."""
    latest = aws.ecs.describe_task_definition(taskDefinition=config.task_family)["taskDefinition"]
    # Only what RegisterTaskDefinition accepts: the description also holds ARNs, status, dates...
    accepted = aws.ecs.meta.service_model.operation_model("RegisterTaskDefinition").input_shape.members
    revision = {key: value for key, value in latest.items() if key in accepted}
    names = [c["name"] for c in revision["containerDefinitions"]]
    if config.container not in names:
        raise Refused(f"{config.task_family} has no container {config.container!r} (has {names})")
    for container in revision["containerDefinitions"]:
        if container["name"] == config.container:
            container["image"] = image
    return aws.ecs.register_task_definition(**revision)["taskDefinition"]["taskDefinitionArn"]


def debounce(request: Request, config: Settings, aws: Aws) -> dict:
    """Start a run for an upload only if it is still the newest .csv under its model's prefix."""
    listed, pages = {}, aws.s3.get_paginator("list_objects_v2")
    # The listing alone gives both sides of the comparison (same clock and precision); it is
    # strongly consistent, so an upload it does not show was deleted.
    for page in pages.paginate(Bucket=config.bucket, Prefix=f"{config.data_prefix}/{request.model}/",
                               Delimiter="/"):
        listed.update({o["Key"]: o["LastModified"] for o in page.get("Contents", [])
                       if o["Key"].lower().endswith(".csv")})
    # S3 notifications URL-encode keys ("a b.csv" -> "a+b.csv"): accept either spelling.
    key = request.dataset if request.dataset in listed else unquote_plus(request.dataset)
    if key not in listed:
        return outcome("ignored", request, f"deleted: s3://{config.bucket}/{key} is no longer there")
    newest = max(listed, key=lambda k: (listed[k], k))
    if newest != key:
        return outcome("ignored", request, f"debounced: a newer upload {newest} follows")
    request.dataset = f"s3://{config.bucket}/{key}"  # from here on, the URI the run reads
    request.trigger = f"data {request.dataset}"
    return start(request, config, aws)


def start(request: Request, config: Settings, aws: Aws, task_definition: str = "") -> dict:
    """Take the model's lock and run a task; if a live run holds it, record the event on it."""
    table, key = aws.dynamodb, {"model": {"S": request.model}}
    for _ in range(3):  # the holder may stop between our conditional writes: look again
        now = int(time.time())
        free = "attribute_not_exists(model) OR lease_until < :now"
        if lock(request, config, aws, free, {":now": num(now)}):
            return launch(request, config, aws, task_definition, "")
        held = table.get_item(TableName=config.runs_table, Key=key, ConsistentRead=True).get("Item")
        holder = held["task_arn"]["S"] if held else ""
        if holder.startswith("arn:") and task_stopped(holder, config, aws) and lock(
                request, config, aws, "task_arn = :holder", {":holder": {"S": holder}}):
            return launch(request, config, aws, task_definition, f"took over from {holder} (stopped); ")
        values = {":one": num(1), ":trigger": {"S": request.trigger}, ":now": num(now)}
        update = "ADD pending_count :one SET pending_trigger = :trigger, pending_at = :now"
        if request.dataset:  # keep the newest dataset; an event without one leaves it alone
            update, values[":dataset"] = update + ", pending_dataset = :dataset", {"S": request.dataset}
        item = held and conditional(table.update_item, TableName=config.runs_table, Key=key,
                                    UpdateExpression=update, ExpressionAttributeValues=values,
                                    ConditionExpression="attribute_exists(model)", ReturnValues="ALL_NEW")
        if item:
            count = item["Attributes"]["pending_count"]["N"]
            return outcome("recorded", request, f"{holder} holds the lock; {count} event(s) pending", holder)
    return outcome("failed", request, "the lock kept changing hands")


def num(value: int) -> dict:
    """A DynamoDB number."""
    return {"N": str(value)}


def conditional(call, **params) -> dict | None:
    """A conditional DynamoDB write's answer, or None when its condition did not hold (an answer,
    not a fault)."""
    try:
        return call(**params)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return None
        raise


def lock(request: Request, config: Settings, aws: Aws, condition: str, values: dict) -> bool:
    """Write the model's lock item, task "starting", if `condition` holds."""
    now = int(time.time())
    item = {"model": {"S": request.model}, "task_arn": {"S": STARTING}, "trigger": {"S": request.trigger},
            "started_at": num(now), "lease_until": num(now + STARTING_LEASE)}
    if request.dataset:
        item["dataset"] = {"S": request.dataset}
    return conditional(aws.dynamodb.put_item, TableName=config.runs_table, Item=item,
                       ConditionExpression=condition, ExpressionAttributeValues=values) is not None


def task_stopped(arn: str, config: Settings, aws: Aws) -> bool:
    """Whether ECS reports the task stopped or no longer knows it (its STOPPED event was lost)."""
    tasks = aws.ecs.describe_tasks(cluster=config.cluster, tasks=[arn]).get("tasks") or []
    return not tasks or tasks[0].get("lastStatus") == "STOPPED"


def launch(request: Request, config: Settings, aws: Aws, task_definition: str, note: str) -> dict:
    """RunTask, holding the lock; note the task on the lock, or release it if no task started."""
    table, key, starting = aws.dynamodb, {"model": {"S": request.model}}, {":s": {"S": STARTING}}
    try:
        answer = aws.ecs.run_task(**run_task_request(request, config, task_definition))
        problem = "; ".join(f"{f.get('arn', '')} {f.get('reason', '')}" for f in answer.get("failures") or [])
        problem = problem or ("" if answer.get("tasks") else "no task in the answer")
    except (ClientError, BotoCoreError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        conditional(table.delete_item, TableName=config.runs_table, Key=key,
                    ConditionExpression="task_arn = :s", ExpressionAttributeValues=starting)
        return outcome("failed", request, f"{note}RunTask failed: {problem.strip()}; lock released")
    arn = answer["tasks"][0]["taskArn"]
    try:
        table.update_item(TableName=config.runs_table, Key=key, ConditionExpression="task_arn = :s",
                          UpdateExpression="SET task_arn = :arn, lease_until = :lease",
                          ExpressionAttributeValues={**starting, ":arn": {"S": arn},
                                                     ":lease": num(int(time.time()) + config.lease_seconds)})
    except ClientError as exc:
        # The task runs, so report it started (a retry would start another); "starting" expires soon.
        note += f"lock not updated ({exc}); "
    return outcome("started", request, f"{note}{request.trigger}", arn)


def run_task_request(request: Request, config: Settings, task_definition: str) -> dict:
    """RunTask's parameters: the training container's command and environment for this run."""
    command = ["python", "-m", "model", "train", "--plan", config.plan, "--model", request.model]
    if request.dataset:
        command += ["--dataset", request.dataset]
    if config.promote:
        command += ["--promote", config.promote]
    network = {"subnets": list(config.subnets), "assignPublicIp": config.assign_public_ip}
    if config.security_groups:
        network["securityGroups"] = list(config.security_groups)
    return {
        "cluster": config.cluster, "taskDefinition": task_definition or config.task_family,
        "launchType": "FARGATE", "count": 1, "group": f"train:{request.model}", "startedBy": STARTED_BY,
        "networkConfiguration": {"awsvpcConfiguration": network},
        "overrides": {"containerOverrides": [{
            "name": config.container, "command": command,
            "environment": [{"name": "MODEL_NAME", "value": request.model},
                            {"name": "TRAINING_TRIGGER", "value": request.trigger}]}]},
    }


def release(request: Request, config: Settings, aws: Aws) -> list[dict]:
    """A training task stopped: free its model's lock if it held it, then run what was recorded."""
    key = {"model": {"S": request.model}}
    old = conditional(aws.dynamodb.delete_item, TableName=config.runs_table, Key=key, ReturnValues="ALL_OLD",
                      ConditionExpression="task_arn = :arn",
                      ExpressionAttributeValues={":arn": {"S": request.task_arn}})
    if old is None:
        return [outcome("ignored", request, f"{request.task_arn} does not hold the lock", request.task_arn)]
    outcomes, old = [outcome("released", request, request.stopped, request.task_arn)], old["Attributes"]
    pending = int(old.get("pending_count", {}).get("N", "0"))
    if pending:
        rerun = Request(kind="pending", model=request.model, trigger=f"pending after {request.task_arn}",
                        dataset=old.get("pending_dataset", {}).get("S", ""))
        outcomes.append(start(rerun, config, aws))
        recorded = old.get("pending_trigger", {}).get("S", "")
        outcomes[-1]["reason"] += f" ({pending} event(s) recorded, the last: {recorded})"
    return outcomes
