"""Shared fixtures: a moto server on 127.0.0.1, stores on both backends, a tiny trained model.

AWS is reached only through `AWS_ENDPOINT_URL` pointing at the moto server that this session
starts, so the code under test runs the same boto3 path it runs against AWS.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

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


def require_tool(name: str, reason: str = "") -> str:
    """Path of a system tool; skip the test without it, but fail in CI where it must exist."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed{': ' + reason if reason else ''} (.ci/run installs it)"
    if IN_CI:
        pytest.fail(f"CI must run this test: {message}")
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint():
    """URL of a moto server (S3, ECR, ECS, EC2, ...) on 127.0.0.1 for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


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
    """(artifact bytes, manifest) of the default model, trained once per session."""
    from model.data import load_dataset
    from model.train import train

    return train(load_dataset("digits"), name="digits")


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


def run_cli(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run `python -m model ...` as a user would, capturing its output."""
    return subprocess.run(
        [PYTHON, "-m", "model", *args],
        capture_output=True,
        text=True,
        env=env or os.environ.copy(),
        cwd=cwd,
        timeout=300,
    )


# ---- service fixtures -----------------------------------------------------------------------
# Import this checkout's packages even if the venv's editable install points at another copy of
# the repository (a test that copies the workspace and reinstalls it rewrites that mapping).
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


class GunicornServer:
    """A real `gunicorn --config service/gunicorn.conf.py service.wsgi:app` on 127.0.0.1."""

    def __init__(self, folder: Path, env: dict, workers: int = 2, wait_ready: bool = True):
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.pidfile = folder / "gunicorn.pid"
        self.metrics_dir = folder / "metrics"
        self.log_path = folder / "gunicorn.log"
        # The server's own address and files win over `env`, which may be a copy of os.environ.
        self.env = {
            **os.environ,
            "WEB_CONCURRENCY": str(workers),
            **env,
            "PORT": str(self.port),
            "PIDFILE": str(self.pidfile),
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
        }
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", "--config", "service/gunicorn.conf.py", "service.wsgi:app"],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.wait_until("/ready" if wait_ready else "/health")

    def wait_until(self, path: str, timeout: float = 60) -> None:
        """Wait until GET path answers 200 (or fail with the server's log)."""
        import time

        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"gunicorn exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                if requests.get(self.url + path, timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        pytest.fail(f"{self.url}{path} not 200 after {timeout} s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        """Everything the server wrote so far (JSON lines)."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM the master (graceful shutdown) and return its exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


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
    from ops.base_image import ensure_debian_base
    from ops.podman_sandbox import sandbox_env

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
