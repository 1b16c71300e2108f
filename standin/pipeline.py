"""Run the Jenkinsfile's pipelines on a laptop: the same stages, in the same order, against local AWS.

    scripts/pipeline-local [--pipeline auto|train|deploy|monitor] [--changed PATH]... [--branch main] ...

The stages are not listed here: they come from a dry run of the Jenkinsfile (standin/dryrun.groovy),
with its `when` conditions evaluated for the given branch, PIPELINE parameter and changed paths, so
this runner and Jenkins cannot drift apart. Each stage's `sh` steps run as they would on an agent,
with the deployment settings pointing at a moto server on 127.0.0.1 that this command starts and
fills with what the pipelines expect to exist: the model store bucket, the ECR repository, and an
ECS cluster with a service (subnet and security group included). A local ECS agent runs whatever task
definition that service points at, so a rollout's verification of `/model` checks what it pinned.

When the deploy pipeline's image stages run, podman works in a folder of its own (standin/podman.py)
on a debootstrapped Debian base built once per recipe (BASE_IMAGE); ECR's API is the local ECR
endpoint (AWS_ENDPOINT_URL_ECR), whose registry is a real one on 127.0.0.1, so `make push` logs in and
pushes there as it would to ECR, and the agent pulls the pinned `repo@sha256:...` from it and runs it
under podman.

A stage whose `when` reads files of the workspace (`fileExists`, e.g. Retrain on drift reading what
the Monitor stage wrote) is decided when it starts, by the dry run again with the workspace as it is
then, as Jenkins decides it. A `build` step of the job itself (wait: false) queues a build, which
runs after this one ended, with the step's parameters (the others at their defaults), from its own
dry run: `--pipeline monitor` with drift runs the Monitor stage, then the train build it started.

Output: one line per stage, `name  ok|FAILED|skipped  seconds`; the exit code is the first failed
step's (8 for a refused approval), 0 when every selected stage of every build passed; codes as in
model/exit_codes.py.
"""


from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from model.exit_codes import ExitCode, text_table
from model.gitinfo import head_commit
from model.store import DEFAULT_ALIAS, DEFAULT_NAME
from standin.aws import REGION, STACK_NAME, LocalAws, MotoDeployments
from standin.errors import PipelineError, PipelineUsageError
from standin.images import AutoLauncher, LocalEcrImages, local_image_tools
from standin.jenkins import StageResult, dry_run, make_targets, post_always, print_result, run_stage, summary

ROOT = Path(__file__).resolve().parent.parent
# The make targets that build, run or push the image: podman, the base image and the registry are
# only set up when one of them runs.
IMAGE_TARGETS = {"image", "smoke", "push", "deploy"}
# env.JOB_NAME of the local runs: the job a `build` step may queue (the Jenkinsfile's own).
JOB_NAME = "pipeline-local"


@dataclass
class Options:
    """The runner's inputs (from the command line)."""

    pipeline: str = "auto"
    branch: str = "main"
    changed: list[str] = field(default_factory=list)
    approve: bool = False
    require_approval: bool = False
    agent: str = "auto"
    train_on: str = "agent"
    workspace: Path | None = None
    keep_going: bool = False
    plan_only: bool = False
    skip: list[str] = field(default_factory=list)
    podman_root: Path | None = None
    train_dataset: str = ""
    seed_store: Path | None = None
    seed_data: list[Path] = field(default_factory=list)



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



def build_params(options: Options) -> dict[str, str]:
    """The first build's parameters, as `Build with Parameters` would give them."""
    params = {"PIPELINE": options.pipeline, "REQUIRE_APPROVAL": str(options.require_approval).lower(),
              "TRAIN_ON": options.train_on}
    if options.train_dataset:
        params["TRAIN_DATASET"] = options.train_dataset
    return params


class LocalJob:
    """One Jenkins job on this machine: builds run one at a time (the Jenkinsfile's
    disableConcurrentBuilds), each from its own dry run; a `build` step of this job queues the next."""

    def __init__(self, options: Options, workspace: Path, commit: str):
        self.options, self.workspace, self.commit = options, workspace, commit
        self.queue: list[tuple[int, dict[str, str]]] = []
        self.builds = 1
        self.env: dict[str, str] = {}
        self.training = None  # set up when a build first runs `make train-task`
        self.cleanup: contextlib.ExitStack | None = None
        self.aws: LocalAws | None = None
        self.resources: dict[str, str] = {}

    def plan(self, params: dict[str, str], *, read_workspace: bool = False) -> dict:
        """The Jenkinsfile's dry run for a build with `params`; with `read_workspace`, as Jenkins decides
        a stage's `when` when the stage starts (fileExists/readFile read the workspace as it is now)."""
        return dry_run(self.workspace / "Jenkinsfile", branch=self.options.branch, params=params,
                       changed=self.options.changed, env={"GIT_COMMIT": self.commit, "JOB_NAME": JOB_NAME},
                       workspace=self.workspace if read_workspace else None)

    def queue_build(self, step: dict) -> str | None:
        """The `build` step: queue a build of this job with the step's parameters (None), or say why not."""
        if step["build"] != JOB_NAME:
            return f"only builds of this job ({JOB_NAME}) run locally"
        if step.get("wait", True):
            # With disableConcurrentBuilds a build waiting for its own job's next build waits forever.
            return "wait: true would wait for a build that cannot start while this one runs"
        params = {p["name"]: str(p["value"]).lower() if p["type"] == "boolean" else str(p["value"] or "")
                  for p in step["parameters"]}
        self.builds += 1
        self.queue.append((self.builds, params))
        shown = ", ".join(f"{k}={v}" for k, v in params.items())
        print(f"    build: queued {JOB_NAME} #{self.builds} ({shown}); it starts when this build ends",
              flush=True)
        return None

    def ensure_training_tasks(self, targets: set[str]) -> None:
        if "train-task" in targets and self.training is None:
            runner = training_tasks(self.aws, self.resources, self.workspace)
            self.training = self.cleanup.enter_context(runner)

    def run_build(self, number: int, params: dict[str, str], plan: dict) -> list[StageResult]:
        """Run one build's stages in order (a `deferred` stage decided when it starts), then its post."""
        options, run_dir = self.options, self.workspace / "build" / "pipeline-local"
        # Jenkins keeps each build's artifacts apart: build #1's in artifacts/, build #N's in artifacts-N/.
        artifacts = run_dir / ("artifacts" if number == 1 else f"artifacts-{number}")
        # Jenkins sets every build parameter as an environment variable of the build.
        env = {**self.env, **{k: v for k, v in plan["environment"].items() if v is not None},
               **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in plan["params"].items()}}
        self.ensure_training_tasks(running_targets(plan, options.skip))
        results: list[StageResult] = []
        try:
            for stage in plan["stages"]:
                if stage.get("deferred"):
                    stage = next(s for s in self.plan(params, read_workspace=True)["stages"]
                                 if s["name"] == stage["name"])
                    print(f"--- {stage['name']}: when decided now, from the workspace: "
                          f"{'runs' if stage['runs'] else 'skipped'}", flush=True)
                    self.ensure_training_tasks(running_targets({"stages": [stage]}, options.skip))
                if stage["runs"] and stage["name"] in options.skip:
                    results.append(StageResult(stage["name"], "skipped", detail="--skip-stage", build=number))
                    print_result(results[-1])
                    continue
                if not stage["runs"]:
                    when = "; ".join(stage["when"])
                    results.append(StageResult(stage["name"], "skipped", build=number,
                                               detail=f"when: {when[:90]}{'...' if len(when) > 90 else ''}"))
                    print_result(results[-1])
                    continue
                print(f"--> {stage['name']}", flush=True)
                results.append(run_stage(stage, env, self.workspace, options.approve,
                                         on_build=self.queue_build, build=number))
                for line in post_always(stage, self.workspace, artifacts):
                    print(f"post ({stage['name']}): {line}", flush=True)
                print_result(results[-1])
                if results[-1].status == "FAILED" and not options.keep_going:
                    break
        finally:
            for line in post_always(plan, self.workspace, artifacts):
                print(f"post: {line}", flush=True)
        return results


def running_targets(plan: dict, skip: list[str]) -> set[str]:
    """The make targets of a plan's stages that run (deferred ones included: they may)."""
    return {t for s in plan["stages"] if (s["runs"] or s.get("deferred")) and s["name"] not in skip
            for step in s["steps"] for t in make_targets(step)}


def run(options: Options) -> int:
    """Run the selected pipelines locally, and the builds they queue; returns the exit code."""
    workspace = make_workspace(options.workspace) if options.workspace else ROOT
    job = LocalJob(options, workspace, head_commit(ROOT) or "local")
    params = build_params(options)
    plan = job.plan(params)
    if options.plan_only:
        print(json.dumps(plan, indent=2))
        return 0
    selected = [s["name"] + ("?" if s.get("deferred") else "") for s in plan["stages"]
                if s["runs"] or s.get("deferred")]
    unknown = sorted(set(options.skip) - {s["name"] for s in plan["stages"]})
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise PipelineUsageError(f"--skip-stage: no stage named {names} in the Jenkinsfile")
    unknown_changes = "(nothing known: both pipelines)" if options.pipeline == "auto" else "(nothing known)"
    print(f"pipeline-local: branch {options.branch}, PIPELINE={options.pipeline}, "
          f"changed: {', '.join(options.changed) or unknown_changes}", flush=True)
    print(f"pipeline-local: stages: {' -> '.join(selected)}"
          + ("   (?: decided when it starts, from the workspace)" if "?" in "".join(selected) else ""),
          flush=True)

    from standin.ecs_agent import LocalEcsAgent
    from standin.ports import free_port

    run_dir = workspace / "build" / "pipeline-local"
    run_dir.mkdir(parents=True, exist_ok=True)
    targets = running_targets(plan, options.skip)
    results: list[StageResult] = []
    with LocalAws() as aws, contextlib.ExitStack() as cleanup:
        model_name = os.environ.get("MODEL_NAME") or DEFAULT_NAME
        resources = aws.provision(model_name)
        job.aws, job.resources, job.cleanup = aws, resources, cleanup
        image_env, images = {}, LocalEcrImages()
        if targets & IMAGE_TARGETS:
            image_env, images = local_image_tools(options.podman_root, run_dir, aws, cleanup)
        if options.seed_store:
            copy_store(options.seed_store, resources["MODEL_STORE"], aws)
        elif "publish" not in targets:
            seed_model(workspace, {**os.environ, **aws.env, "MODEL_STORE": resources["MODEL_STORE"],
                                   "MODEL_NAME": model_name})
        for path in options.seed_data:
            upload_data(path, resources, model_name, aws)
        port = free_port()
        agent = LocalEcsAgent(
            ecs=aws.client("ecs"), cluster=resources["ECS_CLUSTER"], service=resources["ECS_SERVICE"],
            port=port,
            launcher=AutoLauncher(run_dir / "tasks", workspace, options.agent, images),
            extra_env={**aws.env, "MODEL_CACHE_DIR": str(run_dir / "model-cache")},
            reporter=MotoDeployments(resources["ECS_CLUSTER"], resources["ECS_SERVICE"]),
        ).start()
        job.env = {
            **os.environ,
            **aws.env,
            **resources,
            **image_env,
            "MODEL_NAME": model_name,
            "SERVICE_URL": agent.url,
            "GIT_COMMIT": job.commit,
            "BRANCH_NAME": options.branch,
            "JOB_NAME": JOB_NAME,
            # The local agent starts a task in seconds: poll the rollout every second, not every ten.
            "ROLLOUT_ARGS": os.environ.get("ROLLOUT_ARGS", "--poll 1"),
        }
        job.env.pop("AWS_PROFILE", None)
        print(f"pipeline-local: AWS at {aws.endpoint}; store {resources['MODEL_STORE']}; "
              f"service {resources['ECS_SERVICE']} in {resources['ECS_CLUSTER']} (stack {STACK_NAME}) "
              f"served on {agent.url}", flush=True)
        try:
            results += job.run_build(1, params, plan)
            # Queued builds start one at a time once the build before them ended, whatever its result.
            while job.queue:
                number, queued = job.queue.pop(0)
                queued_plan = job.plan(queued)
                if running_targets(queued_plan, options.skip) & IMAGE_TARGETS and not image_env:
                    raise PipelineError(f"build #{number} builds images: the first build set up no podman")
                shown = ", ".join(f"{k}={v}" for k, v in queued.items())
                stages = [s["name"] for s in queued_plan["stages"] if s["runs"] or s.get("deferred")]
                print(f"\npipeline-local: build #{number} of {JOB_NAME} ({shown}), started by build #1: "
                      f"stages: {' -> '.join(stages)}", flush=True)
                results += job.run_build(number, queued, queued_plan)
        finally:
            agent.stop()
    summary(results)
    failed = [r for r in results if r.status == "FAILED"]
    return failed[0].exit_code or ExitCode.UNEXPECTED if failed else ExitCode.OK


def copy_store(source: Path, uri: str, aws: LocalAws) -> None:
    """Start the local store as a copy of a store folder (models, aliases, captured records): a local
    rerun of what a store held, e.g. the captures behind a drift alarm."""
    from model.backends import LocalBackend, open_backend

    src, dst = LocalBackend(source), open_backend(uri, s3_client=aws.client("s3"))
    keys = src.list_keys("")
    for key in keys:
        dst.write(key, src.read(key)[0])
    print(f"pipeline-local: store seeded from {source}: {len(keys)} object(s) copied to {uri}", flush=True)


def upload_data(path: Path, resources: dict[str, str], model_name: str, aws: LocalAws) -> None:
    """Upload a CSV where new training data goes (s3://<store's bucket>/<DATA_PREFIX>/<model>/), as a
    data upload to the stack would (its trigger is not emulated: nothing starts a run by itself)."""
    from urllib.parse import urlparse

    bucket = urlparse(resources["MODEL_STORE"]).netloc
    key = f"{resources.get('DATA_PREFIX', 'data').strip('/')}/{model_name}/{path.name}"
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    print(f"pipeline-local: training data uploaded: s3://{bucket}/{key}", flush=True)


def training_tasks(aws: LocalAws, resources: dict[str, str], workspace: Path):
    """The stand-in for Fargate's one-off tasks, for `make train-task` (Train in ECS): the stack's
    training tasks run from the workspace (its training image is a placeholder until one is pushed)."""
    from standin.task_runner import CheckoutLauncher, LocalTaskRunner

    print(f"pipeline-local: training tasks of {resources['TRAIN_TASK_FAMILY']} run from the checkout",
          flush=True)
    return LocalTaskRunner(ecs=aws.client("ecs"), logs=aws.client("logs"), cluster=resources["ECS_CLUSTER"],
                           family=resources["TRAIN_TASK_FAMILY"], region=REGION,
                           launcher=CheckoutLauncher(workspace), extra_env=aws.env)


def seed_model(workspace: Path, env: dict[str, str]) -> None:
    """Publish and promote a default model when no stage will: the deploy pipeline expects one, as in AWS."""
    print("pipeline-local: no stage publishes a model: seeding the store with a default one", flush=True)
    command = [sys.executable, "-m", "model", "train", "--if-empty", "--promote", DEFAULT_ALIAS]
    answer = subprocess.run(command, cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
    if answer.returncode != 0:
        raise PipelineError(f"seeding the store failed: {(answer.stderr.strip().splitlines() or ['?'])[-1]}")


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="scripts/pipeline-local", description=__doc__, epilog=text_table(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", choices=["auto", "train", "deploy", "monitor"], default="auto",
                        help="the Jenkinsfile's PIPELINE parameter (default %(default)s)")
    parser.add_argument("--changed", action="append", default=[], metavar="PATH",
                        help="a path the simulated push changed (repeat); "
                             "none: a branch's first build, both pipelines")
    parser.add_argument("--branch", default="main", help="the branch being built (default %(default)s)")
    parser.add_argument("--require-approval", action="store_true",
                        help="the REQUIRE_APPROVAL parameter: stop for approval before Promote")
    parser.add_argument("--approve", action="store_true", help="answer approval prompts with yes")
    parser.add_argument("--train-on", choices=["agent", "ecs"], default="agent",
                        help="the TRAIN_ON parameter: ecs trains as a task that a local runner runs "
                             "(default %(default)s)")
    parser.add_argument("--train-dataset", default="", metavar="DATASET",
                        help="the TRAIN_DATASET parameter: train on this instead of the plan's dataset")
    parser.add_argument("--seed-store", type=Path, metavar="DIR",
                        help="start the local store as a copy of this store folder (its models, aliases "
                             "and captured records) instead of a default model")
    parser.add_argument("--seed-data", type=Path, action="append", default=[], metavar="CSV",
                        help="upload this CSV as new training data of the model "
                             "(s3://<bucket>/<DATA_PREFIX>/<model>/; repeat)")
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
    if args.seed_store and not args.seed_store.is_dir():
        parser.error(f"--seed-store: no such folder: {args.seed_store}")
    for path in args.seed_data:
        if not path.is_file() or path.suffix.lower() != ".csv":
            parser.error(f"--seed-data takes a .csv file, got {path}")
    for path in args.changed:
        if path.startswith("/") or ".." in Path(path).parts:
            parser.error(f"--changed takes a path inside the repository, got {path!r}")
    return Options(
        pipeline=args.pipeline, branch=args.branch, changed=args.changed, approve=args.approve,
        require_approval=args.require_approval, agent=args.agent, train_on=args.train_on,
        workspace=args.workspace.resolve() if args.workspace else None, keep_going=args.keep_going,
        plan_only=args.plan, skip=args.skip_stage, train_dataset=args.train_dataset,
        seed_store=args.seed_store.resolve() if args.seed_store else None,
        seed_data=[path.resolve() for path in args.seed_data],
        podman_root=args.podman_root.resolve() if args.podman_root else None,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of scripts/pipeline-local."""
    options = parse_args(argv)
    try:
        return run(options)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
