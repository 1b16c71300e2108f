"""A real OCI registry on 127.0.0.1 for local pipeline runs (distribution, Debian's `docker-registry`).

moto implements ECR's API but not the registry protocol that `podman push` and an ECS task's pull
speak. The local ECR endpoint (standin/ecr_endpoint.py) names this registry as ECR's registry, so
`make push` pushes here after its ECR login, and records what was pushed in moto's ECR with the
registry's own digest.

The registry keeps its blobs in a folder, listens on 127.0.0.1 only and has no authentication (a
login to it succeeds with any credentials, as ECR's token login does).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from deploy.errors import ResourceNotFound, ToolError
from standin.ports import free_port

BINARY = "docker-registry"
# The manifest types a registry may hold for an image; asking for all of them makes it answer the
# stored bytes as they are (a registry converts or refuses when the Accept header leaves a type out).
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)


def registry_config(root: Path, port: int) -> dict:
    """distribution's configuration (JSON is YAML): filesystem storage on 127.0.0.1, quiet logs."""
    return {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }


class LocalRegistry:
    """distribution serving `root` on 127.0.0.1:<free port>; start() then stop() (or a `with`)."""

    def __init__(self, root: Path, *, binary: str = BINARY):
        self.root = Path(root)
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        """HOST:PORT, the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self, timeout: float = 30.0) -> LocalRegistry:
        """Start the registry and wait until GET /v2/ answers; ToolError if it does not."""
        path = shutil.which(self.binary)
        if not path:
            raise ToolError(f"{self.binary} is not installed (apt-get install docker-registry)")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(json.dumps(registry_config(self.root, self.port), indent=2))
        # distribution reads every REGISTRY_* variable as a configuration override, and podman's
        # REGISTRY_AUTH_FILE (set by standin/podman.py) is not one: it would refuse to start.
        env = {key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_")}
        with open(self.root / "registry.log", "ab") as log:
            self.process = subprocess.Popen([path, "serve", str(config)], stdout=log, env=env,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = (self.root / "registry.log").read_text(errors="replace").strip().splitlines()[-1:]
                reason = (tail or ["no output"])[0]
                raise ToolError(f"{self.binary} exited {self.process.returncode}: {reason}")
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise ToolError(f"{self.binary} did not answer on {self.url} within {timeout:g}s")

    def stop(self) -> None:
        """Stop the registry (its folder is left for the caller to remove)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        """(exact manifest bytes, media type, registry digest) of repository:reference.

        ResourceNotFound if the registry has no such manifest.
        """
        request = urllib.request.Request(f"{self.url}/v2/{repository}/manifests/{reference}",
                                         headers={"Accept": ", ".join(MANIFEST_TYPES)})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                body = answer.read()
                return body, answer.headers.get("Content-Type", ""), answer.headers.get(
                    "Docker-Content-Digest", "")
        except urllib.error.HTTPError as exc:
            what = f"{repository}:{reference}"
            if exc.code == 404:
                raise ResourceNotFound(f"{what} is not in the registry {self.host}") from None
            raise ToolError(f"registry {self.host} answered {exc.code} for {what}") from None

    def tags(self, repository: str) -> list[str]:
        """The repository's tags ([] if the registry has no such repository)."""
        try:
            with urllib.request.urlopen(f"{self.url}/v2/{repository}/tags/list", timeout=10) as answer:
                return json.loads(answer.read()).get("tags") or []
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise ToolError(f"registry {self.host} answered {exc.code} listing {repository}") from None
