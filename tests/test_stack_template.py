"""infra/stack.yaml as rendered by scripts/stack: linted, scanned, and checked where moto cannot look.

moto's CloudFormation creates the resources (tests/test_stack_moto.py) but keeps few of their
properties and skips scaling, alarms and bucket policies; what a real account would apply is checked
here from the rendered template.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import IN_CI, ROOT

from deploy.stack.template import load, render, render_text


@pytest.fixture(scope="module")
def rendered() -> dict:
    return render(load())


@pytest.fixture(scope="module")
def rendered_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stack") / "stack.json"
    path.write_text(render_text())
    return path


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def test_cfn_lint_is_clean(rendered_file):
    result = subprocess.run([str(ROOT / ".venv/bin/cfn-lint"), str(rendered_file)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_is_clean_and_every_skip_is_justified(rendered_file, rendered):
    checkov = ROOT / ".venv-checkov/bin/checkov"
    if not checkov.exists():
        message = "checkov's own virtualenv is missing (make checkov-venv; make test creates it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    result = subprocess.run([str(checkov), "-f", str(rendered_file), "--framework", "cloudformation",
                             "--skip-download", "--compact", "--quiet", "-o", "json"],
                            capture_output=True, text=True, timeout=600, env=env)
    report = json.loads(result.stdout)
    summary = report["summary"]
    assert summary["failed"] == 0, [c["check_id"] for c in report["results"]["failed_checks"]]
    assert result.returncode == 0
    skips = [s for r in rendered["Resources"].values()
             for s in r.get("Metadata", {}).get("checkov", {}).get("skip", [])]
    assert summary["skipped"] == len(skips) and all(len(s["comment"]) > 20 for s in skips)


def test_the_container_definition_comes_from_ecs_task_def_json(rendered):
    source = json.loads((ROOT / "ecs/task-def.json").read_text())["containerDefinitions"][0]
    container = rendered["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    assert container["Name"] == source["name"] and container["StopTimeout"] == source["stopTimeout"]
    assert container["HealthCheck"]["Command"] == source["healthCheck"]["command"]
    assert container["PortMappings"][0]["ContainerPort"] == source["portMappings"][0]["containerPort"]
    assert container["LogConfiguration"]["Options"]["awslogs-stream-prefix"] == "model-service"
    environment = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert set(environment) == {e["name"] for e in source["environment"]}
    assert environment["MODEL_STORE"] == {"Fn::Sub": "s3://${ModelBucket}/${StorePrefix}"}
    assert environment["MODEL_VERSION"] == {"Ref": "ModelVersion"} and environment["PORT"] == "8080"


def test_a_change_to_ecs_task_def_json_reaches_the_stack(tmp_path):
    shutil.copytree(ROOT / "ecs", tmp_path / "ecs")
    shutil.copytree(ROOT / "deploy/training", tmp_path / "deploy/training")
    source = json.loads((ROOT / "ecs/task-def.json").read_text())
    source["containerDefinitions"][0]["environment"].append({"name": "LOG_LEVEL", "value": "${MODEL_NAME}"})
    (tmp_path / "ecs/task-def.json").write_text(json.dumps(source))
    container = render(load(), root=tmp_path)["Resources"]["TaskDefinition"]["Properties"][
        "ContainerDefinitions"][0]
    assert {"Name": "LOG_LEVEL", "Value": {"Ref": "ModelName"}} in container["Environment"]
    source["containerDefinitions"][0]["environment"].append({"name": "X", "value": "${NOT_IN_THE_STACK}"})
    (tmp_path / "ecs/task-def.json").write_text(json.dumps(source))
    from deploy.errors import InvalidInput

    with pytest.raises(InvalidInput, match="NOT_IN_THE_STACK"):
        render(load(), root=tmp_path)


def test_the_trigger_function_code_is_deploy_training_trigger_py_byte_for_byte(rendered, tmp_path):
    function = rendered["Resources"]["TrainTriggerFunction"]
    source = (ROOT / "deploy/training/trigger.py").read_bytes()
    assert function["Properties"]["Code"] == {"ZipFile": source.decode()}
    # CloudFormation writes inline code as index.py.
    assert function["Properties"]["Handler"] == "index.handler"
    assert function["Properties"]["Runtime"] == "python3.11"

    shutil.copytree(ROOT / "ecs", tmp_path / "ecs")
    from deploy.errors import InvalidInput

    with pytest.raises(InvalidInput, match=r"TrainTriggerFunction: cannot read deploy/training/trigger\.py"):
        render(load(), root=tmp_path)
    (tmp_path / "deploy/training").mkdir(parents=True)
    (tmp_path / "deploy/training/trigger.py").write_bytes(b"def handler(event, context):\r\n    return 1\r\n")
    code = render(load(), root=tmp_path)["Resources"]["TrainTriggerFunction"]["Properties"]["Code"]
    assert code == {"ZipFile": "def handler(event, context):\r\n    return 1\r\n"}


class Recording(dict):
    """An environment that records which variables are read."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def test_the_trigger_reads_only_variables_the_stack_sets(rendered):
    import importlib.util

    variables = rendered["Resources"]["TrainTriggerFunction"]["Properties"]["Environment"]["Variables"]
    spec = importlib.util.spec_from_file_location("train_trigger_index", ROOT / "deploy/training/trigger.py")
    trigger = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = trigger  # (its dataclasses look their module up)
    try:
        spec.loader.exec_module(trigger)
    finally:
        del sys.modules[spec.name]
    concrete = {"MODEL_NAME": "digits", "SUBNETS": "subnet-a,subnet-b", "LEASE_SECONDS": "21600"}
    environment = Recording({name: value if isinstance(value, str) else concrete.get(name, "x")
                             for name, value in variables.items()})
    trigger.settings(environment)
    assert environment.read and environment.read <= set(variables), environment.read - set(variables)
    assert variables["CONTAINER_NAME"] == "train" and variables["IMAGE_TAG_PREFIX"] == "train-"
    assert variables["PLAN"] == "model/training.toml" and variables["PROMOTE"] == {"Ref": "TrainPromote"}
    assert variables["TASK_FAMILY"] == rendered["Resources"]["TrainingTaskDefinition"]["Properties"]["Family"]


def test_the_training_container_comes_from_ecs_train_task_def_json(rendered):
    source = json.loads((ROOT / "ecs/train-task-def.json").read_text())["containerDefinitions"][0]
    task = rendered["Resources"]["TrainingTaskDefinition"]["Properties"]
    (container,) = task["ContainerDefinitions"]
    assert container["Name"] == source["name"] == "train"
    assert container["Image"] == {"Fn::If": ["HasTrainImage", {"Ref": "TrainImage"},
                                             {"Fn::Sub": "${Repository.RepositoryUri}:train-none"}]}
    assert container["Command"] == [{"Ref": "ModelName"} if part == "${MODEL_NAME}" else part
                                    for part in source["command"]]
    assert container["LogConfiguration"]["Options"]["awslogs-stream-prefix"] == "train"
    assert container["LogConfiguration"]["Options"]["awslogs-group"] == {"Ref": "LogGroup"}
    environment = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert set(environment) == {e["name"] for e in source["environment"]}
    assert environment["MODEL_STORE"] == {"Fn::Sub": "s3://${ModelBucket}/${StorePrefix}"}
    assert task["Family"] == {"Fn::Sub": "${EnvironmentName}-train"}
    assert (task["Cpu"], task["Memory"]) == ({"Ref": "TrainCpu"}, {"Ref": "TrainMemory"})
    assert task["TaskRoleArn"] == {"Fn::GetAtt": ["TrainingTaskRole", "Arn"]}
    assert task["ExecutionRoleArn"] == {"Fn::GetAtt": ["ExecutionRole", "Arn"]}


def test_a_change_to_ecs_train_task_def_json_reaches_the_stack(tmp_path):
    shutil.copytree(ROOT / "ecs", tmp_path / "ecs")
    shutil.copytree(ROOT / "deploy/training", tmp_path / "deploy/training")
    source = json.loads((ROOT / "ecs/train-task-def.json").read_text())
    source["containerDefinitions"][0]["environment"].append({"name": "LOG_LEVEL", "value": "${MODEL_NAME}"})
    (tmp_path / "ecs/train-task-def.json").write_text(json.dumps(source))
    container = render(load(), root=tmp_path)["Resources"]["TrainingTaskDefinition"]["Properties"][
        "ContainerDefinitions"][0]
    assert {"Name": "LOG_LEVEL", "Value": {"Ref": "ModelName"}} in container["Environment"]
    source["containerDefinitions"][0]["environment"].append({"name": "X", "value": "${NOT_IN_THE_STACK}"})
    (tmp_path / "ecs/train-task-def.json").write_text(json.dumps(source))
    from deploy.errors import InvalidInput

    with pytest.raises(InvalidInput, match=r"TrainingTaskDefinition: .*NOT_IN_THE_STACK"):
        render(load(), root=tmp_path)


def test_the_triggers_are_wired_to_the_function(rendered):
    resources_ = rendered["Resources"]
    function = {"Fn::GetAtt": ["TrainTriggerFunction", "Arn"]}
    bucket = resources_["ModelBucket"]["Properties"]
    assert bucket["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    rules = {name: rule for name, rule in resources(rendered, "AWS::Events::Rule").items()
             if name != "ScoreOnUploadRule"}  # the scoring rule: tests/test_score_stack.py
    assert set(rules) == {"TrainOnImagePushRule", "TrainOnNewDataRule", "TrainOnScheduleRule",
                          "TrainTaskStoppedRule"}
    permissions = resources(rendered, "AWS::Lambda::Permission")
    invoked = {p["Properties"]["SourceArn"]["Fn::GetAtt"][0]: p for p in permissions.values()}
    for name, rule in rules.items():
        (target,) = rule["Properties"]["Targets"]
        if name == "TrainOnNewDataRule":  # through the debounce queue, which the rule alone may send to
            assert target["Arn"] == {"Fn::GetAtt": ["TrainDataQueue", "Arn"]} and name not in invoked
            continue
        assert target["Arn"] == function
        permission = invoked[name]
        assert permission["Properties"]["Principal"] == "events.amazonaws.com"
        assert permission["Properties"]["FunctionName"] == function
        assert permission.get("Condition") == rule.get("Condition")
    assert rules["TrainOnScheduleRule"]["Condition"] == "HasTrainSchedule"
    assert rules["TrainOnScheduleRule"]["Properties"]["ScheduleExpression"] == {"Ref": "TrainSchedule"}
    assert rendered["Parameters"]["TrainSchedule"]["Default"] == "cron(0 4 ? * MON *)"

    queue = resources_["TrainDataQueue"]["Properties"]
    timeout = resources_["TrainTriggerFunction"]["Properties"]["Timeout"]
    assert queue["DelaySeconds"] == {"Ref": "TrainDebounceSeconds"}
    assert queue["VisibilityTimeout"] >= 6 * timeout  # Lambda's advice for an SQS source
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["TrainDeadLetterQueue", "Arn"]}
    assert rendered["Parameters"]["TrainDebounceSeconds"]["MaxValue"] == 900  # SQS's longest delay
    (statement,) = resources_["TrainDataQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    rule = {"Fn::GetAtt": ["TrainOnNewDataRule", "Arn"]}
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": rule}}
    mapping = resources_["TrainDataSource"]["Properties"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["TrainDataQueue", "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"] and mapping["BatchSize"] == 10
    table = resources_["TrainRunsTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "model", "KeyType": "HASH"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    # Nothing reaches a training task; it reaches out on 443 only.
    group = resources_["TrainingSecurityGroup"]["Properties"]
    assert "SecurityGroupIngress" not in group
    assert [(e["FromPort"], e["ToPort"]) for e in group["SecurityGroupEgress"]] == [(443, 443)]


def test_the_training_outputs_exist(rendered):
    assert {"TrainTaskFamily", "TrainSubnets", "TrainSecurityGroup", "DataPrefix", "TrainRunsTable",
            "TrainTriggerFunction"} <= set(rendered["Outputs"])
    subnets = rendered["Outputs"]["TrainSubnets"]["Value"]
    assert subnets == rendered["Resources"]["TrainTriggerFunction"]["Properties"]["Environment"]["Variables"][
        "SUBNETS"]


def test_the_service_deploys_safely_behind_the_load_balancer(rendered):
    service = rendered["Resources"]["Service"]["Properties"]
    assert service["LaunchType"] == "FARGATE"
    config = service["DeploymentConfiguration"]
    assert config == {"MinimumHealthyPercent": 100, "MaximumPercent": 200,
                      "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
                      "Alarms": {"AlarmNames": [{"Ref": "Target5xxAlarm"}, {"Ref": "UnhealthyHostsAlarm"}],
                                 "Enable": True, "Rollback": True}}
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"] == [
        {"Fn::GetAtt": ["ServiceSecurityGroup", "GroupId"]}]
    group = rendered["Resources"]["TargetGroup"]["Properties"]
    assert group["HealthCheckPath"] == "/ready"
    attributes = {a["Key"]: a["Value"] for a in group["TargetGroupAttributes"]}
    delay = attributes["deregistration_delay.timeout_seconds"]
    stop = json.loads((ROOT / "ecs/task-def.json").read_text())["containerDefinitions"][0]["stopTimeout"]
    assert 1 < int(delay) < stop
    # Only the load balancer reaches the tasks.
    ingress = rendered["Resources"]["ServiceSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert ingress == [{"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
                        "Description": "from the load balancer",
                        "SourceSecurityGroupId": {"Fn::GetAtt": ["AlbSecurityGroup", "GroupId"]}}]


def test_https_when_a_certificate_is_given(rendered):
    listeners = resources(rendered, "AWS::ElasticLoadBalancingV2::Listener")
    assert listeners["HttpsListener"]["Condition"] == "HasCertificate"
    assert listeners["HttpsListener"]["Properties"]["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    redirect = listeners["HttpRedirect"]["Properties"]["DefaultActions"][0]
    assert listeners["HttpRedirect"]["Condition"] == "HasCertificate" and redirect["Type"] == "redirect"
    assert listeners["HttpListener"]["Condition"] == "NoCertificate"


def test_the_store_bucket_is_private_versioned_and_tls_only(rendered):
    bucket = rendered["Resources"]["ModelBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["LifecycleConfiguration"]["Rules"][0]["NoncurrentVersionExpiration"]
    statement = rendered["Resources"]["ModelBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    repository = rendered["Resources"]["Repository"]["Properties"]
    assert repository["ImageScanningConfiguration"] == {"ScanOnPush": True}
    policy = json.loads(repository["LifecyclePolicy"]["LifecyclePolicyText"]["Fn::Sub"].replace(
        "${ImagesKept}", "30"))
    assert policy["rules"][0]["selection"]["countNumber"] == 30


def test_capture_settings_reach_the_service_and_captured_files_expire(rendered):
    from deploy.errors import InvalidInput
    from deploy.stack.parameters import check

    placeholders = rendered["Resources"]["TaskDefinition"]["Metadata"]["Placeholders"]
    assert placeholders["CAPTURE_RATE"] == {"Ref": "CaptureRate"}
    assert placeholders["CAPTURE_HASH"] == {"Ref": "CaptureHash"}
    environment = rendered["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0][
        "Environment"]
    assert {"Name": "CAPTURE_RATE", "Value": {"Ref": "CaptureRate"}} in environment
    rules = rendered["Resources"]["ModelBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    expiry = next(rule for rule in rules if rule["Id"] == "expire-captured-predictions")
    assert expiry["Prefix"] == {"Fn::Sub": "${StorePrefix}/${ModelName}/capture/"}
    assert expiry["ExpirationInDays"] == {"Ref": "CaptureRetentionDays"}
    template = load()
    for good in ("0", "0.05", "1", "1.0"):
        check(template, {"CaptureRate": good})
    for bad in ("1.5", "-1", ".5", "all"):
        with pytest.raises(InvalidInput, match="CaptureRate"):
            check(template, {"CaptureRate": bad})


def test_scaling_and_alarms(rendered):
    target = rendered["Resources"]["ScalableTarget"]["Properties"]
    assert target["MinCapacity"] == {"Fn::If": ["HasImage", {"Ref": "MinTasks"}, 0]}
    policies = resources(rendered, "AWS::ApplicationAutoScaling::ScalingPolicy")
    metrics = {p["Properties"]["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
        "PredefinedMetricType"] for p in policies.values()}
    assert metrics == {"ALBRequestCountPerTarget", "ECSServiceAverageCPUUtilization"}
    for policy in policies.values():
        config = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        assert config["ScaleOutCooldown"] < config["ScaleInCooldown"]
    alarms = resources(rendered, "AWS::CloudWatch::Alarm")
    assert {a["Properties"].get("MetricName") for a in alarms.values()} >= {"TargetResponseTime",
                                                                           "UnHealthyHostCount"}
    rate = next(a for a in alarms.values() if "Metrics" in a["Properties"])
    assert "HTTPCode_Target_5XX_Count" in json.dumps(rate)


def test_the_stack_outputs_name_every_deploy_variable(rendered):
    from deploy.settings import STACK_OUTPUTS

    assert set(STACK_OUTPUTS.values()) <= set(rendered["Outputs"])


def test_render_command_writes_what_is_linted(tmp_path):
    out = tmp_path / "stack.json"
    result = subprocess.run([str(ROOT / "scripts/stack"), "render", "--out", str(out)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text()) == render(load())


def test_checkov_and_everything_it_needs_are_pinned():
    pins = (ROOT / "infra/checkov-constraints.txt").read_text().splitlines()
    assert "checkov==3.3.30" in pins
    assert all("==" in line for line in pins if line and not line.startswith("#"))
