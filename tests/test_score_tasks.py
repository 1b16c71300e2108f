"""`scripts/score-tasks`: an s3:// prefix scored by N tasks of the training image, against moto.

The local task runner (standin/task_runner.py) runs each task RunTask records, from this checkout;
each task scores its share (`python -m model score --shard K/N`) of the files.
"""

from __future__ import annotations

import json
import subprocess

import boto3
import pytest
from helpers import ROOT
from test_score import csv_text

from model.exit_codes import ExitCode
from model.store import ModelStore


@pytest.fixture
def scoring_cluster(training_cluster, trained_digits):
    """The training cluster's store holding a production digits model, and a task runner."""
    from standin.task_runner import CheckoutLauncher, LocalTaskRunner

    store = ModelStore(training_cluster["store"])
    artifact, manifest = trained_digits
    store.publish(artifact, manifest)
    store.move_alias("digits", "production", manifest["version"])
    runner = LocalTaskRunner(ecs=boto3.client("ecs"), logs=boto3.client("logs"),
                             cluster=training_cluster["cluster"], family=training_cluster["family"],
                             region="us-east-1", launcher=CheckoutLauncher(ROOT))
    with runner:
        yield {**training_cluster, "runner": runner}


def upload_files(ctx, count: int, bad_row_in: int | None = None) -> list[str]:
    from model.data import load_dataset

    data = load_dataset("digits")
    names = [str(n) for n in data.feature_names]
    keys = []
    for i in range(count):
        text = csv_text(data.X[i * 20:(i + 1) * 20], names, start=i * 20)
        if i == bad_row_in:
            lines = text.splitlines()
            lines[3] = lines[3].replace(",0,", ",dark,", 1)
            text = "\n".join(lines) + "\n"
        key = f"score/batch/part-{i}.csv"
        boto3.client("s3").put_object(Bucket=ctx["bucket"], Key=key, Body=text.encode())
        keys.append(key)
    return keys


def score_tasks(ctx, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "scripts/score-tasks"), "--poll", "0.5", *args], capture_output=True,
                          text=True, env=ctx["env"], cwd=ROOT, timeout=600)


def test_two_tasks_score_disjoint_shares_of_a_prefix_and_report_when_both_finished(scoring_cluster):
    ctx, bucket = scoring_cluster, scoring_cluster["bucket"]
    upload_files(ctx, 3)
    result = score_tasks(ctx, f"s3://{bucket}/score/batch/", f"s3://{bucket}/scored/batch/", "--tasks", "2",
                         "--", "--id-column", "id")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all 2 scoring task(s) finished" in result.stdout
    s3 = boto3.client("s3")
    outputs = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="scored/batch/")["Contents"]
                     if o["Key"].endswith(".jsonl") and not o["Key"].endswith(".errors.jsonl"))
    assert outputs == [f"scored/batch/part-{i}.jsonl" for i in range(3)]
    ids = [json.loads(line)["id"] for key in outputs
           for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()]
    assert sorted(ids, key=lambda i: int(i[1:])) == [f"r{i}" for i in range(60)]  # every row once
    ecs = boto3.client("ecs")
    arns = ecs.list_tasks(cluster=ctx["cluster"])["taskArns"]
    tasks = ecs.describe_tasks(cluster=ctx["cluster"], tasks=arns)
    commands = sorted(t["overrides"]["containerOverrides"][0]["command"] for t in tasks["tasks"])
    assert [c[c.index("--shard") + 1] for c in commands] == ["0/2", "1/2"]
    assert {t["group"] for t in tasks["tasks"]} == {"score:digits"}


def test_a_bad_row_in_one_share_is_exit_19_and_the_others_finish(scoring_cluster):
    ctx, bucket = scoring_cluster, scoring_cluster["bucket"]
    upload_files(ctx, 2, bad_row_in=1)
    result = score_tasks(ctx, f"s3://{bucket}/score/batch/", f"s3://{bucket}/scored/batch/", "--tasks", "2",
                         "--", "--id-column", "id")
    assert result.returncode == ExitCode.ROWS_FAILED, result.stdout + result.stderr
    assert result.stderr.strip().startswith("error: 1 of 2 scoring task(s) did not finish cleanly")
    errors = boto3.client("s3").get_object(Bucket=bucket, Key="scored/batch/part-1.jsonl.errors.jsonl")
    assert "dark" in errors["Body"].read().decode()


def test_local_paths_and_bad_task_counts_are_one_line_and_start_nothing(scoring_cluster):
    ctx = scoring_cluster
    for args, message in ((["in/", "s3://b/out/"], "must be s3:// prefixes"),
                          (["s3://b/in/", "s3://b/out/", "--tasks", "0"], "--tasks must be 1 to 100")):
        result = score_tasks(ctx, *args)
        assert result.returncode == ExitCode.INVALID_INPUT and result.stderr.strip().count("\n") == 0
        assert message in result.stderr
    assert boto3.client("ecs").list_tasks(cluster=ctx["cluster"])["taskArns"] == []
