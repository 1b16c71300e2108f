"""`scripts/stack` against the moto server: the stack is created, read back through each service's own
API, updated, planned, refused and destroyed for real (moto's CloudFormation; what it skips, scaling and
alarms, is checked from the rendered template in tests/test_stack_template.py)."""

from __future__ import annotations

import json
import re
import subprocess
import uuid

import pytest
from helpers import ROOT

IMAGE_DIGEST = "sha256:" + "c" * 64


def stack(env, *args, timeout=300):
    return subprocess.run([str(ROOT / "scripts/stack"), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=ROOT)


def outputs_of(result) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in result.stdout.splitlines()
                if ": " in line and not line.startswith("stack: "))


@pytest.fixture
def names(aws_env):
    """A fresh stack and environment name (the moto server lives for the whole session)."""
    suffix = uuid.uuid4().hex[:8]
    return {"env": {**aws_env, "AWS_DEFAULT_REGION": "us-east-1"}, "stack": f"s-{suffix}",
            "environment": f"t{suffix}"}


def deploy_stack(names, *params: str) -> dict:
    """Deploy with an image (so the service runs tasks); the names, outputs and log."""
    registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    image = f"{registry}/{names['environment']}-model-service@{IMAGE_DIGEST}"
    args = ["--param", f"EnvironmentName={names['environment']}", "--param", f"Image={image}"]
    for param in params:
        args += ["--param", param]
    result = stack(names["env"], "deploy", "--stack-name", names["stack"], *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    return {**names, "outputs": outputs_of(result), "image": image, "log": result.stdout}


@pytest.fixture
def deployed(names):
    """A stack with its own VPC."""
    return deploy_stack(names)


@pytest.fixture
def deployed_in_existing_vpc(names):
    """A stack in a VPC made outside it (ExistingVpcId, ExistingSubnetIds)."""
    import boto3

    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.7.{i}.0/24", AvailabilityZone=f"us-east-1{z}")
               ["Subnet"]["SubnetId"] for i, z in ((0, "a"), (1, "b"))]
    return {**deploy_stack(names, f"ExistingVpcId={vpc}", f"ExistingSubnetIds={','.join(subnets)}"),
            "vpc": vpc}


def test_deploy_creates_what_the_rollout_acts_on(deployed):
    import boto3

    out, environment = deployed["outputs"], deployed["environment"]
    assert "CREATE_COMPLETE" in deployed["log"] and "(CREATE): " in deployed["log"]
    assert out["ClusterName"] == f"{environment}-cluster"
    assert out["ServiceName"] == f"{environment}-model-service"
    assert out["ModelStore"] == f"s3://{out['BucketName']}/models"
    assert out["ServiceUrl"].startswith("http://")

    ecs = boto3.client("ecs")
    service = ecs.describe_services(cluster=out["ClusterName"], services=[out["ServiceName"]])["services"][0]
    # moto's CloudFormation makes the service from its name, cluster, task definition and count only
    # (launch type, network, load balancer and deployment settings: tests/test_stack_template.py).
    assert service["desiredCount"] == 2
    definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    container = definition["containerDefinitions"][0]
    assert container["image"] == deployed["image"]
    environment_vars = {e["name"]: e["value"] for e in container["environment"]}
    assert environment_vars["MODEL_STORE"] == out["ModelStore"] and environment_vars["MODEL_NAME"] == "digits"
    # (moto keeps only family, containers and memory of a CloudFormation task definition.)

    elb = boto3.client("elbv2")
    group = elb.describe_target_groups(Names=[f"{environment}-tg"])["TargetGroups"][0]
    assert group["HealthCheckPath"] == "/ready" and group["Port"] == 8080 and group["TargetType"] == "ip"

    s3 = boto3.client("s3")  # (moto's CloudFormation applies encryption and tags to a bucket, no more)
    rules = s3.get_bucket_encryption(Bucket=out["BucketName"])["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    repository = boto3.client("ecr").describe_repositories(repositoryNames=[out["EcrRepository"]])
    assert repository["repositories"][0]["repositoryUri"] == out["EcrRepositoryUri"]
    iam = boto3.client("iam")
    task_role = out["TaskRoleArn"].rsplit("/", 1)[-1]
    policy = str(iam.get_role_policy(RoleName=task_role, PolicyName="read-the-model-store")["PolicyDocument"])
    assert "s3:GetObject" in policy and "s3:ListBucket" in policy and "s3:PutObject" not in policy
    assert f"{out['BucketName']}/models/*" in policy  # the store prefix only (tests/test_stack_iam.py)
    groups = boto3.client("logs").describe_log_groups(logGroupNamePrefix=out["LogGroupName"])["logGroups"]
    assert groups[0]["retentionInDays"] == 30


def test_deploy_creates_the_training_task_and_its_trigger(deployed):
    import boto3

    out = deployed["outputs"]
    assert out["TrainTaskFamily"] == f"{deployed['environment']}-train" and out["DataPrefix"] == "data"
    subnets = out["TrainSubnets"].split(",")
    assert len(subnets) == 2 and all(s.startswith("subnet-") for s in subnets)

    definition = boto3.client("ecs").describe_task_definition(taskDefinition=out["TrainTaskFamily"])[
        "taskDefinition"]
    (container,) = definition["containerDefinitions"]
    assert container["name"] == "train"
    # No TrainImage given: the repository's placeholder tag, until a train- image is pushed.
    assert container["image"] == f"{out['EcrRepositoryUri']}:train-none"
    assert container["command"][-2:] == ["--model", "digits"]
    assert {e["name"]: e["value"] for e in container["environment"]}["MODEL_STORE"] == out["ModelStore"]

    function = boto3.client("lambda").get_function_configuration(FunctionName=out["TrainTriggerFunction"])
    assert (function["Runtime"], function["Handler"], function["Timeout"]) == ("python3.11", "index.handler",
                                                                               60)
    variables = function["Environment"]["Variables"]
    assert variables["CLUSTER"] == out["ClusterName"] and variables["TASK_FAMILY"] == out["TrainTaskFamily"]
    assert variables["SUBNETS"] == out["TrainSubnets"]
    assert variables["SECURITY_GROUPS"] == out["TrainSecurityGroup"]
    assert variables["RUNS_TABLE"] == out["TrainRunsTable"]
    assert variables["REPOSITORY_NAME"] == out["EcrRepository"]
    assert variables["DATA_BUCKET"] == out["BucketName"]
    assert (variables["DATA_PREFIX"], variables["PROMOTE"], variables["MODEL_NAME"]) == ("data", "", "digits")

    table = boto3.client("dynamodb").describe_table(TableName=out["TrainRunsTable"])["Table"]
    assert table["KeySchema"] == [{"AttributeName": "model", "KeyType": "HASH"}]

    sqs = boto3.client("sqs")
    queue = sqs.get_queue_url(QueueName=f"{deployed['environment']}-train-data")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert attributes["DelaySeconds"] == "300" and int(attributes["VisibilityTimeout"]) >= 6 * 60
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"].endswith(
        f"{deployed['environment']}-train-dead-letters")
    (mapping,) = boto3.client("lambda").list_event_source_mappings(FunctionName=out["TrainTriggerFunction"])[
        "EventSourceMappings"]
    assert mapping["EventSourceArn"] == attributes["QueueArn"] and mapping["BatchSize"] == 10
    groups = boto3.client("logs").describe_log_groups(
        logGroupNamePrefix=f"/aws/lambda/{out['TrainTriggerFunction']}")["logGroups"]
    assert [g["retentionInDays"] for g in groups] == [30]


def test_outputs_as_the_deploy_variables(deployed):
    result = stack(deployed["env"], "outputs", "--stack-name", deployed["stack"], "--format", "env")
    assert result.returncode == 0, result.stderr
    exported = dict(line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines())
    assert exported["ECS_CLUSTER"] == deployed["outputs"]["ClusterName"]
    assert exported["MODEL_STORE"] == deployed["outputs"]["ModelStore"]
    assert set(exported) >= {"ECR_REPOSITORY", "ECS_SERVICE", "SERVICE_URL", "TASK_ROLE_ARN",
                             "EXECUTION_ROLE_ARN", "LOG_GROUP", "TASK_FAMILY", "TRAIN_TASK_FAMILY",
                             "TRAIN_SUBNETS", "TRAIN_SECURITY_GROUPS", "DATA_PREFIX", "TRAIN_RUNS_TABLE",
                             "TRAIN_TRIGGER_FUNCTION"}
    assert exported["TRAIN_SUBNETS"] == deployed["outputs"]["TrainSubnets"]


def test_a_second_plan_has_no_changes_and_an_update_plan_keeps_what_the_service_runs(deployed, tmp_path):
    import boto3

    env, name, out = deployed["env"], deployed["stack"], deployed["outputs"]
    again = stack(env, "plan", "--stack-name", name)
    assert again.returncode == 16, again.stdout + again.stderr
    assert again.stderr.strip() == \
        f"error: stack {name} already matches the template and parameters: no changes"

    # A rollout moved the image since: the stack must not move it back.
    ecs = boto3.client("ecs")
    service = ecs.describe_services(cluster=out["ClusterName"], services=[out["ServiceName"]])["services"][0]
    current = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    rolled = deployed["image"].replace("c" * 64, "d" * 64)
    from deploy.task_def import derive

    arn = ecs.register_task_definition(**derive(current, image=rolled))["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=out["ClusterName"], service=out["ServiceName"], taskDefinition=arn)

    planned = stack(env, "plan", "--stack-name", name, "--param", "DesiredCount=3", "--out", str(tmp_path))
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert f"keeping what the service runs: image {rolled}" in planned.stdout
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["kind"] == "UPDATE" and plan["change_set"] and plan["parameters"]["DesiredCount"] == "3"
    assert (tmp_path / "plan.txt").read_text().startswith(f"change set {plan['change_set']} of stack {name}")

    assert plan["changes"]  # which ones is moto's guess (it lists what AWS would not): not checked here
    # Executing an update is where moto 5.2 stops (its ELBv2 listener update raises KeyError
    # 'TargetGroupArn'); the update's states are covered with botocore's Stubber in test_stack_states.py.
    boto3.client("cloudformation").delete_change_set(StackName=name, ChangeSetName=plan["change_set"])


def test_an_update_keeps_the_training_image_a_push_registered(deployed):
    import boto3

    from deploy.task_def import derive

    env, name, out = deployed["env"], deployed["stack"], deployed["outputs"]
    ecs = boto3.client("ecs")
    family = out["TrainTaskFamily"]
    placeholder = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
    assert placeholder["containerDefinitions"][0]["image"].endswith(":train-none")
    # What the trigger does on a push of train-<commit>: a revision with the pushed image by digest.
    pushed = deployed["image"].replace("c" * 64, "e" * 64)
    ecs.register_task_definition(**derive(placeholder, image=pushed))

    planned = stack(env, "plan", "--stack-name", name, "--param", "DesiredCount=3")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert f"keeping the training image: {pushed}" in planned.stdout
    again = stack(env, "plan", "--stack-name", name, "--param", "TrainImage=", "--param", "DesiredCount=3")
    assert "keeping the training image" not in again.stdout  # the caller chose: the caller wins


def test_destroy_refuses_a_store_with_models_unless_forced(deployed_in_existing_vpc, trained_digits):
    # In an existing VPC: moto 5.2 deletes a stack's own VPC before what is in it and fails
    # (DependencyViolation); AWS deletes in dependency order. The existing VPC path is covered too.
    import boto3

    from model.store import ModelStore

    deployed = deployed_in_existing_vpc
    env, name, out = deployed["env"], deployed["stack"], deployed["outputs"]
    groups = boto3.client("ec2").describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [deployed["vpc"]]}])["SecurityGroups"]
    assert any("load balancer" in g["Description"] for g in groups)  # made in the given VPC
    artifact, manifest = trained_digits
    ModelStore(out["ModelStore"]).publish(artifact, manifest)

    refused = stack(env, "destroy", "--stack-name", name, "--yes")
    assert refused.returncode == 8, refused.stdout + refused.stderr
    assert "holds 1 model version(s)" in refused.stderr and "--force" in refused.stderr
    assert boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]["StackStatus"] \
        == "CREATE_COMPLETE"

    unconfirmed = stack(env, "destroy", "--stack-name", name)  # no terminal, no --yes
    assert unconfirmed.returncode == 9 and "--yes" in unconfirmed.stderr

    forced = stack(env, "destroy", "--stack-name", name, "--yes", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "emptied the model bucket" in forced.stdout and f"stack {name} deleted" in forced.stdout
    names = [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
    assert out["BucketName"] not in names


@pytest.mark.parametrize(
    ("param", "text"),
    [
        ("Colour=blue", "unknown parameter Colour; the template takes: "),
        ("VpcCidr=10.0.0.1/16", "is not a valid CIDR block"),
        ("VpcCidr=10.0.0.0/33", "does not match"),
        ("SubnetACidr=10.99.0.0/20", "is not inside VpcCidr=10.42.0.0/16"),
        ("CertificateArn=arn:aws:iam::123456789012:server-certificate/x",
         "(empty, or an ACM certificate ARN)"),
        ("DesiredCount=0", "is outside 1..50"),
        ("ExistingVpcId=vpc-0123456789abcdef0", "ExistingVpcId needs ExistingSubnetIds"),
    ],
)
def test_bad_parameters_are_one_line_and_create_nothing(names, param, text):
    import boto3

    result = stack(names["env"], "deploy", "--stack-name", names["stack"], "--param", param)
    assert result.returncode == 9, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], result.stderr
    stacks = boto3.client("cloudformation").list_stacks()["StackSummaries"]
    assert names["stack"] not in [s["StackName"] for s in stacks]


def test_plan_of_a_new_stack_lists_additions_and_leaves_nothing_behind(names):
    import boto3

    result = stack(names["env"], "plan", "--stack-name", names["stack"], "--param",
                   f"EnvironmentName={names['environment']}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(CREATE): " in result.stdout
    for name, kind in (("Service", "AWS::ECS::Service"), ("TrainTriggerFunction", "AWS::Lambda::Function"),
                       ("TrainDataQueue", "AWS::SQS::Queue"), ("TrainOnScheduleRule", "AWS::Events::Rule")):
        assert re.search(rf"\bAdd +{name} +{kind}\b", result.stdout), (name, result.stdout)
    assert "plan only: change set deleted" in result.stdout
    stacks = boto3.client("cloudformation").list_stacks()["StackSummaries"]
    live = [s for s in stacks if s["StackName"] == names["stack"] and s["StackStatus"] != "DELETE_COMPLETE"]
    assert live == []
