"""The service image: build it (tagged with the git commit), push it to ECR, smoke-test it.

`python -m deploy.image build|push|smoke|base` is what scripts/build-image, push-image and smoke-image
run. podman or docker is used, whichever exists (or --builder). Failures of the tool are ToolError;
exit codes as in model/exit_codes.py (`--help` prints them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from deploy.errors import InvalidInput, ResourceNotFound, ToolError, run_command
from model.exit_codes import text_table
from model.store import DEFAULT_NAME

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = Path("docker/Dockerfile")
DEFAULT_IMAGE_NAME = "model-service"
CA_SECRET_ID = "pip_ca"  # noqa: S105 (the name of a build secret, not a secret)
# pip settings forwarded to the build; any other PIP_* stays on the host.
_PIP_ARGS = {"index-url": "PIP_INDEX_URL", "extra-index-url": "PIP_EXTRA_INDEX_URL",
             "trusted-host": "PIP_TRUSTED_HOST", "timeout": "PIP_DEFAULT_TIMEOUT",
             "default-timeout": "PIP_DEFAULT_TIMEOUT"}


def container_tool(preferred: str | None = None) -> str:
    """The container tool to use: `preferred`, else podman, else docker."""
    for name in [preferred] if preferred else ["podman", "docker"]:
        path = shutil.which(name)
        if path:
            return path
    raise ToolError(f"{preferred or 'podman or docker'} is not installed")


def _run(cmd: list[str], *, input_text: str | None = None, quiet: bool = False,
         env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a tool command; ToolError with its last stderr line if it fails."""
    try:
        result = subprocess.run(cmd, input=input_text, text=True, env=env,
                                stdout=subprocess.PIPE if quiet else None, stderr=subprocess.PIPE)
    except OSError as exc:
        raise ToolError(f"cannot run {cmd[0]}: {exc.strerror}") from None
    if result.returncode != 0:
        lines = [line for line in (result.stderr or "").splitlines() if line.strip()]
        raise ToolError(f"{Path(cmd[0]).name} {cmd[1]} failed (exit {result.returncode}): "
                        f"{lines[-1] if lines else 'no output'}")
    if not quiet and result.stderr:
        sys.stderr.write(result.stderr)
    return result


def git_commit(root: Path = ROOT) -> str:
    """The commit to tag the image with (12 hex digits, `-dirty` if tracked files are modified)."""
    from model.gitinfo import head_commit, is_dirty

    sha = head_commit(root, short=12)
    if sha is None:
        raise InvalidInput("cannot read the git commit: not a git checkout? (pass --tag)")
    return f"{sha}-dirty" if is_dirty(root) else sha


def _pip_config(python: str = sys.executable) -> dict[str, str]:
    """pip's effective configuration as {key: value} (`pip config list`, all scopes)."""
    try:
        out = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    config = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            config[key.split(".", 1)[-1]] = value.strip().strip("'\"")
    return config


@dataclass(frozen=True)
class PipSettings:
    """The host's pip index settings and CA bundle, as a build needs them."""

    build_args: dict[str, str]
    ca_bundle: str | None
    skipped: list[str]


def host_pip_settings(environ: dict | None = None, config: dict | None = None) -> PipSettings:
    """Read the host's pip index configuration and CA bundle at run time (env wins over pip config).

    Index URLs that only make sense on this host (file:// or a local folder) are left out: a build
    cannot see them.
    """
    env = os.environ if environ is None else environ
    config = _pip_config() if config is None else config
    build_args, skipped = {}, []
    for key, var in _PIP_ARGS.items():
        value = env.get(var) or config.get(key)
        if not value or var in build_args:
            continue
        is_url = var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")
        usable = [v for v in value.split() if not is_url or v.startswith(("http://", "https://"))]
        skipped += [v for v in value.split() if v not in usable]
        if usable:
            build_args[var] = " ".join(usable)
    ca = None
    for candidate in (env.get("PIP_CERT"), config.get("cert"), env.get("REQUESTS_CA_BUNDLE"),
                      env.get("SSL_CERT_FILE")):
        if candidate and Path(candidate).is_file():
            ca = candidate
            break
    return PipSettings(build_args, ca, skipped)


def build(tool: str, *, tag: str, name: str = DEFAULT_IMAGE_NAME, base_image: str | None = None,
          context: Path = ROOT, pip: PipSettings | None = None, network: str | None = None,
          isolation: str | None = None, target: str | None = None, log=print) -> str:
    """Build docker/Dockerfile as `name:tag` (its last stage, or `target`); returns the image reference."""
    pip = host_pip_settings() if pip is None else pip
    ref = f"{name}:{tag}"
    cmd = [tool, "build", "-f", str(context / DOCKERFILE), "-t", ref,
           "--label", f"org.opencontainers.image.revision={tag}"]
    if Path(tool).name == "podman":
        cmd += ["--format", "docker"]  # keeps HEALTHCHECK, which the OCI format drops
    if target:
        cmd += ["--target", target]
    if base_image:
        cmd += ["--build-arg", f"BASE_IMAGE={base_image}"]
    for var, value in sorted(pip.build_args.items()):
        cmd += ["--build-arg", f"{var}={value}"]
    if pip.ca_bundle:
        cmd += ["--secret", f"id={CA_SECRET_ID},src={pip.ca_bundle}"]
    if network:
        cmd += ["--network", network]
    if isolation and Path(tool).name == "podman":
        cmd += ["--isolation", isolation]
    cmd.append(str(context))
    for value in pip.skipped:
        log(f"build: not forwarding pip source {value} (a host path, not reachable from the build)")
    log(f"build: {ref} from {context / DOCKERFILE} (base {base_image or 'the Dockerfile default'}, "
        f"pip args {sorted(pip.build_args) or 'none'}, CA bundle {'mounted' if pip.ca_bundle else 'none'})")
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}  # docker needs BuildKit for --secret
    _run(cmd, env=env)
    log(f"build: tagged {ref}")
    return ref


def image_exists(tool: str, ref: str) -> bool:
    """True if the local image store has `ref`."""
    result = subprocess.run([tool, "image", "inspect", ref], capture_output=True, text=True)
    return result.returncode == 0


def push(tool: str, ecr, *, repository: str, tag: str, name: str = DEFAULT_IMAGE_NAME, log=print) -> str:
    """Log in to ECR, tag `name:tag` as `<repository uri>:tag`, push it; return `<uri>@sha256:...`.

    The digest ECR records for the tag is checked against the one the tool pushed (podman reports it).
    """
    local = f"{name}:{tag}"
    if not image_exists(tool, local):
        raise ResourceNotFound(f"no local image {local}: build it first (scripts/build-image)")
    uri = ecr.repository_uri(repository)  # also checks the repository exists before anything is pushed
    login = ecr.login()
    log(f"push: logging in to {login.registry}")
    _run([tool, "login", "--username", login.username, "--password-stdin", login.registry],
         input_text=login.password, quiet=True)
    remote = f"{uri}:{tag}"
    _run([tool, "tag", local, remote], quiet=True)
    log(f"push: {local} -> {remote}")
    with tempfile.TemporaryDirectory() as tmp:
        digest_file = Path(tmp) / "digest"
        if Path(tool).name == "podman":
            _run([tool, "push", "--digestfile", str(digest_file), remote])
            digest = digest_file.read_text().strip()
        else:
            _run([tool, "push", remote])
            digest = ""
    registry_digest = ecr.image_digest(repository, tag)
    if digest and digest != registry_digest:
        raise ToolError(f"pushed digest {digest} but ECR has {registry_digest} for {tag}")
    ref = f"{uri}@{registry_digest}"
    log(f"push: {ref}")
    return ref


# -- smoke test: the image really serves ----------------------------------------------------
def http_json(url: str, body: dict | None = None, timeout: float = 5.0) -> tuple[int, dict]:
    """GET (or POST `body` as JSON) and return (status, JSON answer); OSError if nothing answers."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {}


def smoke(tool: str, image: str, *, store: str, port: int, name: str = DEFAULT_NAME,
          version: str | None = None, env: dict | None = None, timeout: float = 120.0,
          command: tuple[str, ...] = (), log=print) -> dict:
    """Run `image` on 127.0.0.1:`port` (host network) against `store`; check /ready, /model, a prediction.

    A local store folder is mounted read-only; an s3:// store is passed through with the AWS_*
    variables of `env`. `command` is passed to the image (e.g. `serve`, as SageMaker starts it).
    Returns {"version":..., "prediction":...}; ToolError on any failure.
    """
    container = f"smoke-{os.getpid()}-{port}"
    cleanup: list[Path] = []
    cmd = [tool, "run", "-d", "--name", container, "--network", "host",
           "-e", f"PORT={port}", "-e", f"MODEL_NAME={name}"]
    if Path(tool).name == "podman":
        cmd += ["--health-interval", "disable"]  # run the HEALTHCHECK once, below, not from a timer
    if store.startswith("s3://"):
        cmd += ["-e", f"MODEL_STORE={store}"]
        for key, value in sorted((env or {}).items()):
            if key.startswith("AWS_") and key != "AWS_CA_BUNDLE":
                cmd += ["-e", f"{key}={value}"]
    else:
        folder = Path(store.removeprefix("file://")).resolve()
        if not folder.is_dir():
            raise ResourceNotFound(f"store folder {folder} does not exist")
        snapshot = _readable_snapshot(folder / name)
        cleanup.append(snapshot)
        cmd += ["-v", f"{snapshot}:/store:ro", "-e", "MODEL_STORE=/store"]
    if version:
        cmd += ["-e", f"MODEL_VERSION={version}"]
    cmd += [image, *command]
    log(f"smoke: starting {' '.join([image, *command])} on 127.0.0.1:{port} with store {store}")
    try:
        _run(cmd, quiet=True)
        return _check_serving(tool, container, port, version, timeout, log)
    finally:
        subprocess.run([tool, "rm", "-f", "-t", "5", container], capture_output=True)
        for path in cleanup:
            shutil.rmtree(path.parent, ignore_errors=True)


def _readable_snapshot(model_folder: Path) -> Path:
    """A copy of one model's store folder that the image's non-root user can read.

    The store writes its files owner-only (0600); mounting them into a container that runs as
    uid 10001 would make every read fail, so the smoke test mounts a world-readable copy instead.
    """
    if not model_folder.is_dir():
        raise ResourceNotFound(f"model folder {model_folder} does not exist in the store")
    root = Path(tempfile.mkdtemp(prefix="smoke-store-"))
    target = root / "store"
    shutil.copytree(model_folder, target / model_folder.name, ignore=shutil.ignore_patterns(".*"))
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def _check_serving(tool: str, container: str, port: int, version: str | None, timeout: float, log) -> dict:
    """Wait for /ready, then check /model, one prediction and (podman) the HEALTHCHECK."""
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    status, body = None, {}
    while time.monotonic() < deadline:
        try:
            status, body = http_json(f"{base}/ready", timeout=2)
        except OSError:
            status = None
        if status == 200:
            break
        if _container_state(tool, container) not in ("running", "created", "configured"):
            raise ToolError(f"container exited before it was ready: {_logs_tail(tool, container)}")
        time.sleep(1)
    else:
        reason = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else None
        raise ToolError(f"/ready did not answer 200 within {timeout:g}s (last {status}: "
                        f"{reason or _logs_tail(tool, container)})")
    log("smoke: /ready 200")
    if http_json(f"{base}/ping")[0] != 200:
        raise ToolError("/ping (the SageMaker health check) did not answer 200")
    _, manifest = http_json(f"{base}/model")
    if version and manifest.get("version") != version:
        raise ToolError(f"/model answers {manifest.get('version')}, expected {version}")
    example = manifest.get("example")
    if example is None:
        raise ToolError("/model has no example instance to predict")
    status, answer = http_json(f"{base}/predict", {"instances": [example]})
    predictions = answer.get("predictions") or []
    if status != 200 or len(predictions) != 1 or "label" not in predictions[0]:
        raise ToolError(f"POST /predict answered {status}: {json.dumps(answer)[:200]}")
    log(f"smoke: model {manifest.get('version')} predicted {predictions[0]['label']!r}")
    if Path(tool).name == "podman":
        _run([tool, "healthcheck", "run", container], quiet=True)
        log("smoke: HEALTHCHECK passes")
    return {"version": manifest.get("version"), "prediction": predictions[0], "answer": answer}


def _container_state(tool: str, container: str) -> str:
    result = subprocess.run([tool, "inspect", "--format", "{{.State.Status}}", container],
                            capture_output=True, text=True)
    return result.stdout.strip()


def _logs_tail(tool: str, container: str, lines: int = 5) -> str:
    result = subprocess.run([tool, "logs", "--tail", str(lines), container], capture_output=True, text=True)
    return " | ".join((result.stdout + result.stderr).split("\n")[-lines:]).strip() or "no logs"


# -- command line ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """Arguments of `python -m deploy.image` (its --help is the scripts' --help)."""
    from deploy.settings import settings

    env = settings()
    parser = argparse.ArgumentParser(prog="python -m deploy.image", description=__doc__, epilog=text_table(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--builder", help="podman or docker (default: whichever is installed, podman first)")
    parser.add_argument("--name", default=env["IMAGE_NAME"],
                        help="local image name (default $IMAGE_NAME or %(default)s)")
    parser.add_argument("--tag", help="image tag (default: the git commit)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    each = {"epilog": text_table(), "formatter_class": argparse.RawDescriptionHelpFormatter}

    p = sub.add_parser("build", **each, help="build docker/Dockerfile, tagged with the git commit")
    p.add_argument("--base-image", default=env["BASE_IMAGE"],
                   help="BASE_IMAGE build arg (default $BASE_IMAGE or the Dockerfile's python:3.11-slim)")
    p.add_argument("--network", help="build network (e.g. host)")
    p.add_argument("--isolation", help="podman build isolation (e.g. chroot)")
    p.add_argument("--target",
                   help="a stage of the Dockerfile (train: the training image; default: the service)")

    p = sub.add_parser("push", **each,
                       help="log in to ECR, push name:tag to the repository; print the digest")
    p.add_argument("--repository", default=env["ECR_REPOSITORY"],
                   help="ECR repository (default $ECR_REPOSITORY)")

    p = sub.add_parser("smoke", **each, help="run the image against a store; check /ready and a prediction")
    p.add_argument("--image", help="image to run (default name:tag)")
    p.add_argument("--store", default=env["MODEL_STORE"],
                   help="store folder or s3:// URI (default $MODEL_STORE)")
    p.add_argument("--model-name", default=env["MODEL_NAME"])
    p.add_argument("--model-version", help="expect and pin this version (default: follow the alias)")
    p.add_argument("--port", type=int, default=18080)
    p.add_argument("--timeout", type=float, default=120.0)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; print `error: ...` and return its exit code on failure."""
    args = build_parser().parse_args(argv)
    return run_command(lambda: _run_command(args))


def _run_command(args) -> None:
    tool = container_tool(args.builder)
    tag = args.tag or git_commit()
    if args.command == "build":
        build(tool, tag=tag, name=args.name, base_image=args.base_image, network=args.network,
              isolation=args.isolation, target=args.target)
    elif args.command == "push":
        from deploy.aws import client
        from deploy.ecr import EcrClient

        if not args.repository:
            raise InvalidInput("no ECR repository: pass --repository or set ECR_REPOSITORY")
        print(push(tool, EcrClient(client("ecr")), repository=args.repository, tag=tag, name=args.name))
    elif args.command == "smoke":
        if not args.store:
            raise InvalidInput("no store: pass --store or set MODEL_STORE")
        smoke(tool, args.image or f"{args.name}:{tag}", store=args.store, port=args.port,
              name=args.model_name, version=args.model_version, env=dict(os.environ), timeout=args.timeout)


if __name__ == "__main__":
    sys.exit(main())
