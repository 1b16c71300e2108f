"""The image side of a local run: podman in a folder of its own, a Debian base image, a real registry
on 127.0.0.1 fronted by the local ECR endpoint, and the launcher the local ECS agent runs tasks with."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from standin.aws import LocalAws
from standin.errors import PipelineError

ROOT = Path(__file__).resolve().parent.parent
# podman build flags that work in a sandbox and on a workstation alike (see standin/podman.py).
IMAGE_BUILD_ARGS = "--network host --isolation chroot"


class LocalEcrImages:
    """The task images a local run can pull: those in its registry (which the local ECR names as ECR's).

    ECS pulls `<registry>/repo@sha256:...` from ECR; locally the task definition names the registry on
    127.0.0.1 (the local ECR endpoint answered it as the repository URI), so the agent pulls the same
    reference from there.
    """

    def __init__(self, registry=None, podman: str = "podman"):
        self.registry, self.podman = registry, podman

    def local_ref(self, image: str) -> str | None:
        """`image` if it is in the local registry, else None (the agent then runs the checkout)."""
        from deploy.ecr import parse_image
        from deploy.errors import DeployError

        if self.registry is None:
            return None
        try:
            ref = parse_image(image)
            if ref.registry != self.registry.host:
                return None
            self.registry.manifest(ref.repository, ref.digest or ref.tag or "latest")
        except DeployError:
            return None
        return image

    def pull(self, image: str) -> str:
        """Pull the task's image from the local registry (as ECS pulls from ECR); its reference."""
        if self.local_ref(image) is None:
            raise PipelineError(f"{image} is not in the local registry")
        subprocess.run([self.podman, "pull", "--quiet", image], check=True, capture_output=True, text=True,
                       timeout=600)
        return image


class AutoLauncher:
    """podman when the task's image is in the local registry, else gunicorn from the checkout."""

    def __init__(self, log_dir: Path, workspace: Path, mode: str, images: LocalEcrImages):
        from standin.ecs_agent import GunicornLauncher, PodmanLauncher

        self.gunicorn = GunicornLauncher(log_dir, cwd=workspace)
        self.images = images
        self.podman = PodmanLauncher(log_dir, resolve_image=images.pull) if shutil.which("podman") else None
        self.mode = mode
        self.kind = "gunicorn"
        self._by_handle: dict[int, object] = {}

    def start(self, task, port, extra_env):
        use_podman = self.mode == "podman" or (
            self.mode == "auto" and self.podman is not None and self.images.local_ref(task.image) is not None
        )
        if use_podman and self.podman is None:
            raise PipelineError("--agent podman: podman is not installed")
        launcher = self.podman if use_podman else self.gunicorn
        if use_podman:
            # A host folder means nothing inside the container: the image keeps no model cache.
            extra_env = {k: v for k, v in extra_env.items() if k != "MODEL_CACHE_DIR"}
        self.kind = launcher.kind
        handle = launcher.start(task, port, extra_env)
        self._by_handle[id(handle)] = launcher
        return handle

    def stop(self, handle) -> None:
        self._by_handle.pop(id(handle), self.gunicorn).stop(handle)

    def exited(self, handle) -> bool:
        return self._by_handle.get(id(handle), self.gunicorn).exited(handle)



def local_image_tools(podman_root: Path | None, run_dir: Path, aws: LocalAws,
                      cleanup) -> tuple[dict, LocalEcrImages]:
    """podman in its own folder, the base image, and a registry that the local ECR endpoint fronts.

    Returns the stages' extra environment (AWS_ENDPOINT_URL_ECR among it) and the agent's view of the
    registry; `cleanup` (an ExitStack) stops the registry and the endpoint when the run ends.
    """
    from deploy.errors import DeployError
    from standin.base_image import ensure_debian_base
    from standin.ecr_endpoint import EcrEndpoint
    from standin.podman import sandbox_env
    from standin.registry import LocalRegistry

    missing = [tool for tool in ("podman", "docker-registry") if not shutil.which(tool)]
    if missing:
        raise PipelineError(f"the deploy pipeline's image stages need {' and '.join(missing)} "
                            f"(apt-get install podman docker-registry), or --skip-stage them")
    registry_dir = run_dir / "registry"
    shutil.rmtree(registry_dir, ignore_errors=True)
    registry = LocalRegistry(registry_dir)
    podman_root = podman_root or ROOT / "build" / "pipeline-local" / "podman"
    # The agent's podman calls run in this process, the stages' in its children: both use the sandbox,
    # which trusts the registry on 127.0.0.1 over plain HTTP (as ECR's endpoint is trusted over TLS).
    os.environ.update(sandbox_env(podman_root, insecure_registries=[registry.host]))
    print(f"pipeline-local: podman storage in {podman_root}", flush=True)
    env = {"IMAGE_BUILD_ARGS": os.environ.get("IMAGE_BUILD_ARGS", IMAGE_BUILD_ARGS)}
    try:
        if not os.environ.get("BASE_IMAGE"):
            if not shutil.which("debootstrap"):
                raise PipelineError("no BASE_IMAGE, and no debootstrap to make one (apt-get install it)")
            env["BASE_IMAGE"] = ensure_debian_base(
                "podman", run_dir / "base", log=lambda line: print(f"pipeline-local: {line}", flush=True))
        registry.start()
        cleanup.callback(shutil.rmtree, registry_dir, True)
        cleanup.callback(registry.stop)
        endpoint = EcrEndpoint(aws.endpoint, aws.client("ecr"), registry).start()
        cleanup.callback(endpoint.stop)
    except DeployError as exc:
        raise PipelineError(str(exc)) from None
    env["AWS_ENDPOINT_URL_ECR"] = endpoint.url
    base = env.get("BASE_IMAGE") or os.environ["BASE_IMAGE"]
    print(f"pipeline-local: ECR at {endpoint.url}, its registry on {registry.host}; base image {base}",
          flush=True)
    return env, LocalEcrImages(registry)
