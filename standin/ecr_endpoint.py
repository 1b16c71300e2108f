"""ECR on a laptop: moto's ECR API in front of a real registry on 127.0.0.1, as one service.

In AWS, ECR's API and its registry endpoint are one service: `get_authorization_token` names the
registry to log in to, `repositoryUri` is where to push, and once `podman push` returns,
`describe_images` knows the tag and its digest. moto answers the API but speaks no registry
protocol. This endpoint joins the two, so the product's push and rollout code runs unchanged with
`AWS_ENDPOINT_URL_ECR` pointing here:

- every ECR API call is forwarded to moto;
- `GetAuthorizationToken` answers the local registry as `proxyEndpoint`, and `CreateRepository` /
  `DescribeRepositories` answer `repositoryUri` on it (`127.0.0.1:PORT/<name>`);
- before `DescribeImages`, `BatchGetImage` and `ListImages` answer, the repository's tags in the
  registry are recorded in moto with `put_image`: the exact manifest bytes, checked to hash to the
  registry's digest, passed as `imageDigest` (moto would otherwise hash the layer list, and name an
  image the registry does not have). Reading on demand, not on a notification, means a push is
  visible the moment it returns, as in ECR.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import sys
import threading
import time
import urllib.error
import urllib.request

from deploy.errors import DeployError, ToolError

_TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
_SYNC_FIRST = {"DescribeImages", "BatchGetImage", "ListImages"}
# Request headers passed on to moto (the rest are hop-by-hop or rewritten by urllib).
_FORWARDED = ("Content-Type", "X-Amz-Target", "X-Amz-Date", "X-Amz-Security-Token", "Authorization",
              "User-Agent")


class EcrEndpoint:
    """Serves ECR's API on 127.0.0.1:<free port> (see the module docstring); start() then stop().

    `moto_url` is the moto server; `ecr` a boto3 ECR client for it; `registry` has `host`, `url`,
    `tags(repo)` and `manifest(repo, ref)` (standin.registry.LocalRegistry).
    """

    def __init__(self, moto_url: str, ecr, registry, log=None):
        self.moto_url, self.ecr, self.registry = moto_url.rstrip("/"), ecr, registry
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.recorded: list[tuple[str, str, str]] = []  # (repository, tag, digest)
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """What AWS_ENDPOINT_URL_ECR is set to."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> EcrEndpoint:
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, content_type, answer = endpoint.handle(self.path, dict(self.headers), body)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="local-ecr", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def handle(self, path: str, headers: dict, body: bytes) -> tuple[int, str, bytes]:
        """One API call: sync the registry if it reads images, forward to moto, rewrite the answer."""
        action = headers.get("X-Amz-Target", "").removeprefix(_TARGET_PREFIX)
        if action in _SYNC_FIRST:
            try:
                self.sync(json.loads(body or b"{}").get("repositoryName", ""))
            except (DeployError, ValueError, AttributeError) as exc:
                self.errors.append(str(exc))
                self.log(f"{time.strftime('%H:%M:%S')} local-ecr: error: {exc}")
        request = urllib.request.Request(self.moto_url + path, data=body, method="POST",
                                         headers={k: v for k, v in headers.items() if k in _FORWARDED})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                content_type, data = answer.headers.get("Content-Type", ""), answer.read()
        except urllib.error.HTTPError as exc:  # an API error: passed on as moto answered it
            return exc.code, exc.headers.get("Content-Type", ""), exc.read()
        return 200, content_type, self._rewrite(action, data)

    def _rewrite(self, action: str, data: bytes) -> bytes:
        """Name the local registry where ECR would name its own."""
        if action not in ("GetAuthorizationToken", "CreateRepository", "DescribeRepositories"):
            return data
        answer = json.loads(data)
        for auth in answer.get("authorizationData", []):
            auth["proxyEndpoint"] = self.registry.url
        for repository in [answer.get("repository"), *answer.get("repositories", [])]:
            if repository:
                repository["repositoryUri"] = f"{self.registry.host}/{repository['repositoryName']}"
        return json.dumps(answer).encode()

    def sync(self, repository: str) -> None:
        """Record every tag of `repository` that the registry has and moto lacks (or has elsewhere)."""
        if not repository:
            return
        with self._lock:
            known = {}
            for detail in self._moto_images(repository):
                for tag in detail.get("imageTags", []):
                    known[tag] = detail["imageDigest"]
            for tag in self.registry.tags(repository):
                _, _, digest = self.registry.manifest(repository, tag)
                if known.get(tag) != digest:
                    self.record(repository, tag)

    def _moto_images(self, repository: str) -> list[dict]:
        from botocore.exceptions import ClientError

        try:
            return self.ecr.describe_images(repositoryName=repository)["imageDetails"]
        except ClientError:
            return []  # no such repository in ECR: the API call itself will say so

    def record(self, repository: str, tag: str) -> str:
        """Put repository:tag's manifest into moto with the registry's digest; returns the digest."""
        from botocore.exceptions import ClientError

        manifest, media_type, registry_digest = self.registry.manifest(repository, tag)
        computed = "sha256:" + hashlib.sha256(manifest).hexdigest()
        if computed != registry_digest:
            raise ToolError(f"manifest of {repository}:{tag} hashes to {computed}, the registry says "
                            f"{registry_digest}")
        try:
            image = self.ecr.put_image(repositoryName=repository, imageManifest=manifest.decode(),
                                       imageManifestMediaType=media_type, imageTag=tag,
                                       imageDigest=computed)["image"]
            recorded = image["imageId"]["imageDigest"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ImageAlreadyExistsException":
                raise ToolError(f"put_image {repository}:{tag}: {exc}") from None
            recorded = computed
        if recorded != computed:
            raise ToolError(f"ECR recorded {repository}:{tag} as {recorded}, not {computed}")
        self.recorded.append((repository, tag, computed))
        self.log(f"{time.strftime('%H:%M:%S')} local-ecr: {repository}:{tag} is {computed} in ECR")
        return computed

