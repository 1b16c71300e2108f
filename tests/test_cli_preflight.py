"""Pre-flight: `train`, `import` and `publish` check the store before any work.

A store that cannot take the result (no bucket, no endpoint, no credentials, no write access, a
folder that cannot be created or written) fails with one `error:` line and its exit code before the
data is read or a model is fitted. Each test gives the command data that does not exist: had the
command read it before checking the store, it would have failed with exit 7 (bad data) instead.

What only real AWS shows: refused credentials (InvalidAccessKeyId, SignatureDoesNotMatch,
ExpiredToken) and a role that may read but not write (AccessDenied on the probe's PUT). moto accepts
any credentials and every write, so those answers are played by a client that raises botocore's own
errors (tests/fakes.py RefusingS3); the mapping of those codes to exit 3 is the same code path.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import boto3
import pytest
from fakes import RefusingS3
from helpers import cli_fails, free_port, run_cli

from model.errors import StoreError
from model.exit_codes import ExitCode
from model.store import ModelStore


def _commands(tmp_path: Path) -> dict[str, list[str]]:
    """Each publishing command, given inputs that do not exist (reading them would be exit 7)."""
    missing = tmp_path / "missing"
    return {
        "train": ["train", "--dataset", str(missing / "data.csv")],
        "import": ["import", str(missing / "model.joblib"), "--data", str(missing / "data.csv")],
        "publish": ["publish", str(missing / "candidate")],
    }


def _env(**extra: str) -> dict:
    return {**os.environ, **extra}


@pytest.mark.parametrize("command", ["train", "import", "publish"])
def test_a_missing_bucket_is_not_found_before_any_work(command, aws_env, tmp_path):
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:12]}"
    args = [*_commands(tmp_path)[command], "--store", f"s3://{bucket}/models"]
    result = run_cli(*args, env=aws_env)
    cli_fails(result, ExitCode.NOT_FOUND, f"bucket '{bucket}' does not exist")
    assert result.stdout == ""  # no "training ..." line: nothing started


@pytest.mark.parametrize("command", ["train", "import", "publish"])
def test_an_unreachable_endpoint_is_exit_3_before_any_work(command, tmp_path):
    # Nothing listens on this port: the connection is refused at once (botocore retries it, briefly).
    env = _env(AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    result = run_cli(*_commands(tmp_path)[command], "--store", "s3://models/team", env=env)
    cli_fails(result, ExitCode.UNREACHABLE, "cannot reach the S3 endpoint for s3://models/team")
    assert result.stdout == ""


def test_no_credentials_is_exit_3_before_training(s3_bucket, aws_env, tmp_path):
    env = {
        k: v
        for k, v in aws_env.items()
        if not k.startswith("AWS_") or k in ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")
    }
    env |= {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = run_cli(*_commands(tmp_path)["train"], "--store", f"s3://{s3_bucket}/m", env=env)
    cli_fails(result, ExitCode.UNREACHABLE, "no AWS credentials")
    assert result.stdout == ""


def test_the_s3_probe_is_written_under_the_prefix_and_deleted(s3_bucket):
    client = RefusingS3(boto3.client("s3"), refuse={})
    ModelStore(f"s3://{s3_bucket}/team/models", s3_client=client).check_writable()
    (put,) = [key for op, key in client.calls if op == "put_object"]
    assert put == "team/models/.preflight/probe"
    assert ("delete_object", put) in client.calls
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)  # nothing left


def test_a_refused_write_is_exit_3_and_a_refused_delete_is_no_error(s3_bucket, aws_env):
    uri = f"s3://{s3_bucket}/team"
    read_only = ModelStore(
        uri, s3_client=RefusingS3(boto3.client("s3"), refuse={"put_object": "AccessDenied"})
    )
    with pytest.raises(
        StoreError, match=r"cannot write to the store: access denied to .*AccessDenied"
    ) as raised:
        read_only.check_writable()
    assert raised.value.exit_code == ExitCode.UNREACHABLE
    # Publishing never deletes (the stack's deployer policy has no s3:DeleteObject): a role that may
    # put but not delete passes, and however often it runs it leaves one probe, which no command reads.
    no_delete = RefusingS3(boto3.client("s3"), refuse={"delete_object": "AccessDenied"})
    ModelStore(uri, s3_client=no_delete).check_writable()
    ModelStore(uri, s3_client=no_delete).check_writable()
    left = boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert [o["Key"] for o in left] == ["team/.preflight/probe"]
    assert run_cli("list", "--store", uri, env=aws_env).stdout.startswith("no models in ")


def test_a_store_folder_that_cannot_be_created_is_exit_3_before_training(tmp_path):
    (tmp_path / "a-file").write_text("not a folder\n")
    store = tmp_path / "a-file" / "store"
    for command, args in _commands(tmp_path).items():
        result = run_cli(*args, "--store", str(store))
        cli_fails(result, ExitCode.UNREACHABLE, f"cannot create the store folder file://{store}")
        assert result.stdout == "", command


def test_an_unwritable_store_folder_is_exit_3_before_training(tmp_path):
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Root writes through a folder's mode bits; sysfs refuses new files to everyone.
        if not os.path.isdir("/sys/kernel"):
            pytest.skip("running as root without /sys/kernel: no folder here is unwritable to root")
        _refused(tmp_path, Path("/sys/kernel"))
        return
    store = tmp_path / "store"
    store.mkdir()
    store.chmod(0o555)
    try:
        _refused(tmp_path, store)
    finally:
        store.chmod(0o755)


def _refused(tmp_path, store) -> None:
    for command, args in _commands(tmp_path).items():
        result = run_cli(*args, "--store", str(store))
        cli_fails(result, ExitCode.UNREACHABLE, f"cannot write to the store file://{store}")
        assert result.stdout == "", command


def test_the_check_leaves_no_folder_behind(tmp_path):
    # The store is usable, so the command gets as far as the data, which does not exist: the folders
    # the check created to prove it could are gone again.
    store = tmp_path / "new" / "nested" / "store"
    cli_fails(run_cli(*_commands(tmp_path)["train"], "--store", str(store)), ExitCode.BAD_DATA, "cannot read")
    assert not (tmp_path / "new").exists()
