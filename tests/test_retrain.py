"""`make monitor-check` (deploy/drift_check.py): the monitor's verdict as a retrain request for Jenkins.

The monitor runs for real (`python -m model monitor`) on captured records written here in the layout
of model/capture_files.py, with predictions made by the stored model (what /predict answers): held-out
digits do not drift, the same rows with every pixel scaled x1.5 do. The newest-data choice is checked
on the session's moto server, whose listing gives LastModified as S3 does.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import joblib
import numpy as np
import orjson
import pytest
from helpers import ROOT, cli_ok, run_cli

from deploy.drift_check import monitor_target, newest_data
from model.capture_files import capture_key, format_time
from model.exit_codes import ExitCode
from model.store import ModelStore


# -- captured records (model/capture_files.py) -----------------------------------------------------
def answers(uri: str, name: str, rows: list[dict]) -> list[dict]:
    """What /predict answers for each row: the stored model's label and probabilities."""
    store = ModelStore(uri)
    version = store.resolve(name)
    manifest = store.manifest(name, version)
    estimator = joblib.load(io.BytesIO(store.read_artifact(name, version)))
    features = manifest["input_schema"]["features"]
    proba = estimator.predict_proba(np.asarray([[row[f] for f in features] for row in rows], dtype=float))
    classes = [str(c) for c in manifest["classes"]]
    return [{"label": classes[int(np.argmax(p))],
             "probabilities": dict(zip(classes, p.tolist(), strict=True))} for p in proba]


def capture(uri: str, rows: list[dict], name: str = "digits") -> None:
    """Write `rows` as one hour's captured records of the production version, an hour ago."""
    store = ModelStore(uri)
    version = store.resolve(name)
    hour = (datetime.now(UTC) - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    lines = [orjson.dumps({"time": format_time(hour + timedelta(seconds=i)), "request_id": f"r{i}",
                           "model": name, "version": version, "index": 0, "input": row, "prediction": answer})
             for i, (row, answer) in enumerate(zip(rows, answers(uri, name, rows), strict=True))]
    store.backend.write(capture_key(name, version, hour, hour + timedelta(minutes=59), "test-1", 1),
                        b"\n".join(lines) + b"\n")


def scaled(rows: list[dict], factor: float = 1.5) -> list[dict]:
    return [{k: v * factor for k, v in row.items()} for row in rows]


def held_out_rows(features: list[str]) -> list[dict]:
    """The rows `python -m model train` held out of training (its split): what production sees."""
    from sklearn.model_selection import train_test_split

    from model.data import load_dataset
    from model.train import DEFAULT_SEED, DEFAULT_TEST_SIZE

    dataset = load_dataset("digits")
    _, held_out, _, _ = train_test_split(dataset.X, dataset.y, test_size=DEFAULT_TEST_SIZE,
                                         random_state=DEFAULT_SEED, stratify=dataset.y)
    return [dict(zip(features, map(float, row), strict=True)) for row in held_out]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A local store with digits trained by the CLI and promoted, and the rows it held out."""
    uri = str(tmp_path_factory.mktemp("retrain") / "store")
    cli_ok(run_cli("train", "--store", uri, "--promote", "production", "--no-compile", "--no-report"))
    store = ModelStore(uri)
    features = store.manifest("digits", store.resolve("digits"))["input_schema"]["features"]
    return {"uri": uri, "rows": held_out_rows(features)}


@pytest.fixture
def store(trained, tmp_path):
    """A copy of the trained store for one test (its captured records are its own)."""
    uri = str(tmp_path / "store")
    shutil.copytree(trained["uri"], uri)
    return uri


def drift_check(tmp_path: Path, *monitor_args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`make monitor-check`'s command, with the build folder under tmp_path."""
    out = tmp_path / "build" / "monitor"
    return subprocess.run(
        [sys.executable, "-m", "deploy.drift_check", "--retrain-file", str(out / "retrain"), "--",
         "--report", str(out / "report.html"), "--json", str(out / "drift.json"), *monitor_args],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env={**os.environ, **(env or {})})


# -- the exit codes a Jenkins stage sees ----------------------------------------------------------------
def test_drift_passes_the_stage_and_requests_a_retrain_on_the_plans_data(trained, store, tmp_path):
    capture(store, scaled(trained["rows"]))
    answer = drift_check(tmp_path, "--store", store)
    assert answer.returncode == 0, answer.stdout + answer.stderr
    request = tmp_path / "build" / "monitor" / "retrain"
    # A local store has no data prefix: an empty line, "the training plan's own dataset".
    assert request.read_text() == "\n"
    assert "drift-check: drift found in digits: retrain requested on the training plan's own dataset" \
        in answer.stdout
    assert (tmp_path / "build" / "monitor" / "report.html").is_file()  # archived by the Monitor stage
    assert (tmp_path / "build" / "monitor" / "drift.json").is_file()


def test_no_drift_removes_yesterdays_request(trained, store, tmp_path):
    capture(store, trained["rows"])
    request = tmp_path / "build" / "monitor" / "retrain"
    request.parent.mkdir(parents=True)
    request.write_text("s3://left/over.csv\n")  # a workspace keeps files between builds
    answer = drift_check(tmp_path, "--store", store)
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert not request.exists()
    assert answer.stdout.strip().splitlines()[-1] == "drift-check: no drift: no retrain requested"


def test_other_monitor_failures_keep_their_code_and_request_nothing(store, tmp_path):
    request = tmp_path / "build" / "monitor" / "retrain"
    request.parent.mkdir(parents=True)
    request.write_text("\n")
    answer = drift_check(tmp_path, "--store", store)  # nothing captured
    assert answer.returncode == ExitCode.NOT_FOUND, answer.stdout + answer.stderr
    assert not request.exists()
    last = answer.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "CAPTURE_RATE" in last  # the monitor's own line, once
    assert answer.stderr.count("error: ") == 1
    answer = drift_check(tmp_path, "--store", store, "--psi", "many")
    assert answer.returncode == ExitCode.USAGE and not request.exists()


def test_drift_on_an_s3_store_asks_for_the_newest_upload(aws_env, s3_bucket, trained, tmp_path):
    uri = f"s3://{s3_bucket}/models"
    target = ModelStore(uri).backend
    source = ModelStore(trained["uri"]).backend
    for key in source.list_keys(""):
        target.write(key, source.read(key)[0])
    capture(uri, scaled(trained["rows"]))
    import boto3

    s3 = boto3.client("s3")
    s3.put_object(Bucket=s3_bucket, Key="uploads/digits/2026-12-01.csv", Body=b"a,label\n1,0\n")
    answer = drift_check(tmp_path, env={"MODEL_STORE": uri, "DATA_PREFIX": "uploads"})
    assert answer.returncode == 0, answer.stdout + answer.stderr
    expected = f"s3://{s3_bucket}/uploads/digits/2026-12-01.csv"
    assert (tmp_path / "build" / "monitor" / "retrain").read_text() == expected + "\n"
    assert f"retrain requested on {expected}" in answer.stdout


# -- "the recent data" ------------------------------------------------------------------------------------
def test_the_newest_csv_of_the_models_data_prefix_is_chosen(aws_env, s3_bucket):
    import boto3

    s3 = boto3.client("s3")
    store = f"s3://{s3_bucket}/store"
    assert newest_data(store, "digits", "data") == ""  # nothing uploaded: the plan's dataset

    def put(key: str) -> None:
        s3.put_object(Bucket=s3_bucket, Key=key, Body=b"x,label\n1,0\n")

    put("data/digits/z-older.csv")
    time.sleep(1.1)  # LastModified has one-second precision
    put("data/digits/a-newer.csv")  # newest, although its name sorts first
    time.sleep(1.1)
    # Not training data of this model: another file type, a sub-folder the trigger does not watch,
    # another model, another prefix.
    for key in ("data/digits/notes.txt", "data/digits/archive/2027.csv", "data/iris/new.csv",
                "other/digits/x.csv"):
        put(key)
    assert newest_data(store, "digits", "data") == f"s3://{s3_bucket}/data/digits/a-newer.csv"
    assert newest_data(store, "digits", "/data/") == f"s3://{s3_bucket}/data/digits/a-newer.csv"
    assert newest_data(store, "iris", "data") == f"s3://{s3_bucket}/data/iris/new.csv"
    assert newest_data(store, "churn", "data") == ""


def test_a_local_store_has_no_recent_data(tmp_path):
    assert newest_data(str(tmp_path / "store"), "digits", "data") == ""
    assert newest_data(f"file://{tmp_path}/store", "digits", "data") == ""


def test_the_data_is_looked_up_for_the_store_and_model_the_monitor_reads():
    env = {"MODEL_STORE": "s3://b/p", "MODEL_NAME": "churn"}
    assert monitor_target(["--since", "2h"], env) == ("s3://b/p", "churn")
    assert monitor_target(["--store", "s3://c/q", "--name", "iris"], env) == ("s3://c/q", "iris")
    assert monitor_target([], {}) == ("store", "digits")


def test_an_unreadable_data_bucket_fails_with_the_aws_code(aws_env):
    from deploy.errors import AwsError, ResourceNotFound

    with pytest.raises((ResourceNotFound, AwsError), match="listing the training data s3://no-such-bucket"):
        newest_data("s3://no-such-bucket/store", "digits", "data")

