"""scripts/pipeline-local: the Jenkinsfile's stages run locally, in order, against a moto server.

The end-to-end runs check the commit out into a temporary workspace (as Jenkins does) and narrow
the Test stage's pytest run (PYTEST_ADDOPTS) to one quick test: the whole suite, this file included,
is what CI itself runs; re-running it inside the pipeline would double CI's time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from helpers import ROOT, require_tool

SCRIPT = ROOT / "scripts" / "pipeline-local"
QUICK_TEST = "-q tests/test_jenkinsfile.py::test_unknown_parameter_values_are_refused"
STAGE_LINE = re.compile(r"^==> (?P<name>.+?)\s+(?P<status>ok|FAILED|skipped)\s+(?P<seconds>[\d.]+)s", re.M)


def pipeline(*args: str, timeout: int = 850) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTEST_ADDOPTS": QUICK_TEST}
    env.pop("AWS_ENDPOINT_URL", None)
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=timeout,
                          stdin=subprocess.DEVNULL, cwd=ROOT)


def stage_results(output: str) -> list[tuple[str, str]]:
    """(name, status) of each stage as it finished (the summary repeats them: keep the first pass)."""
    body = output.split("\npipeline-local summary\n")[0]
    return [(m["name"], m["status"]) for m in STAGE_LINE.finditer(body)]


def planned(*args: str) -> list[str]:
    answer = pipeline("--plan", *args, timeout=300)
    assert answer.returncode == 0, answer.stderr
    return [stage["name"] for stage in json.loads(answer.stdout)["stages"] if stage["runs"]]


def test_bad_options_are_one_line_errors_and_start_nothing():
    answer = pipeline("--pipeline", "everything", timeout=60)
    assert answer.returncode == 2
    last_line = answer.stderr.strip().splitlines()[-1]
    assert last_line.startswith("scripts/pipeline-local: error: argument --pipeline")
    assert "Traceback" not in answer.stderr
    answer = pipeline("--changed", "../outside", timeout=60)
    assert answer.returncode == 2
    assert "a path inside the repository" in answer.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_both_pipelines_run_end_to_end_and_the_service_runs_the_pushed_image(tmp_path, podman_sandbox):
    """`make pipeline-local` as it is: train + deploy, the image built, pushed and run under podman.

    The podman storage is the session's (tests/conftest.py), so the base image is not debootstrapped
    again and the image build mostly hits the layers tests/test_docker_image.py built.
    """
    require_tool("groovy", "the stages come from the Jenkinsfile's dry run")
    require_tool("docker-registry", "the local registry the Push stage pushes to")
    expected = planned()
    assert expected == ["Test", "Train", "Quality gate", "Publish", "Promote and roll out",
                        "Build image", "Smoke test image", "Push to ECR", "Roll out"]
    workspace = tmp_path / "ws"

    answer = pipeline("--workspace", str(workspace), "--podman-root", str(podman_sandbox["root"]))

    output = answer.stdout + answer.stderr
    assert answer.returncode == 0, output[-8000:]
    results = stage_results(answer.stdout)
    assert [name for name, status in results if status != "skipped"] == expected, output[-4000:]
    assert all(status == "ok" for name, status in results if name in expected)
    assert f"base: reusing {podman_sandbox['base']}" in answer.stdout  # no second debootstrap
    assert "post: junit reports/*.xml: 1 report(s)" in answer.stdout
    artifacts = workspace / "build" / "pipeline-local" / "artifacts" / "build" / "candidate"
    published = (artifacts / "published-version").read_text().strip()
    assert json.loads((artifacts / "manifest.json").read_text())["version"] == published

    # Promote and roll out: the alias (unset in a new store) is set only after the rollout verified.
    assert f"alias: production -> {published} (was unset)" in answer.stdout
    # Push: the registry's digest is what ECR (moto, through the bridge) lists and what deploy pins.
    pushed = re.search(r"^push: (\S+@sha256:[0-9a-f]{64})$", answer.stdout, re.M)
    assert pushed, answer.stdout[-4000:]
    assert f"is {pushed[1]}" in answer.stdout  # `make deploy` resolved the tag to the same digest
    assert f"is {pushed[1].split('@')[1]} in ECR" in answer.stderr  # the bridge recorded it
    # Both rollouts completed through the deployment records the agent writes into moto.
    assert answer.stdout.count("deployment complete: 1/1 running") == 2
    assert answer.stdout.count(f"answered {published} 3 times in a row") == 2
    started = re.findall(r"local-ecs-agent: started (\S+) \((\w+), model (\S+)\)", answer.stderr)
    assert [(kind, model) for _, kind, model in started] == [
        ("gunicorn", "alias:production"), ("gunicorn", published), ("podman", published)], started


def test_the_agent_writes_deployment_state_moto_answers(aws_env):
    """The one write into moto's internals: describe_services must then answer it (a moto upgrade
    that moves those internals fails here, loudly, not only as a rollout timing out)."""
    import boto3

    from standin.aws import write_moto_deployment

    ecs = boto3.client("ecs")
    ecs.create_cluster(clusterName="agent-test")
    first = ecs.register_task_definition(family="agent-test", containerDefinitions=[
        {"name": "model-service", "image": "img", "memory": 512}])["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster="agent-test", serviceName="svc", taskDefinition=first, desiredCount=1)
    second = ecs.register_task_definition(family="agent-test", containerDefinitions=[
        {"name": "model-service", "image": "img2", "memory": 512}])["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster="agent-test", service="svc", taskDefinition=second)

    def deployments():
        return ecs.describe_services(cluster="agent-test", services=["svc"])["services"][0]["deployments"]

    assert write_moto_deployment("agent-test", "svc", "us-east-1", second, state="IN_PROGRESS", running=0)
    assert [(d["taskDefinition"], d["rolloutState"], d["runningCount"]) for d in deployments()] == [
        (second, "IN_PROGRESS", 0)]
    assert write_moto_deployment("agent-test", "svc", "us-east-1", second, state="COMPLETED")
    assert [(d["rolloutState"], d["runningCount"]) for d in deployments()] == [("COMPLETED", 1)]
    # A report about a revision the service no longer runs (it was rolled back) changes nothing.
    assert not write_moto_deployment("agent-test", "svc", "us-east-1", first, state="IN_PROGRESS")
    assert deployments()[0]["rolloutState"] == "COMPLETED"


def test_an_unknown_stage_to_skip_is_refused():
    require_tool("groovy", "the stages come from the Jenkinsfile's dry run")
    answer = pipeline("--skip-stage", "Deploy everything", timeout=300)
    assert answer.returncode == 2
    assert answer.stderr.strip() == (
        "error: --skip-stage: no stage named 'Deploy everything' in the Jenkinsfile")


@pytest.mark.slow
def test_a_refused_approval_stops_the_pipeline_before_promote(tmp_path):
    require_tool("groovy", "the stages come from the Jenkinsfile's dry run")
    answer = pipeline("--workspace", str(tmp_path / "ws"), "--pipeline", "train", "--require-approval",
                      "--agent", "gunicorn")
    assert answer.returncode == 8, answer.stdout[-3000:] + answer.stderr[-3000:]  # refused
    results = stage_results(answer.stdout)
    assert results[-1] == ("Approve", "FAILED")
    assert [name for name, status in results if status != "skipped"] == ["Test", "Train", "Quality gate",
                                                                          "Publish", "Approve"]
    assert "no terminal to ask and no --approve: refused" in answer.stdout


@pytest.mark.slow
def test_train_on_ecs_trains_in_a_task_the_local_runner_runs_then_promotes_and_rolls_out(tmp_path):
    require_tool("groovy", "the stages come from the Jenkinsfile's dry run")
    answer = pipeline("--workspace", str(tmp_path / "ws"), "--pipeline", "train", "--train-on", "ecs",
                      "--agent", "gunicorn")
    assert answer.returncode == 0, answer.stdout[-3000:] + answer.stderr[-3000:]
    ran = [(name, status) for name, status in stage_results(answer.stdout) if status != "skipped"]
    assert ran == [("Test", "ok"), ("Train in ECS", "ok"), ("Promote and roll out", "ok")]
    # scripts/train-task followed the task's log from moto's CloudWatch Logs and read its version.
    published = re.search(r"^published digits (\S+)$", answer.stdout, re.M)
    assert published, answer.stdout[-3000:]
    assert f"  | published digits {published[1]} to s3://" in answer.stdout
    assert "local-task-runner: started task" in answer.stderr
    # The rollout moved production to that version and the local ECS agent serves it.
    assert f"--promote {published[1]}" in answer.stdout


# -- the retraining loop: PIPELINE=monitor ------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_store(tmp_path_factory):
    """A local store with digits trained by the CLI and promoted (copied per test, then captured into)."""
    from helpers import cli_ok, run_cli

    uri = tmp_path_factory.mktemp("monitor") / "store"
    cli_ok(run_cli("train", "--store", str(uri), "--promote", "production", "--no-compile", "--no-report"))
    return uri


def seeded_store(trained_store, target, *, drift: bool):
    """A copy of the trained store holding an hour of captured records of production: the rows it
    held out (no drift), or the same rows with every pixel scaled x1.5 (drift)."""
    import shutil

    from test_retrain import capture, held_out_rows, scaled

    from model.store import ModelStore

    shutil.copytree(trained_store, target)
    store = ModelStore(str(target))
    version = store.resolve("digits")
    rows = held_out_rows(store.manifest("digits", version)["input_schema"]["features"])
    capture(str(target), scaled(rows) if drift else rows)
    return version


def write_digits_csv(path, factor: float = 1.5):
    """New training data as an upload would bring it: the digits' pixels (scaled), a label column."""
    import csv

    from sklearn.datasets import load_digits

    digits = load_digits()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*digits.feature_names, "label"])
        for row, label in zip(digits.data, digits.target, strict=True):
            writer.writerow([*(round(float(v) * factor, 3) for v in row), int(label)])
    return path


def builds(output: str) -> dict[int, list[tuple[str, str]]]:
    """The summary's (stage, status) of each build, skipped stages left out."""
    summary = output.split("\npipeline-local summary\n")[1]
    found: dict[int, list[tuple[str, str]]] = {}
    for part in re.split(r"^build #(\d+)$", summary, flags=re.M)[1:]:
        if part.isdigit():
            number = int(part)
            continue
        found[number] = [(m["name"], m["status"]) for m in STAGE_LINE.finditer(part)
                         if m["status"] != "skipped"]
    return found


def test_a_monitor_build_plans_only_the_monitor_stages():
    require_tool("groovy", "the stages come from the Jenkinsfile's dry run")
    answer = pipeline("--plan", "--pipeline", "monitor", timeout=300)
    assert answer.returncode == 0, answer.stderr
    plan = json.loads(answer.stdout)
    assert [(s["name"], s["runs"], s.get("deferred", False)) for s in plan["stages"]
            if s["runs"] or s.get("deferred")] == [("Monitor", True, False),
                                                   ("Retrain on drift", False, True)]
    build = next(s for s in plan["stages"] if s["name"] == "Retrain on drift")["steps"][0]
    assert build["build"] == "pipeline-local" and build["wait"] is False  # this job: the runner can queue it
    refused = pipeline("--seed-data", "notes.txt", timeout=60)
    assert refused.returncode == 2 and "--seed-data takes a .csv file, got notes.txt" in refused.stderr
    refused = pipeline("--seed-store", "no/such/store", timeout=60)
    assert refused.returncode == 2 and "--seed-store: no such folder" in refused.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_drift_retrains_on_the_newest_data_and_rolls_the_new_model_out(tmp_path, trained_store):
    """The loop end to end: captured drift -> Monitor passes and requests a retrain -> Retrain on drift
    queues a train build with the uploaded data -> Test, Train, gate, Publish, Promote and roll out."""
    require_tool("groovy", "the stages come from the Jenkinsfile's dry run")
    before = seeded_store(trained_store, tmp_path / "seed", drift=True)
    data = write_digits_csv(tmp_path / "2026-12-02.csv")
    workspace = tmp_path / "ws"

    answer = pipeline("--workspace", str(workspace), "--pipeline", "monitor", "--agent", "gunicorn",
                      "--seed-store", str(tmp_path / "seed"), "--seed-data", str(data))

    output = answer.stdout + answer.stderr
    assert answer.returncode == 0, output[-6000:]
    assert builds(answer.stdout) == {
        1: [("Monitor", "ok"), ("Retrain on drift", "ok")],
        2: [("Test", "ok"), ("Train", "ok"), ("Quality gate", "ok"), ("Publish", "ok"),
            ("Promote and roll out", "ok")]}, output[-4000:]
    uploaded = re.search(r"^pipeline-local: training data uploaded: (s3://\S+)$", answer.stdout, re.M)[1]
    assert f"drift-check: drift found in digits: retrain requested on {uploaded}" in answer.stdout
    queued = rf"build: queued pipeline-local #2 \(PIPELINE=train, TRAIN_DATASET={re.escape(uploaded)}, "
    assert re.search(queued, answer.stdout), answer.stdout[-4000:]
    # Build #2 trained on the uploaded data, published a new version and moved production to it.
    assert f"training digits with recipe logreg on {uploaded} (1797 rows" in answer.stdout
    artifacts = workspace / "build" / "pipeline-local"
    published = (artifacts / "artifacts-2/build/candidate/published-version").read_text().strip()
    assert published != before
    assert f"alias: production -> {published} (was {before})" in answer.stdout
    # The Monitor stage archived its report and JSON; the JSON names the drifting pixels.
    archived = artifacts / "artifacts/build/monitor"
    assert (archived / "report.html").is_file()
    assert json.loads((archived / "drift.json").read_text())
    assert (archived / "retrain").read_text().strip() == uploaded


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_no_drift_starts_no_retrain(tmp_path, trained_store):
    require_tool("groovy", "the stages come from the Jenkinsfile's dry run")
    seeded_store(trained_store, tmp_path / "seed", drift=False)
    workspace = tmp_path / "ws"
    (workspace / "build" / "monitor").mkdir(parents=True)
    (workspace / "build" / "monitor" / "retrain").write_text("\n")  # yesterday's request, left over

    answer = pipeline("--workspace", str(workspace), "--pipeline", "monitor", "--agent", "gunicorn",
                      "--seed-store", str(tmp_path / "seed"))

    output = answer.stdout + answer.stderr
    assert answer.returncode == 0, output[-6000:]
    ran = [(name, status) for name, status in stage_results(answer.stdout) if status != "skipped"]
    assert ran == [("Monitor", "ok")], output[-4000:]
    assert "drift-check: no drift: no retrain requested" in answer.stdout
    assert "--- Retrain on drift: when decided now, from the workspace: skipped" in answer.stdout
    assert "build #2" not in answer.stdout and "queued" not in answer.stdout


def test_only_builds_of_this_job_that_do_not_wait_are_queued(tmp_path, capsys):
    """The `build` step locally: a build of the Jenkinsfile's own job, queued behind this one (the job
    has disableConcurrentBuilds); anything else fails the stage rather than pretending."""
    from model.exit_codes import ExitCode
    from standin.jenkins import run_stage
    from standin.pipeline import JOB_NAME, LocalJob, Options

    job = LocalJob(Options(), tmp_path, "abc123")
    step = {"build": JOB_NAME, "wait": False, "propagate": True, "parameters": [
        {"type": "string", "name": "PIPELINE", "value": "train"},
        {"type": "string", "name": "TRAIN_DATASET", "value": ""},
        {"type": "boolean", "name": "REQUIRE_APPROVAL", "value": True}]}
    stage = {"name": "Retrain on drift", "steps": [step]}
    assert run_stage(stage, {}, tmp_path, False, on_build=job.queue_build).status == "ok"
    assert job.queue == [(2, {"PIPELINE": "train", "TRAIN_DATASET": "", "REQUIRE_APPROVAL": "true"})]
    assert "build: queued pipeline-local #2 (PIPELINE=train, TRAIN_DATASET=, REQUIRE_APPROVAL=true)" \
        in capsys.readouterr().out

    other = run_stage({**stage, "steps": [{**step, "build": "other-job"}]}, {}, tmp_path, False,
                      on_build=job.queue_build)
    assert (other.status, other.exit_code) == ("FAILED", ExitCode.INVALID_INPUT)
    assert "only builds of this job (pipeline-local) run locally" in other.detail
    waiting = run_stage({**stage, "steps": [{**step, "wait": True}]}, {}, tmp_path, False,
                        on_build=job.queue_build)
    assert waiting.status == "FAILED" and "wait: true" in waiting.detail
    assert len(job.queue) == 1  # nothing more was queued
