"""Run the Jenkinsfile's pipelines on a laptop: the same stages, in the same order, against local AWS.

    scripts/pipeline-local [--pipeline auto|train|deploy] [--changed PATH]... [--branch main] ...

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

Output: one line per stage, `name  ok|FAILED|skipped  seconds`; the exit code is the failed step's
(8 for a refused approval), 0 when every selected stage passed; codes as in model/exit_codes.py.
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



def run(options: Options) -> int:
    """Run the selected pipelines locally; returns the exit code."""
    workspace = make_workspace(options.workspace) if options.workspace else ROOT
    commit = head_commit(ROOT) or "local"
    params = {"PIPELINE": options.pipeline, "REQUIRE_APPROVAL": str(options.require_approval).lower(),
              "TRAIN_ON": options.train_on}
    plan = dry_run(workspace / "Jenkinsfile", branch=options.branch, params=params, changed=options.changed,
                   env={"GIT_COMMIT": commit})
    if options.plan_only:
        print(json.dumps(plan, indent=2))
        return 0
    selected = [s["name"] for s in plan["stages"] if s["runs"]]
    unknown = sorted(set(options.skip) - {s["name"] for s in plan["stages"]})
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise PipelineUsageError(f"--skip-stage: no stage named {names} in the Jenkinsfile")
    print(f"pipeline-local: branch {options.branch}, PIPELINE={options.pipeline}, "
          f"changed: {', '.join(options.changed) or '(nothing known: both pipelines)'}", flush=True)
    print(f"pipeline-local: stages: {' -> '.join(selected)}", flush=True)

    from standin.ecs_agent import LocalEcsAgent
    from standin.ports import free_port

    run_dir = workspace / "build" / "pipeline-local"
    run_dir.mkdir(parents=True, exist_ok=True)
    targets = {t for s in plan["stages"] if s["runs"] and s["name"] not in options.skip
               for step in s["steps"] for t in make_targets(step)}
    results: list[StageResult] = []
    with LocalAws() as aws, contextlib.ExitStack() as cleanup:
        model_name = os.environ.get("MODEL_NAME") or DEFAULT_NAME
        resources = aws.provision(model_name)
        image_env, images = {}, LocalEcrImages()
        if targets & IMAGE_TARGETS:
            image_env, images = local_image_tools(options.podman_root, run_dir, aws, cleanup)
        if "publish" not in targets:
            seed_model(workspace, {**os.environ, **aws.env, "MODEL_STORE": resources["MODEL_STORE"],
                                   "MODEL_NAME": model_name})
        port = free_port()
        agent = LocalEcsAgent(
            ecs=aws.client("ecs"), cluster=resources["ECS_CLUSTER"], service=resources["ECS_SERVICE"],
            port=port,
            launcher=AutoLauncher(run_dir / "tasks", workspace, options.agent, images),
            extra_env={**aws.env, "MODEL_CACHE_DIR": str(run_dir / "model-cache")},
            reporter=MotoDeployments(resources["ECS_CLUSTER"], resources["ECS_SERVICE"]),
        ).start()
        if "train-task" in targets:
            cleanup.enter_context(training_tasks(aws, resources, workspace))
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
            # The local agent starts a task in seconds: poll the rollout every second, not every ten.
            "ROLLOUT_ARGS": os.environ.get("ROLLOUT_ARGS", "--poll 1"),
        }
        env.pop("AWS_PROFILE", None)
        print(f"pipeline-local: AWS at {aws.endpoint}; store {resources['MODEL_STORE']}; "
              f"service {resources['ECS_SERVICE']} in {resources['ECS_CLUSTER']} (stack {STACK_NAME}) "
              f"served on {agent.url}", flush=True)
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
    return failed[0].exit_code or ExitCode.UNEXPECTED if failed else ExitCode.OK



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
    parser.add_argument("--pipeline", choices=["auto", "train", "deploy"], default="auto",
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
        require_approval=args.require_approval, agent=args.agent, train_on=args.train_on,
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
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
