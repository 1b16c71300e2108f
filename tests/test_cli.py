"""`python -m model` as a user runs it: the whole flow on both backends, exit codes, one-line errors."""

import json
import os

import boto3
import pytest
from helpers import cli_fails as _fails
from helpers import cli_ok as _ok
from helpers import run_cli

COMMANDS = ["train", "publish", "gate", "list", "models", "show", "resolve", "promote", "rollback", "verify",
            "clean", "keygen", "history"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    assert "usage: python -m model " + command in _ok(run_cli(command, "--help"))


@pytest.fixture
def cli_env(store_uri, aws_env):
    return {**aws_env, "MODEL_STORE": store_uri, "MODEL_NAME": "digits"}


def test_train_publish_list_promote_rollback_verify(cli_env, tmp_path):
    out = _ok(run_cli("train", "--promote", "production", env=cli_env))
    assert "gate: no baseline" in out and "production -> " in out
    first = _ok(run_cli("resolve", env=cli_env)).strip()

    # A pipeline-style second version: candidate folder, gate, publish, promote.
    candidate = tmp_path / "cand"
    _ok(run_cli("train", "--dataset", "digits", "--param", "C=0.5", "--out", str(candidate),
                env=cli_env))
    assert "passes" in _ok(run_cli("gate", str(candidate), env=cli_env))
    _ok(run_cli("publish", str(candidate), "--version-file", str(tmp_path / "v"), env=cli_env))
    second = (tmp_path / "v").read_text().strip()
    assert second != first

    listing = json.loads(_ok(run_cli("list", "--json", env=cli_env)))
    assert [v["version"] for v in listing["versions"]] == sorted([first, second], reverse=True)
    assert listing["versions"][1]["aliases"] == ["production"]

    _ok(run_cli("promote", second, env=cli_env))
    assert _ok(run_cli("resolve", env=cli_env)).strip() == second
    assert json.loads(_ok(run_cli("show", env=cli_env)))["params"]["C"] == "0.5"
    assert "ok: digits " + second in _ok(run_cli("verify", env=cli_env))
    assert f"rolled back from {second}" in _ok(run_cli("rollback", env=cli_env))
    assert _ok(run_cli("resolve", env=cli_env)).strip() == first
    assert "production" in _ok(run_cli("list", env=cli_env))


def test_s3_layout_after_a_publish(s3_bucket, aws_env):
    env = {**aws_env, "MODEL_STORE": f"s3://{s3_bucket}/models"}
    _ok(run_cli("train", "--promote", "production", env=env))
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]]
    version = _ok(run_cli("resolve", env=env)).strip()
    history = [k for k in keys if k.startswith("models/digits/history/production/")]
    assert len(history) == 1 and history[0].endswith(f"-{version}.json")
    assert sorted(k for k in keys if k not in history) == [
        "models/digits/aliases/production.json",
        f"models/digits/versions/{version}/manifest.json",
        f"models/digits/versions/{version}/model.joblib",
        f"models/digits/versions/{version}/model.onnx",
        f"models/digits/versions/{version}/report.html",
    ]


def test_gate_refusal_publishes_nothing(cli_env):
    _ok(run_cli("train", "--promote", "production", env=cli_env))
    # A badly regularised model is much worse than the one in production.
    result = run_cli("train", "--param", "C=0.00001", env=cli_env)
    _fails(result, 8, "FAILS")
    assert len(json.loads(_ok(run_cli("list", "--json", env=cli_env)))["versions"]) == 1
    forced = run_cli("train", "--param", "C=0.00001", "--force", env=cli_env)
    assert forced.returncode == 0, forced.stderr
    assert len(json.loads(_ok(run_cli("list", "--json", env=cli_env)))["versions"]) == 2


def test_errors_are_one_line_with_exit_codes(local_store, tmp_path, aws_env):
    env = {**aws_env, "MODEL_STORE": local_store}
    _fails(run_cli("show", "--version", "20000101T000000Z-00000000", env=env), 4, "not found")
    _fails(run_cli("show", "--name", "nope", env=env), 4, "no versions")
    _fails(run_cli("resolve", "--alias", "staging", env=env), 4, "not set")
    _fails(run_cli("promote", "20000101T000000Z-00000000", env=env), 4, "not found")
    _fails(run_cli("rollback", env=env), 4, "no previous version")
    _fails(run_cli("list", "--store", "ftp://x/y", env=env), 3, "malformed store URI")
    _fails(run_cli("list", "--store", "s3://missing-bucket-xyz/m", env=env), 4, "does not exist")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    _fails(run_cli("train", "--dataset", str(bad), env=env), 7, "no label column")
    texts = tmp_path / "texts.csv"
    texts.write_text("body,label\nhello,a\nbye,b\n")
    _fails(run_cli("train", "--dataset", str(texts), "--text-column", "text", env=env), 7,
           "has no text column 'text' (columns: body, label); name it with --text-column")
    _fails(run_cli("publish", str(tmp_path), env=env), 7, "not a candidate folder")
    assert run_cli("list", "--bogus", env=env).returncode == 2


def test_tampered_version_fails_verify(local_store, aws_env):
    env = {**aws_env, "MODEL_STORE": local_store}
    version = _ok(run_cli("resolve", env=env)).strip()
    path = os.path.join(local_store, "digits", "versions", version, "model.joblib")
    with open(path, "r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00\x01\x02\x03")
    _fails(run_cli("verify", env=env), 6, "sha256")


def test_no_credentials(s3_bucket, aws_env, tmp_path):
    env = {k: v for k, v in aws_env.items() if not k.startswith("AWS_") or k in
           ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")}
    env |= {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true",
            "MODEL_STORE": f"s3://{s3_bucket}/m"}
    _fails(run_cli("list", env=env), 3, "no AWS credentials")
