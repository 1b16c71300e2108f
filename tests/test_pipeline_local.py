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
from conftest import ROOT, require_tool

SCRIPT = ROOT / "scripts" / "pipeline-local"
QUICK_TEST = "-q tests/test_jenkinsfile.py::test_unknown_parameter_values_are_refused"
STAGE_LINE = re.compile(r"^==> (?P<name>.+?)\s+(?P<status>ok|FAILED|skipped)\s+(?P<seconds>[\d.]+)s", re.M)


def pipeline(*args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
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
def test_the_train_pipeline_runs_end_to_end_and_the_rollout_serves_the_published_model(tmp_path):
    # The deploy pipeline's image stages are left to tests/test_docker_image.py (CI builds the image
    # once), and moto speaks ECR's API but not the registry protocol a push needs; the ECS rollout
    # itself is the same code for both pipelines and is exercised here by the model rollout.
    require_tool("groovy", "the stages come from the Jenkinsfile's dry run")
    expected = planned("--pipeline", "train")
    assert expected == ["Test", "Train", "Quality gate", "Publish", "Promote", "Roll out model"]
    workspace = tmp_path / "ws"

    answer = pipeline("--workspace", str(workspace), "--pipeline", "train", "--agent", "gunicorn")

    output = answer.stdout + answer.stderr
    assert answer.returncode == 0, output[-6000:]
    results = stage_results(answer.stdout)
    assert [name for name, status in results if status != "skipped"] == expected, output[-4000:]
    assert all(status == "ok" for name, status in results if name in expected)
    assert "post: junit reports/*.xml: 1 report(s)" in answer.stdout
    artifacts = workspace / "build" / "pipeline-local" / "artifacts" / "build" / "candidate"
    published = (artifacts / "published-version").read_text().strip()
    assert json.loads((artifacts / "manifest.json").read_text())["version"] == published
    # The model rollout pinned the published version and the local ECS agent served exactly that.
    started = re.findall(r"local-ecs-agent: started (\S+) \((\w+), model (\S+)\)", answer.stderr)
    assert started[0][2] == "alias:production", started
    assert started[-1][2] == published, started


def test_an_unknown_stage_to_skip_is_refused():
    require_tool("groovy", "the stages come from the Jenkinsfile's dry run")
    answer = pipeline("--skip-stage", "Deploy everything", timeout=300)
    assert answer.returncode == 2
    assert answer.stderr.strip() == (
        "pipeline-local: error: --skip-stage: no stage named 'Deploy everything' in the Jenkinsfile")


@pytest.mark.slow
def test_a_refused_approval_stops_the_pipeline_before_promote(tmp_path):
    require_tool("groovy", "the stages come from the Jenkinsfile's dry run")
    answer = pipeline("--workspace", str(tmp_path / "ws"), "--pipeline", "train", "--require-approval",
                      "--agent", "gunicorn")
    assert answer.returncode == 1, answer.stdout[-3000:] + answer.stderr[-3000:]
    results = stage_results(answer.stdout)
    assert results[-1] == ("Approve", "FAILED")
    assert [name for name, _ in results] == ["Test", "Train", "Quality gate", "Publish", "Approve"]
    assert "no terminal to ask and no --approve: refused" in answer.stdout
