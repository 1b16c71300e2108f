"""The local ECR endpoint: moto's ECR API in front of a real registry, answering as ECR would.

The image is pushed with the registry protocol itself (blob uploads, then the manifest), which is
what podman does, so no container tool is needed here; the pipeline test pushes with podman. The
product's own ECR client (deploy/ecr.py) reads the answers, as `make push` and `make deploy` do.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.request
import uuid

import pytest
from helpers import require_tool

from deploy.ecr import EcrClient, resolve_image
from standin.ecr_endpoint import EcrEndpoint
from standin.registry import LocalRegistry

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
def local_ecr(moto_endpoint, aws_env, tmp_path):
    """A registry on 127.0.0.1, the endpoint in front of moto, and a fresh repository created through it."""
    import boto3

    require_tool("docker-registry", "the local registry of pipeline-local")
    registry = LocalRegistry(tmp_path / "registry").start()
    endpoint = EcrEndpoint(moto_endpoint, boto3.client("ecr"), registry, log=lambda line: None).start()
    ecr = boto3.client("ecr", endpoint_url=endpoint.url)  # what AWS_ENDPOINT_URL_ECR selects
    repository = f"model-service-{uuid.uuid4().hex[:8]}"
    ecr.create_repository(repositoryName=repository)
    yield {"registry": registry, "endpoint": endpoint, "ecr": ecr, "repository": repository}
    endpoint.stop()
    registry.stop()


def test_the_login_and_the_repository_name_the_local_registry(local_ecr):
    registry, client = local_ecr["registry"], EcrClient(local_ecr["ecr"])
    login = client.login()
    assert login.registry == registry.host and login.username == "AWS" and login.password
    assert client.repository_uri(local_ecr["repository"]) == f"{registry.host}/{local_ecr['repository']}"
    token = local_ecr["ecr"].get_authorization_token()["authorizationData"][0]["authorizationToken"]
    assert base64.b64decode(token).decode().startswith("AWS:")  # moto's token, passed through


def test_a_pushed_tag_is_in_ecr_at_once_with_the_registry_digest(local_ecr):
    registry, ecr, repository = local_ecr["registry"], local_ecr["ecr"], local_ecr["repository"]
    manifest, registry_digest = push_image(registry, repository, "abc123")

    # No waiting: ECR knows a pushed tag as soon as the push returns.
    assert EcrClient(ecr).image_digest(repository, "abc123") == registry_digest
    assert registry_digest == "sha256:" + hashlib.sha256(manifest).hexdigest()
    image = ecr.describe_images(repositoryName=repository)["imageDetails"][0]
    assert image["imageManifestMediaType"] == MEDIA_TYPE
    stored = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": "abc123"}])
    assert stored["images"][0]["imageManifest"].encode() == manifest  # the exact bytes, not re-encoded
    assert resolve_image(EcrClient(ecr), f"{repository}:abc123") == \
        f"{registry.host}/{repository}@{registry_digest}"
    assert local_ecr["endpoint"].errors == []


def test_a_moved_tag_follows_the_registry(local_ecr):
    registry, ecr, repository = local_ecr["registry"], local_ecr["ecr"], local_ecr["repository"]
    push_image(registry, repository, "latest")
    EcrClient(ecr).image_digest(repository, "latest")
    _, second = push_image(registry, repository, "latest")
    assert EcrClient(ecr).image_digest(repository, "latest") == second


def test_api_errors_pass_through(local_ecr):
    from deploy.errors import ResourceNotFound

    with pytest.raises(ResourceNotFound, match="never-pushed"):
        EcrClient(local_ecr["ecr"]).image_digest(local_ecr["repository"], "never-pushed")
    with pytest.raises(ResourceNotFound, match="RepositoryNotFoundException"):
        EcrClient(local_ecr["ecr"]).repository_uri("no-such-repository")


def test_moto_alone_would_not_give_the_registry_digest(local_ecr):
    """Why the endpoint passes imageDigest: moto hashes the layer digests, not the manifest bytes."""
    import boto3

    registry, repository = local_ecr["registry"], local_ecr["repository"]
    manifest, registry_digest = push_image(registry, repository, "t1")
    plain_ecr = boto3.client("ecr")  # moto itself
    plain_ecr.create_repository(repositoryName=repository + "-plain")
    plain = plain_ecr.put_image(repositoryName=repository + "-plain", imageManifest=manifest.decode(),
                                imageTag="t1")["image"]["imageId"]["imageDigest"]
    assert plain != registry_digest


def test_a_manifest_whose_bytes_do_not_match_the_digest_is_not_recorded(local_ecr):
    import boto3

    from deploy.errors import ToolError

    class Lying:
        host, url = "127.0.0.1:1", "http://127.0.0.1:1"

        def tags(self, repository):
            return ["x"]

        def manifest(self, repository, reference):
            return b'{"schemaVersion": 2}', MEDIA_TYPE, "sha256:" + "0" * 64

    endpoint = EcrEndpoint("http://127.0.0.1:1", boto3.client("ecr"), Lying(), log=lambda line: None)
    with pytest.raises(ToolError, match="hashes to"):
        endpoint.sync(local_ecr["repository"])
    assert boto3.client("ecr").describe_images(repositoryName=local_ecr["repository"])["imageDetails"] == []
