"""The local ECR bridge: what is pushed to the local registry appears in moto's ECR, same digest.

In AWS, ECR's registry endpoint and its API are one service: once `podman push` returns,
`describe_images` knows the tag and the digest. Locally they are two programs: a real registry
(ops/local_registry.py) takes the push, and moto answers the API. The bridge joins them. The registry
notifies it of every manifest push; the bridge fetches the exact manifest bytes from the registry,
checks that their sha256 is the registry's digest, and records them in moto with `put_image`,
passing that digest explicitly: moto does not derive a digest from the manifest bytes (it hashes
the layer digests), so without it `describe_images` would name an image the registry does not have.

This is the counterpart of the local ECS agent and lives only in local runs; the production push
path (ops/image.py) is unchanged apart from being told where to push.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import sys
import threading
import time

from ops.deploy_errors import DeployError, ToolError

EVENTS_PATH = "/events"


class EcrBridge:
    """Receives the registry's push notifications and mirrors tagged manifests into ECR (moto).

    `ecr` is a boto3 ECR client for the moto server; `registry` has `manifest(repo, ref)` (LocalRegistry).
    """

    def __init__(self, ecr, registry, log=None):
        self.ecr, self.registry = ecr, registry
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.recorded: list[tuple[str, str, str]] = []  # (repository, tag, digest)
        self.errors: list[str] = []
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """Where the registry sends its notifications."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{EVENTS_PATH}"

    def start(self) -> EcrBridge:
        """Listen on 127.0.0.1:<free port> in a background thread."""
        bridge = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = 200 if self.path == EVENTS_PATH and bridge.handle(body) else 500
                # A 5xx makes the registry retry the delivery (its threshold/backoff settings).
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="local-ecr-bridge", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def handle(self, body: bytes) -> bool:
        """Handle one notification envelope; False (the registry retries) if a push was not recorded."""
        try:
            events = json.loads(body).get("events", [])
        except (ValueError, AttributeError):
            return False
        ok = True
        for event in events:
            target = event.get("target", {}) if isinstance(event, dict) else {}
            if event.get("action") != "push" or not target.get("tag"):
                continue  # blob pushes, pulls, and manifests pushed by digest only have no tag to record
            try:
                self.record(target["repository"], target["tag"], target.get("digest", ""))
            except (DeployError, KeyError) as exc:
                ok = False
                self.errors.append(f"{target.get('repository')}:{target.get('tag')}: {exc}")
                self.log(f"{time.strftime('%H:%M:%S')} local-ecr-bridge: error: {self.errors[-1]}")
        return ok

    def record(self, repository: str, tag: str, digest: str) -> str:
        """Put repository:tag's manifest into ECR with the registry's digest; returns the digest."""
        from botocore.exceptions import ClientError

        # By digest when the event names one: the registry notifies before the tag link is readable.
        manifest, media_type, registry_digest = self.registry.manifest(repository, digest or tag)
        computed = "sha256:" + hashlib.sha256(manifest).hexdigest()
        if computed != registry_digest or (digest and digest != computed):
            raise ToolError(f"manifest of {repository}:{tag} hashes to {computed}, the registry says "
                            f"{registry_digest} (event: {digest or 'none'})")
        try:
            image = self.ecr.put_image(repositoryName=repository, imageManifest=manifest.decode(),
                                       imageManifestMediaType=media_type, imageTag=tag,
                                       imageDigest=computed)["image"]
            recorded = image["imageId"]["imageDigest"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ImageAlreadyExistsException":
                raise ToolError(f"put_image {repository}:{tag}: {exc}") from None
            recorded = computed  # a retried notification: ECR already has this exact manifest and tag
        if recorded != computed:
            raise ToolError(f"ECR recorded {repository}:{tag} as {recorded}, not {computed}")
        self.recorded.append((repository, tag, computed))
        self.log(f"{time.strftime('%H:%M:%S')} local-ecr-bridge: {repository}:{tag} is {computed} in ECR")
        return computed
