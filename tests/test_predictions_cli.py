"""`python -m model predictions` against the moto server: lists what model/scoring/table.py stored, by
object, by day, and the day's counters."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from helpers import cli_fails, cli_ok, run_cli

from model.exit_codes import ExitCode
from model.scoring import table as predictions

DAY = "2026-12-01"


@pytest.fixture
def stored(aws_env, s3_bucket):
    """A versioned bucket with two scored uploads (one of them replaced since), the table holding them."""
    s3, dynamodb = boto3.client("s3"), boto3.client("dynamodb")
    s3.put_bucket_versioning(Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"})
    table = f"predictions-{uuid.uuid4().hex[:8]}"
    predictions.create_table(dynamodb, table)
    files = {}
    for key, labels in (("score/a.csv", [3, 3, 7]), ("score/b.jsonl", [1, 3])):
        version = s3.put_object(Bucket=s3_bucket, Key=key, Body=b"rows")["VersionId"]
        found = [{"label": label, "probabilities": {str(label): 0.9, "0": 0.1}, "row": i, "id": f"{key}-{i}"}
                 for i, label in enumerate(labels, start=1)]
        assert predictions.write_scored(dynamodb, table, predictions.Scored(
            s3_bucket, key, version, "digits", "20261201T000000Z-0123abcd", DAY, found))
        files[key] = version
    later = s3.put_object(Bucket=s3_bucket, Key="score/a.csv", Body=b"newer rows")["VersionId"]
    return {"env": {**aws_env, "PREDICTIONS_TABLE": table}, "bucket": s3_bucket, "table": table,
            "versions": files, "later": later}


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_by_object_lists_the_scored_version_in_row_order(stored):
    bucket, version = stored["bucket"], stored["versions"]["score/b.jsonl"]
    # The current version is found from S3 when --version-id is not given.
    rows = lines(cli_ok(run_cli("predictions", "--object", f"s3://{bucket}/score/b.jsonl", "--json",
                                env=stored["env"])))
    assert [(r["row"], r["id"], r["label"], r["object_version"]) for r in rows] == [
        (1, "score/b.jsonl-1", 1, version), (2, "score/b.jsonl-2", 3, version)]
    assert rows[0]["probabilities"] == {"1": 0.9, "0": 0.1}
    # A replaced object: its current version was not scored, the earlier one is named explicitly.
    out = cli_ok(run_cli("predictions", "--object", f"s3://{bucket}/score/a.csv", env=stored["env"]))
    assert out.strip() == f"no predictions stored for s3://{bucket}/score/a.csv version {stored['later']}"
    out = cli_ok(run_cli("predictions", "--object", f"s3://{bucket}/score/a.csv", "--version-id",
                         stored["versions"]["score/a.csv"], env=stored["env"]))
    assert "3 row(s) scored by digits 20261201T000000Z-0123abcd" in out
    table = out.splitlines()[1:]
    assert table[0].split() == ["row", "id", "label", "p", "version"]
    assert [line.split()[:3] for line in table[1:]] == [
        ["1", "score/a.csv-1", "3"], ["2", "score/a.csv-2", "3"], ["3", "score/a.csv-3", "7"]]


def test_by_day_lists_every_file_of_the_day_and_the_counters(stored):
    env, bucket = stored["env"], stored["bucket"]
    rows = lines(cli_ok(run_cli("predictions", "--day", DAY, "--name", "digits", "--json", env=env)))
    assert [(r["object"], r["row"], r["label"]) for r in rows] == [
        (f"{bucket}/score/a.csv", 1, 3), (f"{bucket}/score/a.csv", 2, 3), (f"{bucket}/score/a.csv", 3, 7),
        (f"{bucket}/score/b.jsonl", 1, 1), (f"{bucket}/score/b.jsonl", 2, 3)]
    counts = lines(cli_ok(run_cli("predictions", "--day", DAY, "--counts", "--json", env=env)))
    assert {c["label"]: c["count"] for c in counts} == {"1": 1, "3": 3, "7": 1}
    out = cli_ok(run_cli("predictions", "--day", DAY, "--counts", env=env))
    assert out.splitlines()[0] == f"digits on {DAY}: 5 prediction(s)"
    assert [line.split() for line in out.splitlines()[2:]] == [["1", "1"], ["3", "3"], ["7", "1"]]
    assert "no predictions of other on" in cli_ok(run_cli("predictions", "--day", DAY, "--name", "other",
                                                          env=env))


def test_errors_are_one_line_with_their_exit_code(stored):
    env = stored["env"]
    cli_fails(run_cli("predictions", "--day", "yesterday", env=env), ExitCode.USAGE, "--day takes YYYY-MM-DD")
    cli_fails(run_cli("predictions", "--day", DAY, "--table", f"missing-{uuid.uuid4().hex[:6]}", env=env),
              ExitCode.NOT_FOUND, "no predictions table")
    no_table = {k: v for k, v in env.items() if k != "PREDICTIONS_TABLE"}
    cli_fails(run_cli("predictions", "--day", DAY, env=no_table), ExitCode.USAGE, "PREDICTIONS_TABLE")
    cli_fails(run_cli("predictions", "--object", f"s3://{stored['bucket']}/score/none.csv", env=env),
              ExitCode.NOT_FOUND, "--version-id")
    cli_fails(run_cli("predictions", "--object", "score/a.csv", env=env), ExitCode.USAGE, "s3://bucket/key")
    cli_fails(run_cli("predictions", "--object", f"s3://{stored['bucket']}/score/a.csv", "--counts", env=env),
              ExitCode.USAGE, "--counts goes with --day")
