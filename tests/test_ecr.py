"""ECR: image references, tag -> digest resolution and the push flow, against the moto server.

Moto speaks the ECR API but not the registry protocol, so the push test puts a recording stand-in for
the container tool first on PATH; the image it "pushes" is registered in moto with put_image so the
digest check against ECR is real.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
from helpers import ROOT

from deploy.ecr import EcrClient, parse_image, resolve_image
from deploy.errors import InvalidInput, ResourceNotFound

MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def manifest(seed: str) -> str:
    return json.dumps({"schemaVersion": 2, "mediaType": MEDIA_TYPE, "layers": [],
                       "config": {"digest": "sha256:" + seed * 64}})


@pytest.fixture
def repo(aws_env):
    import boto3

    name = f"model-service-{uuid.uuid4().hex[:8]}"
    boto3.client("ecr").create_repository(repositoryName=name)
    return name


def test_parse_image_references():
    assert parse_image("model-service:abc").tag == "abc"
    ref = parse_image("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/svc@sha256:" + "a" * 64)
    assert (ref.registry, ref.repository, ref.digest) == (
        "123456789012.dkr.ecr.us-east-1.amazonaws.com", "team/svc", "sha256:" + "a" * 64)
    for bad in ("", "Upper:tag", "svc@sha256:short", "svc:bad tag"):
        with pytest.raises(InvalidInput):
            parse_image(bad)


def test_resolve_tag_to_digest_and_refuse_unknown(repo):
    import boto3

    ecr = boto3.client("ecr")
    digest = ecr.put_image(repositoryName=repo, imageManifest=manifest("1"), imageTag="v1")["image"][
        "imageId"]["imageDigest"]
    client = EcrClient(ecr)
    uri = client.repository_uri(repo)
    assert resolve_image(client, f"{repo}:v1") == f"{uri}@{digest}"
    assert resolve_image(client, f"{uri}:v1") == f"{uri}@{digest}"
    assert resolve_image(client, f"{repo}@{digest}") == f"{uri}@{digest}"
    with pytest.raises(ResourceNotFound, match="'nope' not found"):
        resolve_image(client, f"{repo}:nope")
    with pytest.raises(ResourceNotFound, match="not found"):
        resolve_image(client, f"{repo}@sha256:" + "9" * 64)
    with pytest.raises(ResourceNotFound, match="RepositoryNotFoundException"):
        resolve_image(client, "no-such-repo:v1")
    with pytest.raises(InvalidInput, match="not an ECR image"):
        resolve_image(client, "quay.io/x/y:v1")


FAKE_TOOL = """#!/usr/bin/env bash
# Records its arguments; plays podman for `image inspect`, `login`, `tag`, `push --digestfile`.
echo "$*" >> "$TOOL_LOG"
case "$1" in
  image) [[ "$3" == "$KNOWN_IMAGE" ]] ;;
  login) cat > "$TOOL_LOG.password" ;;
  push) while [[ $# -gt 0 ]]; do
          [[ "$1" == --digestfile ]] && printf '%s' "$PUSH_DIGEST" > "$2"; shift
        done ;;
esac
"""


@pytest.fixture
def fake_podman(repo, aws_env, tmp_path):
    """The recording podman on PATH, with `model-service:abc123` built and its digest in ECR."""
    import boto3

    digest = boto3.client("ecr").put_image(repositoryName=repo, imageManifest=manifest("3"),
                                           imageTag="abc123")["image"]["imageId"]["imageDigest"]
    tool = tmp_path / "bin/podman"
    tool.parent.mkdir()
    tool.write_text(FAKE_TOOL)
    tool.chmod(0o755)
    env = {**aws_env, "PATH": f"{tool.parent}{os.pathsep}{os.environ['PATH']}",
           "TOOL_LOG": str(tmp_path / "log"), "KNOWN_IMAGE": "model-service:abc123",
           "PUSH_DIGEST": digest, "ECR_REPOSITORY": repo}
    return {"env": env, "digest": digest, "log": tmp_path / "log", "uri": EcrClient(
        boto3.client("ecr")).repository_uri(repo), "repo": repo}


def push_image(env, *args):
    return subprocess.run([str(ROOT / "scripts/push-image"), "--builder", "podman", "--tag", "abc123", *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_push_logs_in_tags_pushes_and_prints_the_ecr_digest(fake_podman):
    env, digest, uri = fake_podman["env"], fake_podman["digest"], fake_podman["uri"]
    result = push_image(env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"{uri}@{digest}"
    calls = fake_podman["log"].read_text().splitlines()
    assert calls[1].startswith("login --username AWS --password-stdin ")
    assert calls[2] == f"tag model-service:abc123 {uri}:abc123"
    assert calls[3].startswith("push --digestfile ") and calls[3].endswith(f"{uri}:abc123")
    assert (fake_podman["log"].parent / "log.password").read_text()  # the token went through stdin

    missing = subprocess.run([str(ROOT / "scripts/push-image"), "--builder", "podman",
                              "--tag", "never-built"],
                             capture_output=True, text=True, env=env)
    assert missing.returncode == 4
    assert missing.stderr.strip() == "error: no local image model-service:never-built: build it first " \
                                     "(scripts/build-image)"
    assert len(fake_podman["log"].read_text().splitlines()) == len(calls) + 1  # only the inspect ran


def test_a_digest_ecr_does_not_confirm_fails_the_push(fake_podman):
    env = {**fake_podman["env"], "PUSH_DIGEST": "sha256:" + "7" * 64}
    result = push_image(env)
    assert result.returncode == 10
    assert result.stderr.startswith("error: pushed digest sha256:777") and "but ECR has" in result.stderr
