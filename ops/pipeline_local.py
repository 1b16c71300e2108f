"""Run the Jenkinsfile's pipelines on a laptop: the same stages, in the same order, against local AWS.

    scripts/pipeline-local [--pipeline auto|train|deploy] [--changed PATH]... [--branch main] ...

The stages are not listed here: they come from a dry run of the Jenkinsfile (jenkins/dryrun.groovy),
with its `when` conditions evaluated for the given branch, PIPELINE parameter and changed paths, so
this runner and Jenkins cannot drift apart. Each stage's `sh` steps run as they would on an agent,
with the deployment settings pointing at a moto server on 127.0.0.1 that this command starts and
fills with what the pipelines expect to exist: the model store bucket, the ECR repository, and an
ECS cluster with a service (subnet and security group included). A local ECS agent runs whatever task
definition that service points at, so a rollout's verification of `/model` checks what it pinned.

When the deploy pipeline's image stages run, podman works in a folder of its own (ops/podman_sandbox.py)
on a debootstrapped Debian base built once per recipe (BASE_IMAGE), `make push` pushes to a real
registry on 127.0.0.1 (ECR_REGISTRY_OVERRIDE) whose pushes the local ECR bridge records in moto's ECR,
and the agent pulls the pinned `repo@sha256:...` from that registry and runs it under podman.

Output: one line per stage, `name  ok|FAILED|skipped  seconds`; the exit code is the failed step's
(1 for a refused approval), 0 when every selected stage passed, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DRYRUN = ROOT / "jenkins" / "dryrun.groovy"
TASK_TEMPLATE = ROOT / "ecs" / "task-def.json"

# The names of the local stand-ins for the AWS resources the pipelines use.
BUCKET = "mlops-models-local"
STORE_PREFIX = "models"
REPOSITORY = "model-service"
CLUSTER = "mlops-local"
SERVICE = "model-service"
FAMILY = "model-service"
REGION = "us-east-1"
# What the Test stage runs inside a local pipeline when PYTEST_ADDOPTS is not set: the slow end-to-end
# tests (image build, this very pipeline) are not re-run from within a pipeline run.
DEFAULT_PYTEST_ADDOPTS = "-m 'not slow'"
# The make targets that build, run or push the image: podman, the base image and the registry are
# only set up when one of them runs.
IMAGE_TARGETS = {"image", "smoke", "push", "deploy"}
# podman build flags that work in a sandbox and on a workstation alike (see ops/podman_sandbox.py).
IMAGE_BUILD_ARGS = "--network host --isolation chroot"


class PipelineError(Exception):
    """The local pipeline cannot start: bad options, a tool is missing, the Jenkinsfile is unreadable."""


@dataclass
class StageResult:
    """How one stage went."""

    name: str
    status: str  # ok, FAILED, skipped
    seconds: float = 0.0
    detail: str = ""
    exit_code: int = 0


@dataclass
class Options:
    """The runner's inputs (from the command line)."""

    pipeline: str = "auto"
    branch: str = "main"
    changed: list[str] = field(default_factory=list)
    approve: bool = False
    require_approval: bool = False
    agent: str = "auto"
    workspace: Path | None = None
    keep_going: bool = False
    plan_only: bool = False
    skip: list[str] = field(default_factory=list)
    podman_root: Path | None = None


# ---- the plan: a dry run of the Jenkinsfile -------------------------------------------------------

def java_home() -> str | None:
    """JAVA_HOME for groovy, from the `java` on PATH (Debian's groovy needs it set)."""
    java = shutil.which("java")
    if not java:
        return None
    return str(Path(os.path.realpath(java)).parent.parent)


def groovy_env() -> dict[str, str]:
    """The environment groovy runs in: JAVA_HOME set, and a JVM tuned for a short script."""
    home = java_home()
    if not home:
        raise PipelineError("java is needed to run groovy (apt-get install default-jre-headless)")
    # A dry run lasts a second or two: the JIT's top tier and a parallel GC only cost start-up time.
    return {**os.environ, "JAVA_HOME": home,
            "JAVA_OPTS": os.environ.get("JAVA_OPTS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")}


def dry_run(jenkinsfile: Path, *, branch: str, params: dict[str, str], changed: list[str],
            env: dict[str, str] | None = None) -> dict:
    """The Jenkinsfile's dry run (see jenkins/dryrun.groovy) as a dict; PipelineError if it fails."""
    groovy = shutil.which("groovy")
    if not groovy:
        raise PipelineError("groovy is needed to read the Jenkinsfile's stages (apt-get install groovy)")
    env_for_groovy = groovy_env()
    command = [groovy, str(DRYRUN), "--branch", branch]
    for key, value in params.items():
        command += ["--param", f"{key}={value}"]
    for path in changed:
        command += ["--changed", path]
    for key, value in (env or {}).items():
        command += ["--env", f"{key}={value}"]
    command.append(str(jenkinsfile))
    answer = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env_for_groovy)
    if answer.returncode != 0:
        # Groovy 2.4 on a recent Java prints reflective-access warnings; keep only our own message.
        lines = [line for line in answer.stderr.splitlines() if line.startswith("dryrun:")]
        message = lines[-1] if lines else f"the Jenkinsfile dry run failed: {answer.stderr.strip()}"
        raise PipelineError(message)
    return json.loads(answer.stdout)


def make_targets(step: dict) -> list[str]:
    """The make targets an `sh` step calls (`make a b VAR=x` -> [a, b]); [] for other commands."""
    words = step.get("sh", "").split()
    if not words or words[0] != "make":
        return []
    return [w for w in words[1:] if "=" not in w and not w.startswith("-")]


# ---- local AWS ------------------------------------------------------------------------------------

class LocalAws:
    """A moto server on 127.0.0.1 holding the resources the pipelines expect (a context manager)."""

    def __init__(self):
        self.server = None
        self.endpoint = ""
        self.resources: dict[str, str] = {}

    def __enter__(self) -> LocalAws:
        # moto's ECS reports a service's tasks as running only with this set in its process.
        os.environ.setdefault("MOTO_ECS_SERVICE_RUNNING", "1")
        from moto.server import ThreadedMotoServer

        # The server's per-request log would drown the stages' own output.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc) -> None:
        if self.server:
            self.server.stop()

    @property
    def env(self) -> dict[str, str]:
        """What boto3 (and the AWS CLI) need to use this server and nothing else."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_SESSION_TOKEN": "local",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self, service: str):
        """A boto3 client for this server (the runner's only place clients are built)."""
        import boto3

        env = self.env
        return boto3.client(
            service, endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=env["AWS_SESSION_TOKEN"],
        )

    def provision(self, model_name: str) -> dict[str, str]:
        """Create the bucket, the ECR repository, networking, the cluster and the service."""
        from ops.task_def import render_file

        self.client("s3").create_bucket(Bucket=BUCKET)
        repository = self.client("ecr").create_repository(repositoryName=REPOSITORY)["repository"]
        ec2 = self.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="model-service", Description="model service",
                                          VpcId=vpc)["GroupId"]
        ecs = self.client("ecs")
        ecs.create_cluster(clusterName=CLUSTER)
        store = f"s3://{BUCKET}/{STORE_PREFIX}"
        definition = render_file(TASK_TEMPLATE, {
            "FAMILY": FAMILY,
            # No image exists before the deploy pipeline pushes one: the agent then runs the checkout.
            "IMAGE": f"{repository['repositoryUri']}:bootstrap",
            "MODEL_STORE": store,
            "MODEL_NAME": model_name,
            "MODEL_ALIAS": "production",
            "MODEL_VERSION": "",
            "AWS_REGION": REGION,
            "TASK_ROLE_ARN": "arn:aws:iam::123456789012:role/model-service-task",
            "EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/model-service-execution",
            "LOG_GROUP": "/ecs/model-service",
        })
        arn = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(
            cluster=CLUSTER, serviceName=SERVICE, taskDefinition=arn, desiredCount=1, launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": {
                "subnets": [subnet], "securityGroups": [group], "assignPublicIp": "DISABLED"}},
        )
        self.resources = {
            "MODEL_STORE": store,
            "ECR_REPOSITORY": REPOSITORY,
            "ECR_REPOSITORY_URI": repository["repositoryUri"],
            "ECS_CLUSTER": CLUSTER,
            "ECS_SERVICE": SERVICE,
            "SUBNET": subnet,
            "SECURITY_GROUP": group,
        }
        return self.resources


# ---- the agent ------------------------------------------------------------------------------------

class LocalEcrImages:
    """Maps the ECR image references of task definitions to the local registry the run pushed to.

    ECS pulls `<account>.dkr.ecr.<region>.amazonaws.com/repo@sha256:...`; locally the same manifest
    is in the registry on 127.0.0.1 (the bridge recorded it in moto's ECR with the same digest).
    """

    def __init__(self, registry=None, podman: str = "podman"):
        self.registry, self.podman = registry, podman

    def local_ref(self, image: str) -> str | None:
        """The local registry's reference for an ECR image, or None if the registry does not have it."""
        from ops.deploy_errors import DeployError
        from ops.ecr import _ECR_HOST_RE, parse_image

        if self.registry is None:
            return None
        try:
            ref = parse_image(image)
            if not ref.registry or not _ECR_HOST_RE.match(ref.registry):
                return None
            self.registry.manifest(ref.repository, ref.digest or ref.tag or "latest")
        except DeployError:
            return None
        return f"{self.registry.host}/{ref.repository}" + (f"@{ref.digest}" if ref.digest else f":{ref.tag}")

    def pull(self, image: str) -> str:
        """Pull the task's image from the local registry (as ECS pulls from ECR); the local reference."""
        local = self.local_ref(image)
        if local is None:
            raise PipelineError(f"{image} is not in the local registry")
        subprocess.run([self.podman, "pull", "--quiet", "--tls-verify=false", local], check=True,
                       capture_output=True, text=True, timeout=600)
        return local


class AutoLauncher:
    """podman when the task's image is in the local registry, else gunicorn from the checkout."""

    def __init__(self, log_dir: Path, workspace: Path, mode: str, images: LocalEcrImages):
        from ops.local_ecs_agent import GunicornLauncher, PodmanLauncher

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


def write_moto_deployment(cluster: str, service: str, region: str, arn: str, *, state: str,
                          running: int | None = None, failed_delta: int = 0) -> bool:
    """THE one place that writes moto internals: set the service's deployment record of `arn`.

    moto keeps a service's deployment at the task definition it was created with (update_service only
    renews its id) and never changes its rolloutState, so a rollout waiting for its revision's
    deployment would wait forever. ECS's scheduler updates that record as tasks run; locally the ECS
    agent runs the tasks, and this writes the record into the moto server running in this process
    (moto's ECS backend: `ecs_backends[account][region].services["cluster:service"]`, whose
    `deployments` list describe_services answers). `running=None` means the service's desired count.
    Returns False if the service has moved on to another revision (a rollback) meanwhile.

    moto has no API for this: if its internals change, this raises PipelineError naming them, the
    agent logs it, the rollout times out, and the local pipeline test fails.
    """
    from datetime import UTC, datetime

    try:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ecs.models import ecs_backends

        record = ecs_backends[DEFAULT_ACCOUNT_ID][region].services[f"{cluster}:{service}"]
        if record.task_definition != arn:
            return False
        deployment = dict(record.deployments[0]) if record.deployments else {}
        failed = int(deployment.get("failedTasks", 0)) + failed_delta if failed_delta else 0
        running = record.desired_count if running is None else running
        deployment.update(taskDefinition=arn, status="PRIMARY", rolloutState=state, runningCount=running,
                          pendingCount=0 if running else 1, failedTasks=failed,
                          rolloutStateReason=f"local ECS agent: {state.lower()}",
                          updatedAt=datetime.now(UTC))
        record.deployments = [deployment]
    except (ImportError, KeyError, AttributeError, IndexError, TypeError) as exc:
        raise PipelineError(f"moto's ECS internals changed ({type(exc).__name__}: {exc}): the local "
                            f"ECS agent cannot report deployments (ops/pipeline_local.py)") from None
    return True


class MotoDeployments:
    """Tells moto's ECS what ECS records as a deployment's tasks start, pass health or fail."""

    def __init__(self, cluster: str, service: str, region: str = REGION):
        self.cluster, self.service, self.region = cluster, service, region

    def started(self, arn: str) -> None:
        write_moto_deployment(self.cluster, self.service, self.region, arn, state="IN_PROGRESS", running=0)

    def healthy(self, arn: str) -> None:
        write_moto_deployment(self.cluster, self.service, self.region, arn, state="COMPLETED")

    def failed(self, arn: str) -> None:
        write_moto_deployment(self.cluster, self.service, self.region, arn, state="IN_PROGRESS", running=0,
                              failed_delta=1)


# ---- running stages -------------------------------------------------------------------------------

def git_commit(cwd: Path) -> str:
    """The checkout's commit (what Jenkins calls GIT_COMMIT); 'local' outside a git checkout."""
    answer = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True)
    return answer.stdout.strip() if answer.returncode == 0 else "local"


def make_workspace(target: Path) -> Path:
    """Check the commit out into `target`, as Jenkins does: committed files only, no local edits.

    The virtualenv is linked, not copied: the stages' `make` targets find it where they expect it.
    """
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=ROOT, capture_output=True)
    if archive.returncode != 0:
        raise PipelineError(f"--workspace needs a git checkout: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    if (ROOT / ".venv").exists() and not (target / ".venv").exists():
        (target / ".venv").symlink_to(ROOT / ".venv")
    return target


def ask(message: str, ok: str, approve: bool) -> bool:
    """The `input` step: --approve answers yes; otherwise ask on the terminal (no terminal: refused)."""
    if approve:
        print(f"    input: {message} -> {ok} (--approve)", flush=True)
        return True
    if not sys.stdin.isatty():
        print(f"    input: {message} -> no terminal to ask and no --approve: refused", flush=True)
        return False
    reply = input(f"    input: {message} [{ok}? y/N] ")
    return reply.strip().lower() in ("y", "yes")


def run_stage(stage: dict, env: dict[str, str], cwd: Path, approve: bool) -> StageResult:
    """Run one stage's steps in order; stop at the first failing one."""
    started = time.monotonic()
    for step in stage["steps"]:
        if "sh" in step:
            print(f"    + {step['sh']}", flush=True)
            code = subprocess.run(["bash", "-eo", "pipefail", "-c", step["sh"]], cwd=cwd, env=env).returncode
            if code != 0:
                return StageResult(stage["name"], "FAILED", time.monotonic() - started,
                                   f"`{step['sh']}` exited {code}", code)
        elif "input" in step:
            if not ask(step["input"], step.get("ok") or "Proceed", approve):
                return StageResult(stage["name"], "FAILED", time.monotonic() - started,
                                   "approval refused", 1)
        else:
            # Reporting steps (commit status) have no local counterpart; say so rather than pretend.
            print(f"    ({step.get('step')}: Jenkins only)", flush=True)
    return StageResult(stage["name"], "ok", time.monotonic() - started)


def post_always(plan: dict, cwd: Path, artifacts: Path) -> list[str]:
    """The `post { always }` steps: check the JUnit reports exist, archive the artifacts."""
    lines = []
    for step in plan.get("post", {}).get("always", []):
        args = step.get("args", [{}])[0] if step.get("args") else {}
        if step.get("step") == "junit":
            pattern = args.get("testResults", "") if isinstance(args, dict) else str(args)
            found = sorted(glob.glob(str(cwd / pattern)))
            lines.append(f"junit {pattern}: {len(found)} report(s)")
        elif step.get("step") == "archiveArtifacts":
            patterns = args.get("artifacts", "") if isinstance(args, dict) else str(args)
            copied = 0
            for pattern in (p.strip() for p in patterns.split(",") if p.strip()):
                for path in glob.glob(str(cwd / pattern)):
                    relative = Path(path).relative_to(cwd)
                    (artifacts / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, artifacts / relative)
                    copied += 1
            lines.append(f"archiveArtifacts: {copied} file(s) to {artifacts}")
    return lines


def print_result(result: StageResult) -> None:
    detail = f"  ({result.detail})" if result.detail else ""
    print(f"==> {result.name:<20} {result.status:<8} {result.seconds:7.1f}s{detail}", flush=True)


def run(options: Options) -> int:
    """Run the selected pipelines locally; returns the exit code."""
    workspace = make_workspace(options.workspace) if options.workspace else ROOT
    commit = git_commit(ROOT)
    params = {"PIPELINE": options.pipeline, "REQUIRE_APPROVAL": str(options.require_approval).lower()}
    plan = dry_run(workspace / "Jenkinsfile", branch=options.branch, params=params, changed=options.changed,
                   env={"GIT_COMMIT": commit})
    if options.plan_only:
        print(json.dumps(plan, indent=2))
        return 0
    selected = [s["name"] for s in plan["stages"] if s["runs"]]
    unknown = sorted(set(options.skip) - {s["name"] for s in plan["stages"]})
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise PipelineError(f"--skip-stage: no stage named {names} in the Jenkinsfile")
    print(f"pipeline-local: branch {options.branch}, PIPELINE={options.pipeline}, "
          f"changed: {', '.join(options.changed) or '(nothing known: both pipelines)'}", flush=True)
    print(f"pipeline-local: stages: {' -> '.join(selected)}", flush=True)

    from ops.local_ecs_agent import LocalEcsAgent, free_port

    run_dir = workspace / "build" / "pipeline-local"
    run_dir.mkdir(parents=True, exist_ok=True)
    targets = {t for s in plan["stages"] if s["runs"] and s["name"] not in options.skip
               for step in s["steps"] for t in make_targets(step)}
    results: list[StageResult] = []
    with LocalAws() as aws, contextlib.ExitStack() as cleanup:
        model_name = os.environ.get("MODEL_NAME") or "digits"
        resources = aws.provision(model_name)
        image_env, images = {}, LocalEcrImages()
        if targets & IMAGE_TARGETS:
            image_env, images = local_image_tools(options, run_dir, aws, cleanup)
        if "publish" not in targets:
            seed_model(workspace, {**os.environ, **aws.env, "MODEL_STORE": resources["MODEL_STORE"],
                                   "MODEL_NAME": model_name})
        port = free_port()
        agent = LocalEcsAgent(
            ecs=aws.client("ecs"), cluster=CLUSTER, service=SERVICE, port=port,
            launcher=AutoLauncher(run_dir / "tasks", workspace, options.agent, images),
            extra_env={**aws.env, "MODEL_CACHE_DIR": str(run_dir / "model-cache")},
            reporter=MotoDeployments(CLUSTER, SERVICE),
        ).start()
        env = {
            **os.environ,
            **aws.env,
            **resources,
            **image_env,
            **{k: v for k, v in plan["environment"].items() if v is not None},
            "MODEL_NAME": model_name,
            "SERVICE_URL": agent.url,
            "GIT_COMMIT": commit,
            "BRANCH_NAME": options.branch,
            "PYTEST_ADDOPTS": os.environ.get("PYTEST_ADDOPTS", DEFAULT_PYTEST_ADDOPTS),
            # The local agent starts a task in seconds: poll the rollout every second, not every ten.
            "ROLLOUT_ARGS": os.environ.get("ROLLOUT_ARGS", "--poll 1"),
        }
        env.pop("AWS_PROFILE", None)
        print(f"pipeline-local: AWS at {aws.endpoint}; store {resources['MODEL_STORE']}; "
              f"service {SERVICE} in {CLUSTER} served on {agent.url}", flush=True)
        try:
            for stage in plan["stages"]:
                if stage["runs"] and stage["name"] in options.skip:
                    results.append(StageResult(stage["name"], "skipped", detail="--skip-stage"))
                    print_result(results[-1])
                    continue
                if not stage["runs"]:
                    when = "; ".join(stage["when"])
                    results.append(StageResult(stage["name"], "skipped",
                                               detail=f"when: {when[:90]}{'...' if len(when) > 90 else ''}"))
                    print_result(results[-1])
                    continue
                print(f"--> {stage['name']}", flush=True)
                results.append(run_stage(stage, env, workspace, options.approve))
                print_result(results[-1])
                if results[-1].status == "FAILED" and not options.keep_going:
                    break
        finally:
            for line in post_always(plan, workspace, run_dir / "artifacts"):
                print(f"post: {line}", flush=True)
            agent.stop()
    summary(results)
    failed = [r for r in results if r.status == "FAILED"]
    return failed[0].exit_code or 1 if failed else 0


def local_image_tools(options: Options, run_dir: Path, aws: LocalAws, cleanup) -> tuple[dict, LocalEcrImages]:
    """podman in its own folder, the base image, and a registry bridged into moto's ECR.

    Returns the stages' extra environment and the agent's view of the registry; `cleanup` (an
    ExitStack) stops the registry and the bridge when the run ends.
    """
    from ops.base_image import ensure_debian_base
    from ops.deploy_errors import DeployError
    from ops.local_ecr_bridge import EcrBridge
    from ops.local_registry import LocalRegistry
    from ops.podman_sandbox import sandbox_env

    missing = [tool for tool in ("podman", "docker-registry") if not shutil.which(tool)]
    if missing:
        raise PipelineError(f"the deploy pipeline's image stages need {' and '.join(missing)} "
                            f"(apt-get install podman docker-registry), or --skip-stage them")
    podman_root = options.podman_root or ROOT / "build" / "pipeline-local" / "podman"
    # The agent's podman calls run in this process, the stages' in its children: both use the sandbox.
    os.environ.update(sandbox_env(podman_root))
    print(f"pipeline-local: podman storage in {podman_root}", flush=True)
    env = {"IMAGE_BUILD_ARGS": os.environ.get("IMAGE_BUILD_ARGS", IMAGE_BUILD_ARGS)}
    try:
        if not os.environ.get("BASE_IMAGE"):
            if not shutil.which("debootstrap"):
                raise PipelineError("no BASE_IMAGE, and no debootstrap to make one (apt-get install it)")
            env["BASE_IMAGE"] = ensure_debian_base(
                "podman", run_dir / "base", log=lambda line: print(f"pipeline-local: {line}", flush=True))
        registry_dir = run_dir / "registry"
        shutil.rmtree(registry_dir, ignore_errors=True)
        registry = LocalRegistry(registry_dir)
        bridge = EcrBridge(aws.client("ecr"), registry).start()
        cleanup.callback(bridge.stop)
        registry.start(notify_url=bridge.url)
        cleanup.callback(shutil.rmtree, registry_dir, True)
        cleanup.callback(registry.stop)
    except DeployError as exc:
        raise PipelineError(str(exc)) from None
    env["ECR_REGISTRY_OVERRIDE"] = registry.host
    base = env.get("BASE_IMAGE") or os.environ["BASE_IMAGE"]
    print(f"pipeline-local: registry on {registry.host}, bridged into ECR; base image {base}", flush=True)
    return env, LocalEcrImages(registry)


def seed_model(workspace: Path, env: dict[str, str]) -> None:
    """Publish and promote a default model when no stage will: the deploy pipeline expects one, as in AWS."""
    print("pipeline-local: no stage publishes a model: seeding the store with a default one", flush=True)
    answer = subprocess.run([sys.executable, "-m", "model", "train", "--if-empty", "--promote", "production"],
                            cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
    if answer.returncode != 0:
        raise PipelineError(f"seeding the store failed: {(answer.stderr.strip().splitlines() or ['?'])[-1]}")


def summary(results: list[StageResult]) -> None:
    print("\npipeline-local summary", flush=True)
    for result in results:
        print_result(result)


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="scripts/pipeline-local", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", choices=["auto", "train", "deploy"], default="auto",
                        help="the Jenkinsfile's PIPELINE parameter (default %(default)s)")
    parser.add_argument("--changed", action="append", default=[], metavar="PATH",
                        help="a path the simulated push changed (repeat); "
                             "none: a branch's first build, both pipelines")
    parser.add_argument("--branch", default="main", help="the branch being built (default %(default)s)")
    parser.add_argument("--require-approval", action="store_true",
                        help="the REQUIRE_APPROVAL parameter: stop for approval before Promote")
    parser.add_argument("--approve", action="store_true", help="answer approval prompts with yes")
    parser.add_argument("--agent", choices=["auto", "gunicorn", "podman"], default="auto",
                        help="how the local ECS agent runs a task: the image under podman when it exists "
                             "locally (auto), or always gunicorn from the checkout")
    parser.add_argument("--workspace", type=Path,
                        help="check the commit (HEAD, without local edits) out here and run there, "
                             "as Jenkins would (default: run in this checkout as it is)")
    parser.add_argument("--keep-going", action="store_true", help="run the later stages after a failure")
    parser.add_argument("--skip-stage", action="append", default=[], metavar="NAME",
                        help="do not run this stage (repeat); reported as skipped")
    parser.add_argument("--podman-root", type=Path,
                        help="podman's storage and settings for the image stages (default "
                             "build/pipeline-local/podman: the base image and layers are reused across runs)")
    parser.add_argument("--plan", action="store_true",
                        help="only print the Jenkinsfile's dry run (stages, when, commands) as JSON")
    args = parser.parse_args(argv)
    for path in args.changed:
        if path.startswith("/") or ".." in Path(path).parts:
            parser.error(f"--changed takes a path inside the repository, got {path!r}")
    return Options(
        pipeline=args.pipeline, branch=args.branch, changed=args.changed, approve=args.approve,
        require_approval=args.require_approval, agent=args.agent,
        workspace=args.workspace.resolve() if args.workspace else None, keep_going=args.keep_going,
        plan_only=args.plan, skip=args.skip_stage,
        podman_root=args.podman_root.resolve() if args.podman_root else None,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of scripts/pipeline-local."""
    options = parse_args(argv)
    try:
        return run(options)
    except PipelineError as exc:
        print(f"pipeline-local: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
