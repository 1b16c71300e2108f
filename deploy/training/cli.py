"""`scripts/train-task`: train and publish a model as a Fargate task, and wait for it.

    scripts/train-task [--name NAME] [--dataset D] [--recipe R] [--param K=V] [--cpu N --memory MiB]
                       [--promote ALIAS] [--version-file PATH] [-- MORE MODEL-TRAIN OPTIONS]

Without --dataset and --recipe the task trains the model's entry of model/training.toml (as baked into
the training image); --dataset alone replaces that entry's data. The task runs the training image's
`python -m model train`, which checks the store, trains, gates and publishes, exactly as on a laptop.
The script prints the task's log as it arrives, then `published NAME VERSION`, and exits with the
task's exit code (the table below); a task that stopped before its command finished is 18.

Settings (flags default to them; `scripts/stack outputs --format env` prints them for a stack):
ECS_CLUSTER, TRAIN_TASK_FAMILY, TRAIN_SUBNETS, TRAIN_SECURITY_GROUPS, TRAIN_CPU, TRAIN_MEMORY,
TRAIN_TIMEOUT, MODEL_NAME, MODEL_STORE, AWS_REGION.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deploy.errors import DeployError, InvalidInput, TaskFailed, run_command
from model.exit_codes import ExitCode, text_table

PLAN = "model/training.toml"


def build_parser() -> argparse.ArgumentParser:
    """The options, defaulting to deploy.settings."""
    from deploy.settings import settings

    env = settings()
    parser = argparse.ArgumentParser(prog="scripts/train-task", description=__doc__, epilog=text_table(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default=env["MODEL_NAME"], help="model name (default: $MODEL_NAME)")
    parser.add_argument("--dataset", help="the data (a built-in name or an s3:// CSV the task can read); "
                                          "default: the plan's")
    parser.add_argument("--recipe", help="a recipe name or package.module:function; default: the plan's")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe parameter (with --recipe)")
    parser.add_argument("--promote", metavar="ALIAS",
                        help="move this alias to the new version after publishing")
    parser.add_argument("--cpu", default=env["TRAIN_CPU"],
                        help="Fargate CPU units for this run: 256 ... 16384 (default: the task definition's)")
    parser.add_argument("--memory", default=env["TRAIN_MEMORY"],
                        help="memory in MiB for this run (default: the task definition's)")
    parser.add_argument("--timeout", type=float, default=float(env["TRAIN_TIMEOUT"]),
                        help="stop the task after this many seconds (default %(default)s)")
    parser.add_argument("--no-wait", action="store_true", help="print the task ARN and exit once it started")
    parser.add_argument("--version-file", type=Path, help="write the published version id to this file")
    parser.add_argument("--store", default=env["MODEL_STORE"],
                        help="the store the task publishes to, read to confirm the version "
                             "(default: $MODEL_STORE)")
    add_task_options(parser, env)
    parser.add_argument("train_args", nargs="*", metavar="-- OPTION",
                        help="more `python -m model train` options, after `--` "
                             "(e.g. -- --gate-tolerance 0.02)")
    return parser


def train_command(args) -> list[str]:
    """The container's command: `python -m model train` with the plan's entry or the given data/recipe."""
    command = ["python", "-m", "model", "train", "--name", args.name]
    if args.recipe:
        command += ["--recipe", args.recipe, "--dataset", args.dataset or "digits"]
        for pair in args.param:
            command += ["--param", pair]
    else:
        if args.param:
            raise InvalidInput("--param goes with --recipe (the plan names its recipe's parameters)")
        command += ["--plan", PLAN, "--model", args.name]
        if args.dataset:
            command += ["--dataset", args.dataset]
    if args.promote:
        command += ["--promote", args.promote]
    return command + list(args.train_args)


def main(argv: list[str] | None = None) -> int:
    """Start the task, follow it, and exit with its code."""
    args = build_parser().parse_args(argv)
    return run_command(lambda: train_task(args))


def add_task_options(parser: argparse.ArgumentParser, env: dict) -> None:
    """Where the tasks run (the options `runner_for` reads), shared with scripts/score-tasks."""
    parser.add_argument("--cluster", default=env["ECS_CLUSTER"], help="default: $ECS_CLUSTER")
    parser.add_argument("--family", default=env["TRAIN_TASK_FAMILY"], help="default: $TRAIN_TASK_FAMILY")
    parser.add_argument("--subnets", default=env["TRAIN_SUBNETS"],
                        help="comma list (default: $TRAIN_SUBNETS)")
    parser.add_argument("--security-groups", default=env["TRAIN_SECURITY_GROUPS"],
                        help="comma list (default: $TRAIN_SECURITY_GROUPS)")
    parser.add_argument("--region", default=env["AWS_REGION"])
    parser.add_argument("--poll", type=float, default=5.0, help="seconds between status checks")


def runner_for(args):
    """The task runner for the stack settings the arguments name (cluster, family, network, region)."""
    from deploy.aws import client
    from deploy.training.runner import Network, TaskRunner

    missing = [flag for flag, value in (("--cluster", args.cluster), ("--subnets", args.subnets),
                                        ("--security-groups", args.security_groups)) if not value]
    if missing:
        raise InvalidInput(f"{', '.join(missing)} not given (set ECS_CLUSTER, TRAIN_SUBNETS and "
                           "TRAIN_SECURITY_GROUPS, e.g. from `scripts/stack outputs --format env`)")
    if not args.region:
        raise InvalidInput("no AWS region: pass --region or set AWS_REGION")
    network = Network(subnets=_split(args.subnets), security_groups=_split(args.security_groups))
    return TaskRunner(client("ecs", args.region), client("logs", args.region), cluster=args.cluster,
                      family=args.family, network=network, poll=args.poll)


def train_task(args) -> int:
    """The command's body: returns the exit code (the task's)."""
    from model.errors import ModelError
    from model.store import check_name

    try:
        check_name("model name", args.name)
    except ModelError as exc:
        raise InvalidInput(str(exc)) from None
    command = train_command(args)
    runner = runner_for(args)
    run = runner.start(args.name, command, cpu=args.cpu, memory=args.memory)
    print(f"started training task {run.task_id} ({args.family}, cluster {args.cluster}): "
          f"{' '.join(command)}", flush=True)
    if run.log_stream:
        print(f"log: CloudWatch group {run.log_group}, stream {run.log_stream} "
              f"(aws logs tail {run.log_group} --log-stream-names {run.log_stream} --follow)", flush=True)
    if args.no_wait:
        print(run.task_arn)
        return ExitCode.OK
    try:
        runner.wait(run, args.timeout)
    except KeyboardInterrupt:
        runner.stop(run, "scripts/train-task was interrupted")
        raise TaskFailed(f"interrupted: training task {run.task_id} was stopped") from None
    if run.exit_code is None:
        _tail(run)
        raise TaskFailed(f"training task {run.task_id} stopped before its command finished: "
                         f"{run.stopped_reason or 'no reason given'}")
    if run.exit_code != 0:
        _tail(run)
        reason = f" ({run.stopped_reason})" if run.stopped_reason else ""
        print(f"error: training task {run.task_id} exited {run.exit_code}{reason}: "
              f"{_last_error(run) or 'see its log above'}", file=sys.stderr)
        return run.exit_code
    if run.published is None:
        print(f"training task {run.task_id} finished and published nothing (see its log above)")
        return ExitCode.OK
    _confirm(args, run)
    if args.version_file:
        args.version_file.write_text(run.published + "\n")
    print(f"published {args.name} {run.published}")
    return ExitCode.OK


def _confirm(args, run) -> None:
    """The version the log names is in the store, with its manifest: the task's word is not enough."""
    if not args.store:
        return
    from model.errors import ModelError
    from model.store import ModelStore

    try:
        ModelStore(args.store).manifest(args.name, run.published)
    except ModelError as exc:
        raise DeployError(f"the task's log says it published {run.published}, but the store says: {exc}"
                          ) from None


def _tail(run, lines: int = 20) -> None:
    if run.lines:
        print(f"the last lines of training task {run.task_id}'s log:")
        for line in run.lines[-lines:]:
            print(f"  | {line}")


def _last_error(run) -> str:
    return next((line.strip()[len("error: "):] for line in reversed(run.lines)
                 if line.strip().startswith("error: ")), "")


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


if __name__ == "__main__":
    raise SystemExit(main())
