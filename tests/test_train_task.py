"""`scripts/train-task`: training as a Fargate task, against moto, with the local task runner.

moto records RunTask and runs nothing; standin/task_runner.py runs the recorded task (here from this
checkout; tests/test_train_task_image.py runs the training image under podman), sends its output to
the task's awslogs stream in moto's CloudWatch Logs and marks the task STOPPED with its exit code.
The script under test sees only the ECS, CloudWatch Logs and S3 APIs, as in an account.
"""

from __future__ import annotations

import json
import subprocess

import boto3
import pytest
from helpers import ROOT, cli_fails

from model.exit_codes import ExitCode
from model.store import ModelStore

REGION = "us-east-1"


@pytest.fixture
def task_runner(training_cluster):
    """The local stand-in for Fargate, running recorded tasks of the training family from this checkout."""
    from standin.task_runner import CheckoutLauncher, LocalTaskRunner

    runner = LocalTaskRunner(ecs=boto3.client("ecs"), logs=boto3.client("logs"),
                             cluster=training_cluster["cluster"], family=training_cluster["family"],
                             region=REGION, launcher=CheckoutLauncher(ROOT))
    with runner:
        yield runner


def train_task(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run scripts/train-task as an operator would (polling twice a second)."""
    return subprocess.run([str(ROOT / "scripts/train-task"), "--poll", "0.5", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=timeout)


def tasks_of(cluster: str) -> list[dict]:
    ecs = boto3.client("ecs")
    arns = ecs.list_tasks(cluster=cluster)["taskArns"]
    return ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []


def test_a_training_task_publishes_a_version_and_the_script_prints_it(training_cluster, task_runner,
                                                                      tmp_path):
    version_file = tmp_path / "published-version"
    result = train_task("--dataset", "iris", "--cpu", "2048", "--memory", "8192",
                        "--version-file", str(version_file), env=training_cluster["env"])
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("published digits ")
    version = last.split()[-1]
    assert version_file.read_text().strip() == version
    # The task's log was followed as it ran: the model CLI's own lines, from CloudWatch Logs.
    assert "  | training digits with recipe logreg on sklearn:iris" in result.stdout
    assert f"  | published digits {version} to {training_cluster['store']}" in result.stdout

    manifest = ModelStore(training_cluster["store"]).manifest("digits", version)
    assert manifest["name"] == "digits" and manifest["version"] == version
    assert "sklearn:iris" in json.dumps(manifest)  # trained on the data the run was given

    (task,) = tasks_of(training_cluster["cluster"])
    assert task["lastStatus"] == "STOPPED" and task["containers"][0]["exitCode"] == 0
    assert task["group"] == "train:digits" and task["startedBy"] == "train-task"
    assert task["overrides"]["cpu"] == "2048" and task["overrides"]["memory"] == "8192"
    (override,) = task["overrides"]["containerOverrides"]
    assert override["name"] == "train"
    assert override["command"] == ["python", "-m", "model", "train", "--name", "digits", "--plan",
                                   "model/training.toml", "--model", "digits", "--dataset", "iris"]


def test_a_failing_task_exits_with_its_code_and_log_tail_and_publishes_nothing(training_cluster, task_runner):
    bad = "label,x\n1,2\n"
    boto3.client("s3").put_object(Bucket=training_cluster["bucket"], Key="data/digits/bad.csv", Body=bad)
    result = train_task("--dataset", f"s3://{training_cluster['bucket']}/data/digits/bad.csv",
                        env=training_cluster["env"])
    line = cli_fails(result, ExitCode.BAD_DATA, "exited 7 (Essential container in task exited)")
    assert "bad.csv" in line or "rows" in line  # the model CLI's own reason, from the task's log
    assert "the last lines of training task" in result.stdout and "  | error: " in result.stdout
    assert ModelStore(training_cluster["store"]).versions("digits") == []


def test_a_task_that_outlives_the_timeout_is_stopped_and_exits_18(training_cluster, task_runner):
    result = train_task("--timeout", "1", env=training_cluster["env"])
    cli_fails(result, ExitCode.TASK_FAILED, "did not finish in 1 s; it was stopped and published nothing")
    (task,) = tasks_of(training_cluster["cluster"])
    assert task["desiredStatus"] == "STOPPED"
    assert "no result after 1 s" in task["stoppedReason"]


@pytest.mark.parametrize("args, message", [
    (["--cpu", "300"], "--cpu 300: Fargate takes 256, 512"),
    (["--cpu", "1024", "--memory", "512"], "--memory 512: with --cpu 1024 Fargate takes 2048 to 8192"),
    (["--param", "C=2"], "--param goes with --recipe"),
    (["--name", "../x"], "invalid model name"),
])
def test_bad_options_are_one_line_and_start_no_task(training_cluster, args, message):
    result = train_task(*args, env=training_cluster["env"])
    assert result.returncode in (ExitCode.INVALID_INPUT, ExitCode.USAGE), result.stderr
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert tasks_of(training_cluster["cluster"]) == []


def test_without_the_stack_settings_the_script_says_which_are_missing(training_cluster):
    env = {k: v for k, v in training_cluster["env"].items() if k not in ("TRAIN_SUBNETS", "ECS_CLUSTER")}
    result = train_task(env=env)
    cli_fails(result, ExitCode.INVALID_INPUT, "--cluster, --subnets not given")


def test_an_unknown_task_family_is_not_found(training_cluster):
    result = train_task("--family", "no-such-family", env=training_cluster["env"])
    cli_fails(result, ExitCode.NOT_FOUND, "no-such-family")


def test_the_training_task_definition_is_valid_and_names_the_log_stream():
    from deploy.task_def import render_file
    from deploy.training.runner import log_location

    definition = render_file(ROOT / "ecs/train-task-def.json", {
        "FAMILY": "mlops-train", "TASK_ROLE_ARN": "r", "EXECUTION_ROLE_ARN": "e",
        "TRAIN_IMAGE": "repo:train-x",
        "MODEL_STORE": "s3://b/models", "MODEL_NAME": "churn", "AWS_REGION": REGION, "LOG_GROUP": "/ecs/g"})
    (container,) = definition["containerDefinitions"]
    assert container["name"] == "train" and container["command"][-1] == "churn"
    assert log_location(definition, "abc") == ("/ecs/g", "train/train/abc")
    json.dumps(definition)
