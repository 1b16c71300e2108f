"""Least privilege, checked: the roles in infra/stack.yaml against the calls the code really makes.

The deployer policy must allow every AWS call the pipelines' code makes. The calls are not listed by
hand: they are recorded from botocore's own events while the code runs against moto (publish,
promote, load, ECR resolve and login, an ECS rollout with a promotion, reading the stack's outputs),
and read from the ECS and ECR clients' source for the paths such a run does not take.
The task role is evaluated for the requests the service makes and for ones it must not be able to.
"""

from __future__ import annotations

import fnmatch
import json
import uuid

import pytest

from deploy.stack.template import load, render

# S3's IAM actions are not its API's operation names; every other service here uses the same words.
S3_ACTIONS = {"ListObjectsV2": "s3:ListBucket", "HeadBucket": "s3:ListBucket",
              "HeadObject": "s3:GetObject", "GetObject": "s3:GetObject", "PutObject": "s3:PutObject",
              "DeleteObject": "s3:DeleteObject"}
# Calls the code makes that the deployer is meant to be refused: the store's pre-flight check deletes
# its probe object, and a publisher that may not delete passes it all the same (model/backends.py).
REFUSED_AND_TOLERATED = {"s3:DeleteObject"}
# What `podman push` asks ECR's registry endpoint for (not boto3 calls): the push permissions AWS
# documents for a repository, which the policy must grant too.
REGISTRY_PUSH = {"ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart",
                 "ecr:CompleteLayerUpload", "ecr:PutImage", "ecr:BatchGetImage"}


def iam_action(service: str, operation: str) -> str:
    if service == "s3":
        return S3_ACTIONS[operation]
    return f"{service}:{operation}"


def actions_of(statement_list: list[dict]) -> set[str]:
    return {a for s in statement_list
            for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}


def statements(rendered: dict, resource: str, policy_name: str | None = None) -> list[dict]:
    properties = rendered["Resources"][resource]["Properties"]
    if "PolicyDocument" in properties:
        return properties["PolicyDocument"]["Statement"]
    policy = next(p for p in properties["Policies"] if p.get("PolicyName") == policy_name)
    return policy["PolicyDocument"]["Statement"]


def allows(statement_list: list[dict], action: str, resource: str | None = None,
           context: dict | None = None) -> bool:
    """A small IAM evaluator: Allow statements only (these policies have no Deny), wildcard matching.

    Without a resource only the action is checked (for policies whose ARNs are still intrinsics).
    """
    for statement in statement_list:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if statement["Effect"] != "Allow" or not any(fnmatch.fnmatchcase(action, a) for a in actions):
            continue
        if resource is not None:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [
                statement["Resource"]]
            if not any(fnmatch.fnmatchcase(resource, r) for r in resources):
                continue
        conditions = statement.get("Condition", {}) if resource is not None else {}
        if not all(holds(operator, pairs, context or {}) for operator, pairs in conditions.items()):
            continue
        return True
    return False


# The condition operators these policies use; a key missing from the request's context fails them, as in IAM.
OPERATORS = {"StringLike": fnmatch.fnmatchcase, "ArnLike": fnmatch.fnmatchcase,
             "StringEquals": str.__eq__, "ArnEquals": str.__eq__}


def holds(operator: str, pairs: dict, context: dict) -> bool:
    test = OPERATORS[operator]
    return all(key in context and any(test(context[key], v) for v in (values if isinstance(values, list)
                                                                        else [values]))
               for key, values in pairs.items())


ACCOUNT, REGION, ENVIRONMENT = "123456789012", "us-east-1", "mlops"
CLUSTER = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{ENVIRONMENT}-cluster"
LOGS = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:"
# What !GetAtt X.Arn is for the stack's resources (a log group's ARN ends in :*, as CloudFormation has it).
ARNS = {"Cluster": CLUSTER, "TaskRole": f"arn:aws:iam::{ACCOUNT}:role/{ENVIRONMENT}-model-service-task",
        "ExecutionRole": f"arn:aws:iam::{ACCOUNT}:role/{ENVIRONMENT}-model-service-execution",
        "TrainingTaskRole": f"arn:aws:iam::{ACCOUNT}:role/{ENVIRONMENT}-train-task",
        "TrainRunsTable": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{ENVIRONMENT}-train-runs",
        "TrainDataQueue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{ENVIRONMENT}-train-data",
        "TrainDeadLetterQueue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{ENVIRONMENT}-train-dead-letters",
        "LogGroup": f"{LOGS}/ecs/{ENVIRONMENT}-model-service:*",
        "TrainTriggerLogGroup": f"{LOGS}/aws/lambda/{ENVIRONMENT}-train-trigger:*"}
TRAIN_FAMILY = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{ENVIRONMENT}-train"
SERVICE_FAMILY = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{ENVIRONMENT}-model-service"


def concrete(value, bucket: str, prefix: str, data_prefix: str = "data"):
    """The few intrinsic functions the role policies use, with the given bucket and prefixes (and the
    names above for the rest)."""
    text = json.dumps(value)
    text = text.replace('{"Fn::GetAtt": ["ModelBucket", "Arn"]}', json.dumps(f"arn:aws:s3:::{bucket}"))
    for name, arn in ARNS.items():
        text = text.replace(json.dumps({"Fn::GetAtt": [name, "Arn"]}), json.dumps(arn))
    resolved = json.loads(text)
    names = {"${ModelBucket.Arn}": f"arn:aws:s3:::{bucket}", "${StorePrefix}": prefix,
             "${DataPrefix}": data_prefix, "${BatchPrefix}": "batch", "${AWS::Partition}": "aws",
             "${AWS::Region}": REGION,
             "${AWS::AccountId}": ACCOUNT, "${EnvironmentName}": ENVIRONMENT}

    def walk(item):
        if isinstance(item, dict) and set(item) == {"Fn::Sub"}:
            text = item["Fn::Sub"]
            for name, replacement in names.items():
                text = text.replace(name, replacement)
            return text
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        return item

    return walk(resolved)


@pytest.fixture(scope="module")
def rendered():
    return render(load())


def test_the_task_role_only_reads_the_store_prefix(rendered):
    task = concrete(statements(rendered, "TaskRole", "read-the-model-store"), "b", "models")
    assert allows(task, "s3:GetObject", "arn:aws:s3:::b/models/digits/versions/v/model.joblib")
    assert allows(task, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "models/digits/versions/"})
    assert not allows(task, "s3:GetObject", "arn:aws:s3:::b/other-team/secrets.json")
    assert not allows(task, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "other-team/"})
    for write in ("s3:PutObject", "s3:DeleteObject", "s3:PutObjectAcl", "s3:DeleteBucket"):
        assert not allows(task, write, "arn:aws:s3:::b/models/digits/aliases/production.json"), write
    assert not allows(task, "s3:GetObject", "arn:aws:s3:::another-bucket/models/x")


def test_the_task_role_writes_only_new_captured_predictions_of_its_model(rendered):
    capture = concrete(statements(rendered, "TaskRole", "write-captured-predictions"), "b", "models")
    capture = json.loads(json.dumps(capture).replace("${ModelName}", "digits"))
    key = "models/digits/capture/version=v/date=2026-12-02/hour=17/20261202T170000Z-h-1-000001.jsonl"
    assert allows(capture, "s3:PutObject", f"arn:aws:s3:::b/{key}")
    assert actions_of(capture) == {"s3:PutObject"}
    for other in ("models/digits/versions/v/model.joblib", "models/digits/aliases/production.json",
                  "models/other-model/capture/x.jsonl", "data/digits/new.csv"):
        assert not allows(capture, "s3:PutObject", f"arn:aws:s3:::b/{other}"), other


def test_the_task_role_may_verify_signatures_with_the_one_key_and_nothing_else(rendered):
    statement = statements(rendered, "TaskRole", "verify-model-signatures")
    assert actions_of(statement) == {"kms:Verify"}
    condition, given, otherwise = statement[0]["Resource"]["Fn::If"]
    assert condition == "HasVerifyKey"
    assert given == {"Fn::Select": [1, {"Fn::Split": ["kms:", {"Ref": "ModelVerifyKey"}]}]}
    assert otherwise["Fn::Sub"].endswith(":key/none")  # no key given: a grant on no key


def test_the_execution_role_only_pulls_this_repository_and_writes_this_log_group(rendered):
    execution = statements(rendered, "ExecutionRole", "pull-image-and-log")
    assert actions_of(execution) == {
        "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer", "logs:CreateLogStream", "logs:PutLogEvents"}
    wildcard = [s for s in execution if s["Resource"] == "*"]
    assert [s["Action"] for s in wildcard] == ["ecr:GetAuthorizationToken"]  # ECR offers no narrower form


@pytest.fixture
def recorded_calls(aws_env, local_store, tmp_path, trained_digits):
    """Every (service, operation) botocore sends while the pipelines' code runs against moto."""
    import boto3

    calls: set[tuple[str, str]] = set()
    listings: list[tuple[str, dict]] = []  # S3 calls that need s3:ListBucket, with their parameters

    def record(model, **_):
        calls.add((model.service_model.signing_name, model.name))

    def record_listing(params, model, **_):
        if S3_ACTIONS.get(model.name) == "s3:ListBucket":
            listings.append((model.name, dict(params)))

    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register("before-call.*.*", record)
    boto3.DEFAULT_SESSION.events.register("before-parameter-build.s3.*", record_listing)
    try:
        run_the_pipelines_code(trained_digits)
        yield calls, listings
    finally:
        boto3.DEFAULT_SESSION.events.unregister("before-call.*.*", record)
        boto3.DEFAULT_SESSION.events.unregister("before-parameter-build.s3.*", record_listing)


def run_the_pipelines_code(trained_digits) -> None:
    """Publish, promote, load; resolve an image and log in to ECR; roll out with a promotion."""
    import boto3

    from deploy.aws import client
    from deploy.ecr import EcrClient, resolve_image
    from deploy.ecs import EcsClient
    from deploy.rollout.core import Rollout
    from deploy.rollout.ecs import EcsRequest, plan_ecs
    from deploy.stack.cloudformation import CloudFormation
    from model.loader import load_model
    from model.store import ModelStore

    suffix = uuid.uuid4().hex[:8]
    bucket = f"iam-{suffix}"
    # Set-up the pipelines do not do (the stack does): made with a separate client, not recorded.
    setup = boto3.session.Session()
    setup.client("s3").create_bucket(Bucket=bucket)
    ecr_setup, ecs_setup = setup.client("ecr"), setup.client("ecs")
    ecr_setup.create_repository(repositoryName=f"repo-{suffix}")
    digest = ecr_setup.put_image(repositoryName=f"repo-{suffix}", imageTag="t", imageManifest=json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "config": {"digest": "sha256:" + "1" * 64}, "layers": []}))["image"]["imageId"]["imageDigest"]
    ecs_setup.create_cluster(clusterName=f"c-{suffix}")
    arn = ecs_setup.register_task_definition(family=f"f-{suffix}", containerDefinitions=[
        {"name": "model-service", "image": f"repo@{digest}", "essential": True, "memory": 512}])[
        "taskDefinition"]["taskDefinitionArn"]
    ecs_setup.create_service(cluster=f"c-{suffix}", serviceName="svc", taskDefinition=arn, desiredCount=1)
    setup.client("cloudformation").create_stack(StackName=f"s-{suffix}", TemplateBody=json.dumps(
        {"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}))

    setup.client("s3").put_object(Bucket=bucket, Key="data/digits/2026-12-01.csv", Body=b"a,b\n1,2\n")

    # What the pipelines run.
    store = ModelStore(f"s3://{bucket}/models")
    artifact, manifest = trained_digits
    store.check_writable()  # what `python -m model publish` (and train, import) does first
    store.publish(artifact, manifest)
    store.move_alias("digits", "production", manifest["version"])
    load_model(store, "digits", alias="production")
    ecr = EcrClient(client("ecr"))
    resolve_image(ecr, f"repo-{suffix}:t")
    ecr.login()
    CloudFormation(client("cloudformation")).stack(f"s-{suffix}")
    # The monitor pipeline: the drift check reads the captured predictions, finds the newest data
    # for a retrain, and the train stage reads it.
    from deploy.drift_check import newest_data
    from model.cli import main as model_cli

    assert model_cli(["monitor", "--store", f"s3://{bucket}/models", "--since", "1h"]) == 4  # none yet
    dataset = newest_data(f"s3://{bucket}/models", "digits", "data")
    assert dataset == f"s3://{bucket}/data/digits/2026-12-01.csv"
    client("s3").get_object(Bucket=bucket, Key="data/digits/2026-12-01.csv")
    ecs = EcsClient(client("ecs"))
    request = EcsRequest(cluster=f"c-{suffix}", service="svc", promote=manifest["version"],
                         image=f"repo-{suffix}:t", timeout=0, rollback_timeout=0, poll=0.01)
    target, move = plan_ecs(request, ecs, ecr, store, log=lambda line: None)
    try:
        Rollout(target, store=store, alias_move=move, log=lambda line: None).execute()
    except Exception as exc:  # moto never completes a deployment: the rollback path runs too
        assert getattr(exc, "exit_code", None) == 12, exc


def calls_in_the_clients() -> set[tuple[str, str]]:
    """The API calls the thin clients the deploy pipeline uses can make (`self.boto.<method>(...)`),
    found in their source: some only happen on paths a run against moto does not take."""
    import ast

    import boto3
    from helpers import ROOT

    found = set()
    for path, service in (("deploy/ecs.py", "ecs"), ("deploy/ecr.py", "ecr")):
        mapping = boto3.client(service, region_name="us-east-1").meta.method_to_api_mapping
        for node in ast.walk(ast.parse((ROOT / path).read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "boto"):
                found.add((service, mapping[node.func.attr]))
    # scripts/train-task's runner holds its clients as `self.ecs` and `self.logs`.
    for service in ("ecs", "logs"):
        mapping = boto3.client(service, region_name="us-east-1").meta.method_to_api_mapping
        for node in ast.walk(ast.parse((ROOT / "deploy/training/runner.py").read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == service
                    and isinstance(node.func.value.value, ast.Name) and node.func.value.value.id == "self"):
                found.add((service, mapping[node.func.attr]))
    return found


def test_every_call_the_pipelines_make_is_allowed_to_the_deployer(rendered, recorded_calls):
    calls, _ = recorded_calls
    deployer = statements(rendered, "DeployerPolicy")
    needed = {iam_action(service, operation) for service, operation in calls | calls_in_the_clients()}
    assert {"ecs:UpdateService", "ecs:RegisterTaskDefinition", "s3:PutObject", "ecr:DescribeImages",
            "cloudformation:DescribeStacks", "s3:DeleteObject"} <= needed  # the recording saw the whole run
    assert {"ecs:RunTask", "logs:GetLogEvents"} <= needed  # and the clients' source scripts/train-task's
    missing = sorted(a for a in (needed - REFUSED_AND_TOLERATED) | REGISTRY_PUSH if not allows(deployer, a))
    assert missing == [], f"the deployer policy lacks {missing}"
    assert not any(allows(deployer, a) for a in REFUSED_AND_TOLERATED)
    unused = sorted(actions_of(deployer) - needed - REGISTRY_PUSH - {"iam:PassRole"})
    assert unused == [], f"the deployer policy grants actions no code calls: {unused}"


def test_every_bucket_listing_the_pipelines_make_is_within_the_store_prefix(rendered, recorded_calls):
    """The deployer's s3:ListBucket is conditioned on s3:prefix under the store. A call without a
    prefix (HeadBucket, which the pre-flight check used) would be refused on real AWS: moto does not
    evaluate policies, so the conditions are evaluated here for each call as it was made."""
    _, listings = recorded_calls
    assert listings, "the run made no bucket listing: the recording is broken"
    deployer = concrete(statements(rendered, "DeployerPolicy"), listings[0][1]["Bucket"], "models")
    for operation, params in listings:
        context = {"s3:prefix": params["Prefix"]} if "Prefix" in params else {}
        assert allows(deployer, "s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}", context), (
            f"{operation} {params} would be refused to the deployer")


def test_the_deployer_reads_the_data_prefix_but_writes_nothing_there(rendered):
    deployer = concrete(statements(rendered, "DeployerPolicy"), "b", "models", data_prefix="data")
    assert allows(deployer, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "data/digits/"})
    assert allows(deployer, "s3:GetObject", "arn:aws:s3:::b/data/digits/2026-12-01.csv")
    assert not allows(deployer, "s3:PutObject", "arn:aws:s3:::b/data/digits/2026-12-01.csv")
    assert not allows(deployer, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "score/"})


def test_the_deployer_passes_only_the_task_roles_to_ecs(rendered):
    passing = [s for s in statements(rendered, "DeployerPolicy") if s["Action"] == "iam:PassRole"]
    assert len(passing) == 1
    assert passing[0]["Resource"] == [{"Fn::GetAtt": ["TaskRole", "Arn"]},
                                      {"Fn::GetAtt": ["ExecutionRole", "Arn"]},
                                      {"Fn::GetAtt": ["TrainingTaskRole", "Arn"]}]
    assert passing[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}


def test_the_deployer_runs_only_training_tasks_in_the_cluster_and_reads_their_log(rendered):
    deployer = concrete(statements(rendered, "DeployerPolicy"), "b", "models")
    in_cluster = {"ecs:cluster": CLUSTER}
    assert allows(deployer, "ecs:RunTask", f"{TRAIN_FAMILY}:7", in_cluster)
    assert not allows(deployer, "ecs:RunTask", f"{SERVICE_FAMILY}:7", in_cluster)
    assert not allows(deployer, "ecs:RunTask", f"{TRAIN_FAMILY}:7", {"ecs:cluster": CLUSTER + "-other"})
    assert not allows(deployer, "ecs:RunTask", f"{TRAIN_FAMILY}:7")
    task = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{ENVIRONMENT}-cluster/0123456789abcdef"
    assert allows(deployer, "ecs:StopTask", task, in_cluster) and allows(deployer, "ecs:DescribeTasks", task,
                                                                         in_cluster)
    assert not allows(deployer, "ecs:StopTask", task, {"ecs:cluster": CLUSTER + "-other"})
    stream = f"{LOGS}/ecs/{ENVIRONMENT}-model-service:log-stream:train/train/0123456789abcdef"
    assert allows(deployer, "logs:GetLogEvents", stream)
    assert not allows(deployer, "logs:GetLogEvents", f"{LOGS}/ecs/another-service:log-stream:x")
    ecs_tasks = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    for role in ("TrainingTaskRole", "ExecutionRole"):
        assert allows(deployer, "iam:PassRole", ARNS[role], ecs_tasks), role
    assert not allows(deployer, "iam:PassRole", ARNS["TrainingTaskRole"],
                      {"iam:PassedToService": "lambda.amazonaws.com"})


def test_the_training_task_role_reads_only_data_and_the_store(rendered):
    task = concrete(statements(rendered, "TrainingTaskRole", "read-data-publish-models"), "b", "models")
    assert actions_of(task) == {"s3:GetObject", "s3:PutObject", "s3:ListBucket"}
    assert allows(task, "s3:GetObject", "arn:aws:s3:::b/data/digits/2026-12-01.csv")
    assert allows(task, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "data/digits/"})
    for action in ("s3:GetObject", "s3:PutObject"):
        assert allows(task, action, "arn:aws:s3:::b/models/digits/versions/v/model.joblib"), action
    assert allows(task, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "models/digits/versions/"})
    assert not allows(task, "s3:PutObject", "arn:aws:s3:::b/data/digits/new.csv")  # data is read-only
    # scripts/score-tasks: batches in and out under BatchPrefix, never where a rule would fire
    for action in ("s3:GetObject", "s3:PutObject"):
        assert allows(task, action, "arn:aws:s3:::b/batch/2026-12/part-0.csv"), action
    assert allows(task, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "batch/2026-12/"})
    assert not allows(task, "s3:PutObject", "arn:aws:s3:::b/score/part-0.jsonl")
    assert not allows(task, "s3:GetObject", "arn:aws:s3:::b/other-team/secrets.json")
    assert not allows(task, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "other-team/"})
    assert not allows(task, "s3:ListBucket", "arn:aws:s3:::b")  # no prefix: the whole bucket
    assert not allows(task, "s3:DeleteObject", "arn:aws:s3:::b/models/digits/aliases/production.json")
    assert not allows(task, "s3:GetObject", "arn:aws:s3:::another-bucket/data/x.csv")


def trigger_policy(rendered) -> list[dict]:
    return concrete(statements(rendered, "TrainTriggerRole", "start-training-runs"), "b", "models")


def test_the_trigger_runs_only_the_training_family_and_passes_only_the_training_roles(rendered):
    trigger = trigger_policy(rendered)
    in_cluster = {"ecs:cluster": CLUSTER}
    assert allows(trigger, "ecs:RunTask", f"{TRAIN_FAMILY}:12", in_cluster)
    assert not allows(trigger, "ecs:RunTask", f"{SERVICE_FAMILY}:3", in_cluster)
    assert not allows(trigger, "ecs:RunTask", f"{TRAIN_FAMILY}:12", {"ecs:cluster": CLUSTER + "-other"})
    assert not allows(trigger, "ecs:StopTask", "*") and not allows(trigger, "ecs:UpdateService", "*")
    ecs_tasks = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    assert allows(trigger, "iam:PassRole", ARNS["TrainingTaskRole"], ecs_tasks)
    assert allows(trigger, "iam:PassRole", ARNS["ExecutionRole"], ecs_tasks)
    assert not allows(trigger, "iam:PassRole", ARNS["TaskRole"], ecs_tasks)  # the service's role
    assert not allows(trigger, "iam:PassRole", ARNS["TrainingTaskRole"],
                      {"iam:PassedToService": "lambda.amazonaws.com"})
    for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
        assert allows(trigger, action, ARNS["TrainRunsTable"]), action
        assert not allows(trigger, action, ARNS["TrainRunsTable"].replace("train-runs", "other")), action
    assert allows(trigger, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "data/digits/"})
    assert not allows(trigger, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "models/"})
    assert not any(allows(trigger, a, "arn:aws:s3:::b/models/x") for a in ("s3:GetObject", "s3:PutObject"))


# What the Lambda service does with the function's role, not the function's code: poll and delete the
# queue's messages (the event source mapping), dead-letter a failed event, write the log.
LAMBDA_SERVICE = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:SendMessage",
                  "logs:CreateLogStream", "logs:PutLogEvents"}


def calls_in_the_trigger() -> set[tuple[str, str]]:
    """The AWS calls deploy/training/trigger.py can make: every client method of the services it
    uses that its source names (called, or passed to a helper), and the paginators it asks for."""
    import ast

    import boto3
    from helpers import ROOT

    mappings = {s: boto3.client(s, region_name="us-east-1").meta.method_to_api_mapping
                for s in ("ecs", "dynamodb", "s3", "sqs")}
    found = set()
    for node in ast.walk(ast.parse((ROOT / "deploy/training/trigger.py").read_text())):
        names = []
        if isinstance(node, ast.Attribute):
            names.append(node.attr)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args
                and node.func.attr == "get_paginator" and isinstance(node.args[0], ast.Constant)):
            names.append(node.args[0].value)
        for name in names:
            found |= {(service, mapping[name]) for service, mapping in mappings.items()
                      if name in mapping and name != "get_paginator"}
    return found


def test_the_trigger_may_make_every_call_its_code_makes_and_no_other(rendered):
    trigger = trigger_policy(rendered)
    needed = {iam_action(service, operation) for service, operation in calls_in_the_trigger()}
    assert {"ecs:RunTask", "ecs:RegisterTaskDefinition", "dynamodb:PutItem", "s3:ListBucket"} <= needed
    missing = sorted(a for a in needed if not allows(trigger, a))
    assert missing == [], f"the trigger's role lacks {missing}"
    unused = sorted(actions_of(trigger) - needed - LAMBDA_SERVICE - {"iam:PassRole"})
    assert unused == [], f"the trigger's role grants actions its code does not call: {unused}"
