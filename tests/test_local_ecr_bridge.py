"""The local registry and the ECR bridge: a push to the registry appears in moto's ECR, same digest.

The image is pushed with the registry protocol itself (blob uploads, then the manifest), which is
what podman does, so no container tool is needed here; the pipeline test pushes with podman.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
import uuid

import pytest
from conftest import require_tool

from ops.local_ecr_bridge import EcrBridge
from ops.local_registry import LocalRegistry

MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def upload_blob(registry: LocalRegistry, repository: str, data: bytes) -> str:
    """Monolithic blob upload (POST a session, PUT the bytes with their digest)."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = urllib.request.Request(f"{registry.url}/v2/{repository}/blobs/uploads/", method="POST")
    with urllib.request.urlopen(start, timeout=10) as answer:
        location = answer.headers["Location"]
    location = location if location.startswith("http") else registry.url + location
    separator = "&" if "?" in location else "?"
    put = urllib.request.Request(f"{location}{separator}digest={digest}", data=data, method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(put, timeout=10) as answer:
        assert answer.status == 201
    return digest


def push_image(registry: LocalRegistry, repository: str, tag: str) -> tuple[bytes, str]:
    """Push a config and one layer, then a v2 manifest by tag; returns (manifest bytes, digest)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
                                                                             "diff_ids": []}}).encode()
    layer = uuid.uuid4().bytes * 64
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MEDIA_TYPE,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config),
                   "digest": upload_blob(registry, repository, config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer),
                    "digest": upload_blob(registry, repository, layer)}],
    }, indent=3).encode()  # unusual formatting: the digest must come from these exact bytes
    put = urllib.request.Request(f"{registry.url}/v2/{repository}/manifests/{tag}", data=manifest,
                                 method="PUT", headers={"Content-Type": MEDIA_TYPE})
    with urllib.request.urlopen(put, timeout=10) as answer:
        return manifest, answer.headers["Docker-Content-Digest"]


@pytest.fixture
def bridged(aws_env, tmp_path):
    """A registry on 127.0.0.1 whose pushes the bridge records in a fresh moto ECR repository."""
    import boto3

    require_tool("docker-registry", "the local registry of pipeline-local")
    ecr = boto3.client("ecr")
    repository = f"model-service-{uuid.uuid4().hex[:8]}"
    ecr.create_repository(repositoryName=repository)
    registry = LocalRegistry(tmp_path / "registry")
    bridge = EcrBridge(ecr, registry, log=lambda line: None).start()
    registry.start(notify_url=bridge.url)
    yield {"registry": registry, "bridge": bridge, "ecr": ecr, "repository": repository}
    registry.stop()
    bridge.stop()


def wait_for_tag(ecr, repository: str, tag: str, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        details = ecr.describe_images(repositoryName=repository)["imageDetails"]
        found = [d for d in details if tag in d.get("imageTags", [])]
        if found:
            return found[0]
        time.sleep(0.1)
    pytest.fail(f"{repository}:{tag} never appeared in ECR")


def test_a_pushed_tag_appears_in_ecr_with_the_registry_digest(bridged):
    registry, ecr, repository = bridged["registry"], bridged["ecr"], bridged["repository"]
    manifest, registry_digest = push_image(registry, repository, "abc123")

    image = wait_for_tag(ecr, repository, "abc123")

    assert registry_digest == "sha256:" + hashlib.sha256(manifest).hexdigest()
    assert image["imageDigest"] == registry_digest
    assert image["imageManifestMediaType"] == MEDIA_TYPE
    stored = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": "abc123"}])
    assert stored["images"][0]["imageManifest"].encode() == manifest  # the exact bytes, not re-encoded
    assert bridged["bridge"].errors == []


def test_moto_alone_would_not_give_the_registry_digest(bridged):
    """Why the bridge passes imageDigest: moto hashes the layer digests, not the manifest bytes."""
    registry, ecr, repository = bridged["registry"], bridged["ecr"], bridged["repository"]
    manifest, registry_digest = push_image(registry, repository, "t1")
    wait_for_tag(ecr, repository, "t1")
    ecr.create_repository(repositoryName=repository + "-plain")
    plain = ecr.put_image(repositoryName=repository + "-plain", imageManifest=manifest.decode(),
                          imageTag="t1")["image"]["imageId"]["imageDigest"]
    assert plain != registry_digest


def test_a_manifest_whose_bytes_do_not_match_the_digest_is_not_recorded(bridged):
    class Lying:
        host = "127.0.0.1:1"

        def manifest(self, repository, reference):
            return b'{"schemaVersion": 2}', MEDIA_TYPE, "sha256:" + "0" * 64

    bridge = EcrBridge(bridged["ecr"], Lying(), log=lambda line: None)
    event = {"events": [{"action": "push", "target": {"repository": bridged["repository"], "tag": "x",
                                                      "digest": "sha256:" + "0" * 64}}]}
    assert bridge.handle(json.dumps(event).encode()) is False  # the registry retries the delivery
    assert "hashes to" in bridge.errors[0]
    assert bridged["ecr"].describe_images(repositoryName=bridged["repository"])["imageDetails"] == []
