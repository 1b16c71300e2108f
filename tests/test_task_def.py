"""ecs/task-def.json: rendered, checked against botocore's own ECS model, registered on the moto server."""

from __future__ import annotations

import json
import subprocess

import pytest
from helpers import ROOT

from deploy.errors import InvalidInput
from deploy.task_def import derive, environment, pinned_unit, render, render_file, validate

TEMPLATE = ROOT / "ecs/task-def.json"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/model-service@sha256:" + "c" * 64
VALUES = {
    "FAMILY": "model-service", "IMAGE": IMAGE, "MODEL_VERSION": "20261122T013000Z-3f9a1c2b",
    "MODEL_STORE": "s3://models/team", "MODEL_NAME": "digits", "MODEL_ALIAS": "production",
    "TASK_ROLE_ARN": "arn:aws:iam::123456789012:role/model-task",
    "EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/model-exec",
    "AWS_REGION": "us-east-1", "LOG_GROUP": "/ecs/model-service",
}


def test_rendered_template_satisfies_the_register_task_definition_shape():
    import botocore.session
    from botocore.validate import ParamValidator

    definition = render_file(TEMPLATE, VALUES)
    shape = botocore.session.get_session().get_service_model("ecs").operation_model(
        "RegisterTaskDefinition").input_shape
    report = ParamValidator().validate(definition, shape)
    assert not report.has_errors(), report.generate_report()
    assert definition["requiresCompatibilities"] == ["FARGATE"] and definition["networkMode"] == "awsvpc"
    assert (definition["cpu"], definition["memory"]) == ("1024", "2048")
    container = definition["containerDefinitions"][0]
    assert container["stopTimeout"] == 30
    assert "/health" in " ".join(container["healthCheck"]["command"])
    assert container["logConfiguration"]["logDriver"] == "awslogs"
    assert pinned_unit(definition) == (IMAGE, VALUES["MODEL_VERSION"])
    assert environment(definition)["BIND"] == "0.0.0.0"


def test_every_placeholder_must_be_filled():
    values = {k: v for k, v in VALUES.items() if k not in ("TASK_ROLE_ARN", "LOG_GROUP")}
    with pytest.raises(InvalidInput, match="unfilled placeholders: LOG_GROUP, TASK_ROLE_ARN"):
        render_file(TEMPLATE, values)
    with pytest.raises(InvalidInput, match="IMAGE"):
        render_file(TEMPLATE, {**VALUES, "IMAGE": ""})


def test_empty_model_version_means_follow_the_alias():
    definition = render_file(TEMPLATE, {**VALUES, "MODEL_VERSION": ""})
    assert "MODEL_VERSION" not in environment(definition)
    assert environment(definition)["MODEL_ALIAS"] == "production"


def test_capture_settings_reach_the_container_only_when_set():
    plain = environment(render_file(TEMPLATE, VALUES))
    assert not {"CAPTURE_RATE", "CAPTURE_EXCLUDE", "CAPTURE_HASH"} & set(plain)
    capturing = environment(render_file(TEMPLATE, {**VALUES, "CAPTURE_RATE": "0.05",
                                                   "CAPTURE_HASH": "customer_id"}))
    assert capturing["CAPTURE_RATE"] == "0.05" and capturing["CAPTURE_HASH"] == "customer_id"
    assert "CAPTURE_EXCLUDE" not in capturing


def test_values_are_json_escaped_not_injected():
    definition = render_file(TEMPLATE, {**VALUES, "MODEL_STORE": 's3://b/p", "x": "y'})
    assert environment(definition)["MODEL_STORE"] == 's3://b/p", "x": "y'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"family": "f", "containerDefinitions": [{"name": "a", "image": "${IMAGE}", "cpu": "many"}]}',
         "Invalid type for parameter containerDefinitions[0].cpu"),
        ('{"family": "f", "containerDefinitions": [{"name": "a", "image": "${IMAGE}"}]', "not valid JSON"),
        ('{"family": "f", "containerDefinitions": [], "bogus": 1}', "Unknown parameter"),
        ('{"family": "f", "containerDefinitions": [{"name": "a", "image": "$IMAGE$"}]}', "malformed"),
    ],
)
def test_malformed_definitions_are_refused(text, message):
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        render(text, {"IMAGE": "x"})


def test_derive_replaces_image_and_model_and_drops_describe_only_fields():
    registered = {**render_file(TEMPLATE, VALUES), "taskDefinitionArn": "arn:td/x:3", "revision": 3,
                  "status": "ACTIVE", "registeredAt": "2026-01-01", "compatibilities": ["FARGATE"]}
    new = derive(registered, image="repo@sha256:" + "d" * 64, model_version="20261201T000000Z-00000000")
    assert pinned_unit(new) == ("repo@sha256:" + "d" * 64, "20261201T000000Z-00000000")
    assert "revision" not in new and "taskDefinitionArn" not in new
    assert validate(new) is new


def test_register_script_registers_on_moto_and_dry_run_does_not(aws_env):
    import boto3

    env = {**aws_env, **{k: v for k, v in VALUES.items() if k not in ("IMAGE", "MODEL_VERSION", "FAMILY")},
           "TASK_FAMILY": "register-test"}
    dry = subprocess.run([str(ROOT / "scripts/register-task-def"), "--image", IMAGE, "--model-version",
                          VALUES["MODEL_VERSION"], "--dry-run"], capture_output=True, text=True, env=env)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["family"] == "register-test"
    ecs = boto3.client("ecs")
    assert ecs.list_task_definitions(familyPrefix="register-test")["taskDefinitionArns"] == []

    result = subprocess.run([str(ROOT / "scripts/register-task-def"), "--image", IMAGE, "--model-version",
                             VALUES["MODEL_VERSION"]], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    arn = result.stdout.strip()
    registered = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    assert registered["containerDefinitions"][0]["image"] == IMAGE
    assert registered["taskRoleArn"] == VALUES["TASK_ROLE_ARN"]

    missing = subprocess.run([str(ROOT / "scripts/register-task-def"), "--image", IMAGE],
                             capture_output=True, text=True, env={**env, "TASK_ROLE_ARN": ""})
    assert missing.returncode == 9
    assert missing.stderr.strip() == (
        "error: task definition template has unfilled placeholders: TASK_ROLE_ARN")
