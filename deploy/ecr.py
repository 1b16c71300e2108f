"""ECR: find a repository, turn `repo:tag` into an immutable `repo@sha256:...`, and log a tool in.

`EcrClient` is the thin boto3 wrapper (one method per API call); the functions below hold the logic.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from deploy.aws import aws_errors
from deploy.errors import InvalidInput, ResourceNotFound

# <account>.dkr.ecr.<region>.amazonaws.com (and .com.cn): the registry part of an ECR image reference.
_ECR_HOST_RE = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
_REPO_RE = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class Login:
    """Credentials for `podman/docker login` to an ECR registry."""

    registry: str
    username: str
    password: str


class EcrClient:
    """One method per ECR API call; the boto3 client is passed in."""

    def __init__(self, boto_client):
        self.boto = boto_client

    def repository_uri(self, repository: str) -> str:
        """`<registry>/<repository>`, or ResourceNotFound."""
        with aws_errors(f"describe ECR repository {repository}"):
            answer = self.boto.describe_repositories(repositoryNames=[repository])
        return answer["repositories"][0]["repositoryUri"]

    def image_digest(self, repository: str, tag: str) -> str:
        """The sha256 digest an image tag points at, or ResourceNotFound."""
        from botocore.exceptions import ClientError

        with aws_errors(f"look up image {repository}:{tag} in ECR"):
            try:
                answer = self.boto.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ImageNotFoundException":
                    raise
                answer = {}
        details = answer.get("imageDetails") or []
        if not details:
            raise ResourceNotFound(f"image tag {tag!r} not found in ECR repository {repository!r}")
        return details[0]["imageDigest"]

    def has_digest(self, repository: str, digest: str) -> bool:
        """True if the repository holds an image with this digest."""
        from botocore.exceptions import ClientError

        with aws_errors(f"look up image {repository}@{digest} in ECR"):
            try:
                answer = self.boto.describe_images(
                    repositoryName=repository, imageIds=[{"imageDigest": digest}]
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ImageNotFoundException":
                    return False
                raise
        return bool(answer.get("imageDetails"))

    def login(self) -> Login:
        """A registry login from get_authorization_token (valid for 12 hours)."""
        with aws_errors("get an ECR authorization token"):
            data = self.boto.get_authorization_token()["authorizationData"][0]
        username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        registry = data["proxyEndpoint"].removeprefix("https://").removeprefix("http://").rstrip("/")
        return Login(registry=registry, username=username, password=password)


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference: [registry/]repository[:tag][@digest]."""

    registry: str | None
    repository: str
    tag: str | None
    digest: str | None


def parse_image(ref: str) -> ImageRef:
    """Parse an image reference, refusing anything malformed with InvalidInput."""
    text = (ref or "").strip()
    rest, _, digest = text.partition("@")
    if digest and not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise InvalidInput(f"invalid image digest in {ref!r} (expected sha256:<64 hex digits>)")
    registry = None
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, rest = first, remainder
    name, colon, tag = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if not _REPO_RE.match(name or ""):
        raise InvalidInput(f"invalid image reference {ref!r}")
    if colon and not _TAG_RE.match(tag):
        raise InvalidInput(f"invalid image tag in {ref!r}")
    return ImageRef(registry, name, tag or None, digest or None)


def resolve_image(ecr: EcrClient, ref: str) -> str:
    """`repo:tag` (or `<ecr registry>/repo:tag`, or a digest) -> `<registry>/<repo>@sha256:...` from ECR.

    The tag is looked up in ECR, so a tag that was never pushed is refused before anything changes.
    """
    image = parse_image(ref)
    if image.registry and not _ECR_HOST_RE.match(image.registry):
        # A non-ECR registry cannot be checked here; only an explicit digest is accepted from it.
        if image.digest:
            return f"{image.registry}/{image.repository}@{image.digest}"
        raise InvalidInput(f"{ref!r} is not an ECR image: pass it with --image-digest repo@sha256:...")
    uri = ecr.repository_uri(image.repository)
    if image.digest:
        if not ecr.has_digest(image.repository, image.digest):
            raise ResourceNotFound(f"image {image.digest} not found in ECR repository {image.repository!r}")
        return f"{uri}@{image.digest}"
    if not image.tag:
        raise InvalidInput(f"image {ref!r} has neither a tag nor a digest")
    return f"{uri}@{ecr.image_digest(image.repository, image.tag)}"
