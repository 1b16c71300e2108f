"""Shared fixtures: a moto server on 127.0.0.1, stores on both backends, a tiny trained model.

AWS is reached only through `AWS_ENDPOINT_URL` pointing at the moto server that this session
starts, so the code under test runs the same boto3 path it runs against AWS.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import pytest
from helpers import CHROMIUM_ARGS, ROOT, GunicornServer, require_tool

# No test may reach real AWS: fake credentials and a region, set before any client is built.
for _key, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}.items():
    os.environ[_key] = _value
# Nor may the caller's service settings leak in (make exports some; a developer may have others).
for _key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "MODEL_STORE", "MODEL_NAME", "MODEL_VERSION",
             "MODEL_ALIAS", "MODEL_CACHE_DIR", "PORT", "HOST", "BIND", "PIDFILE", "WEB_CONCURRENCY",
             "PROMETHEUS_MULTIPROC_DIR", "LOG_LEVEL"):
    os.environ.pop(_key, None)
# moto's ECS only reports a service as stable (running == desired) with this set in its process.
os.environ["MOTO_ECS_SERVICE_RUNNING"] = "1"


@pytest.fixture(scope="session")
def moto_endpoint():
    """URL of a moto server (S3, ECR, ECS, EC2, ...) on 127.0.0.1 for the whole session."""
    from standin.aws import LocalAws

    with LocalAws() as aws:
        yield aws.endpoint


@pytest.fixture
def aws_env(moto_endpoint, monkeypatch):
    """Point boto3 (in this process and in subprocesses) at the moto server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    return {**os.environ, "AWS_ENDPOINT_URL": moto_endpoint}


@pytest.fixture
def s3_bucket(aws_env):
    """A fresh, empty bucket on the moto server."""
    import boto3

    name = f"models-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["local", "s3"])
def store_uri(request, tmp_path):
    """A store URI on each backend: a temporary folder, and a prefix in a fresh moto bucket."""
    if request.param == "local":
        return str(tmp_path / "store")
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/team/models"


@pytest.fixture(scope="session")
def trained_digits():
    """(artifact bytes, manifest) of the default model, trained once per session.

    Not compiled to ONNX, so tests can publish the pair alone (tests/test_compiled.py covers model.onnx).
    """
    from model.data import load_dataset
    from model.train import train

    return tuple(train(load_dataset("digits"), name="digits", compile=False))


@pytest.fixture(scope="session")
def trained_iris():
    """(artifact bytes, manifest) of an iris model, trained once per session: a second model name."""
    from model.data import load_dataset
    from model.train import train

    return tuple(train(load_dataset("iris"), name="iris", compile=False))


@pytest.fixture
def two_models(store_uri, trained_digits, trained_iris):
    """A store on each backend with two models: digits, two versions (production on the older), and
    iris, one version, no alias. Yields {"uri", "digits": [newest, older], "iris": [version]}."""
    from model.store import ModelStore

    store = ModelStore(store_uri)
    artifact, manifest = trained_digits
    later = dict(manifest, version=f"20990101T000000Z-{manifest['artifact']['sha256'][:8]}")
    store.publish(artifact, manifest)
    store.publish(artifact, later)
    store.move_alias("digits", "production", manifest["version"])
    store.publish(*trained_iris)
    return {"uri": store_uri, "digits": [later["version"], manifest["version"]],
            "iris": [trained_iris[1]["version"]]}


@pytest.fixture
def local_store(tmp_path, trained_digits):
    """A local store holding one published digits version with `production` pointing at it."""
    from model.store import ModelStore

    uri = str(tmp_path / "store")
    store = ModelStore(uri)
    artifact, manifest = trained_digits
    store.publish(artifact, manifest)
    store.move_alias("digits", "production", manifest["version"])
    return uri


@pytest.fixture
def version_server():
    """An HTTP server on 127.0.0.1 answering GET /model with a settable `.version` (tests/fakes.py)."""
    from fakes import VersionServer

    server = VersionServer()
    yield server
    server.close()


# ---- service fixtures -----------------------------------------------------------------------
# Import this checkout's packages even if the venv's editable install points at another copy of
# the repository (a test that copies the workspace and reinstalls it rewrites that mapping).
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def served_store(tmp_path_factory, trained_digits):
    """A store (session-wide, treat as read-only) with the digits model and `production` on it."""
    from model.store import ModelStore

    uri = str(tmp_path_factory.mktemp("served") / "store")
    store = ModelStore(uri)
    artifact, manifest = trained_digits
    store.publish(artifact, manifest)
    store.move_alias("digits", "production", manifest["version"])
    return uri


@pytest.fixture(scope="session")
def gunicorn_server(served_store, tmp_path_factory):
    """A shared gunicorn (2 workers) serving `served_store`; ready when yielded."""
    server = GunicornServer(
        tmp_path_factory.mktemp("gunicorn"), {"MODEL_STORE": served_store, "MODEL_NAME": "digits"}
    )
    yield server
    server.stop()


# ---- image fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def podman_sandbox(tmp_path_factory):
    """podman confined to one folder for the session, with the debootstrapped base image built once.

    Shared by the image test and the local pipeline run (`--podman-root`), so the second finds the
    base and the dependency layers already there. Yields {"root", "env", "base"}; the test sets
    `env` in its environment (monkeypatch) to use this storage.
    """
    require_tool("podman", "builds and runs the service image")
    require_tool("runc", "the OCI runtime podman uses here")
    require_tool("debootstrap", "makes the base image without Docker Hub")
    from standin.base_image import ensure_debian_base
    from standin.podman import sandbox_env

    root = tmp_path_factory.mktemp("podman")
    env = sandbox_env(root)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        base = ensure_debian_base("podman", root / "base", log=lambda line: print(line, file=sys.stderr))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    yield {"root": root, "env": env, "base": base}
    subprocess.run(["podman", "system", "reset", "--force"], capture_output=True, timeout=300,
                   env={**os.environ, **env})
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def podman_env(podman_sandbox, monkeypatch):
    """The session's podman storage selected in this process."""
    for key, value in podman_sandbox["env"].items():
        monkeypatch.setenv(key, value)
    return podman_sandbox


# ---- training-task fixtures -----------------------------------------------------------------
@pytest.fixture
def training_cluster(aws_env, s3_bucket):
    """What the stack gives scripts/train-task, in moto: a cluster, a subnet, a security group, a log
    group and the training task definition (ecs/train-task-def.json), plus the variables naming them."""
    import boto3

    from deploy.task_def import render_file

    suffix = uuid.uuid4().hex[:8]
    ec2, ecs, logs = boto3.client("ec2"), boto3.client("ecs"), boto3.client("logs")
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.7.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"train-{suffix}", Description="training",
                                      VpcId=vpc)["GroupId"]
    cluster = family = f"train-{suffix}"
    ecs.create_cluster(clusterName=cluster)
    log_group = f"/ecs/train-{suffix}"
    logs.create_log_group(logGroupName=log_group)
    store = f"s3://{s3_bucket}/models"
    definition = render_file(ROOT / "ecs/train-task-def.json", {
        "FAMILY": family, "TASK_ROLE_ARN": "arn:aws:iam::123456789012:role/train",
        "EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/execution",
        "TRAIN_IMAGE": "local/model-train:checkout", "MODEL_STORE": store, "MODEL_NAME": "digits",
        "AWS_REGION": "us-east-1", "LOG_GROUP": log_group,
    })
    ecs.register_task_definition(**definition)
    env = {**aws_env, "ECS_CLUSTER": cluster, "TRAIN_TASK_FAMILY": family, "TRAIN_SUBNETS": subnet,
           "TRAIN_SECURITY_GROUPS": group, "MODEL_STORE": store, "MODEL_NAME": "digits"}
    return {"env": env, "cluster": cluster, "family": family, "store": store, "bucket": s3_bucket,
            "log_group": log_group}


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (playwright driving the system's chromium) for the tests of the pages and
    reports a person looks at; skipped with the reason where chromium is missing (never in CI)."""
    require_tool("chromium", "the page and report tests render in a real browser")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
