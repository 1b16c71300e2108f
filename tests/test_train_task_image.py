"""End to end: the training image (docker/Dockerfile's train target) runs as a task under podman.

The image is built on the session's debootstrapped base (tests/conftest.py), registered as a new
revision of the training task definition (what the trigger does on an image push), and run by the
local task runner under podman against moto, started by `scripts/train-task`, as Fargate would run it.
"""

from __future__ import annotations

import json
import subprocess

import boto3
import pytest
from helpers import ROOT, cli_fails

from model.exit_codes import ExitCode
from model.store import ModelStore


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_training_image_trains_and_publishes_as_a_task_and_a_bad_dataset_publishes_nothing(
        podman_env, training_cluster):
    from deploy.image import build, container_tool, host_pip_settings
    from deploy.task_def import derive
    from standin.task_runner import LocalTaskRunner, PodmanTaskLauncher

    tool = container_tool("podman")
    image = build(tool, tag="train-test", name="localhost/model-train", base_image=podman_env["base"],
                  pip=host_pip_settings(), network="host", isolation="chroot", target="train")
    inspected = json.loads(subprocess.run([tool, "image", "inspect", image], capture_output=True, text=True,
                                          check=True).stdout)[0]["Config"]
    assert inspected["User"] == "10001" and inspected["Cmd"] == ["python", "-m", "model", "--help"]

    ecs = boto3.client("ecs")
    registered = ecs.describe_task_definition(taskDefinition=training_cluster["family"])["taskDefinition"]
    ecs.register_task_definition(**derive(registered, image=image))

    env = training_cluster["env"]
    aws = {key: env[key] for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                     "AWS_SESSION_TOKEN", "AWS_REGION")}
    runner = LocalTaskRunner(ecs=ecs, logs=boto3.client("logs"), cluster=training_cluster["cluster"],
                             family=training_cluster["family"], region="us-east-1",
                             launcher=PodmanTaskLauncher(tool), extra_env=aws)
    with runner:
        ok = subprocess.run([str(ROOT / "scripts/train-task"), "--poll", "1", "--dataset", "iris"],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
        bad_csv = "label,x\n1,2\n"
        boto3.client("s3").put_object(Bucket=training_cluster["bucket"], Key="data/digits/bad.csv",
                                      Body=bad_csv)
        bad = subprocess.run([str(ROOT / "scripts/train-task"), "--poll", "1", "--dataset",
                              f"s3://{training_cluster['bucket']}/data/digits/bad.csv"],
                             capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert any("(podman)" in line for line in runner.events), runner.events

    assert ok.returncode == 0, ok.stdout + ok.stderr
    version = ok.stdout.strip().splitlines()[-1].split()[-1]
    store = ModelStore(training_cluster["store"])
    manifest = store.manifest("digits", version)
    # Trained in the image with what publishing needs there: the ONNX file passed parity and is stored.
    assert (manifest.get("onnx") or {}).get("file"), manifest.get("onnx")
    assert store.versions("digits") == [version]

    cli_fails(bad, ExitCode.BAD_DATA, "exited 7")
    assert store.versions("digits") == [version]  # the failed run published nothing
