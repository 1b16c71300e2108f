"""`scripts/score-tasks`: score an s3:// prefix with N Fargate tasks, and report when all have finished.

    scripts/score-tasks s3://bucket/score/2026-12/ s3://bucket/scored/2026-12/ --tasks 4 [-- OPTIONS]

For a prefix larger than one machine. Each task runs `python -m model score INPUT OUTPUT --shard K/N`
in the training image (it holds the model package; the stack's training task definition, its role and
network are reused: TRAIN_TASK_FAMILY, TRAIN_SUBNETS, TRAIN_SECURITY_GROUPS, ECS_CLUSTER), so the N tasks
score disjoint shares of the files, each resumable as on a laptop: running the command again after a
failure skips the outputs that are complete. Options after `--` go to `model score` (e.g. --id-column).
The exit code is 0 when every task did, 19 when rows or files failed in some task, else the first other
task's code (18: a task stopped before its command finished).
"""

from __future__ import annotations

import argparse
import sys

from deploy.errors import InvalidInput, TaskFailed, run_command
from model.exit_codes import ExitCode, text_table

STARTED_BY = "score-tasks"


def build_parser() -> argparse.ArgumentParser:
    """The options, defaulting to deploy.settings."""
    from deploy.settings import settings
    from deploy.training.cli import add_task_options

    env = settings()
    parser = argparse.ArgumentParser(prog="scripts/score-tasks", description=__doc__, epilog=text_table(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", metavar="INPUT", help="an s3:// prefix of .csv/.jsonl files")
    parser.add_argument("output", metavar="OUTPUT", help="an s3:// prefix for the results")
    parser.add_argument("--tasks", type=int, default=2, help="how many tasks share the files (default 2)")
    parser.add_argument("--name", default=env["MODEL_NAME"], help="model name (default: $MODEL_NAME)")
    parser.add_argument("--cpu", default=env["TRAIN_CPU"], help="Fargate CPU units per task")
    parser.add_argument("--memory", default=env["TRAIN_MEMORY"], help="memory in MiB per task")
    parser.add_argument("--timeout", type=float, default=float(env["TRAIN_TIMEOUT"]),
                        help="stop the tasks after this many seconds (default %(default)s)")
    add_task_options(parser, env)
    parser.epilog = "Options after `--` go to `python -m model score`.\n\n" + text_table()
    return parser


def main(argv: list[str] | None = None) -> int:
    """Start the tasks, follow them, exit with the combined code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # argparse cannot give a trailing `-- ...` to a list after two positionals: split it off first.
    cut = argv.index("--") if "--" in argv else len(argv)
    args = build_parser().parse_args(argv[:cut])
    args.score_args = argv[cut + 1:]
    return run_command(lambda: score_tasks(args))


def score_tasks(args) -> int:
    """The command's body: returns the exit code."""
    from deploy.training.cli import runner_for

    if not (args.input.startswith("s3://") and args.output.startswith("s3://")):
        raise InvalidInput("INPUT and OUTPUT must be s3:// prefixes: the tasks read and write S3")
    if not 1 <= args.tasks <= 100:
        raise InvalidInput(f"--tasks must be 1 to 100, got {args.tasks}")
    runner = runner_for(args)
    runs = []
    try:
        for k in range(args.tasks):
            command = ["python", "-m", "model", "score", args.input, args.output, "--name", args.name,
                       "--shard", f"{k}/{args.tasks}", *args.score_args]
            run = runner.start(args.name, command, cpu=args.cpu, memory=args.memory, trigger=STARTED_BY,
                               group=f"score:{args.name}", started_by=STARTED_BY)
            run.label = f"[{k}/{args.tasks}]"
            runs.append(run)
            print(f"started scoring task {run.task_id} ({k}/{args.tasks}): {' '.join(command)}", flush=True)
        _follow(runner, runs, args.timeout)
    except KeyboardInterrupt:
        for run in runs:
            runner.stop(run, "scripts/score-tasks was interrupted")
        raise TaskFailed(f"interrupted: {len(runs)} scoring task(s) were stopped") from None
    return _report(runs)


def _follow(runner, runs, timeout: float) -> None:
    deadline = runner.clock() + timeout
    pending = list(runs)
    while pending:
        pending = [run for run in pending if not runner.poll_once(run)]
        if pending and runner.clock() > deadline:
            for run in pending:
                runner.stop(run, f"scripts/score-tasks: no result after {timeout:.0f} s")
            raise TaskFailed(f"{len(pending)} scoring task(s) did not finish in {timeout:.0f} s and were "
                             "stopped; a re-run skips the outputs that are complete")
        if pending:
            runner.sleep(runner.poll)


def _report(runs) -> int:
    codes = []
    for run in runs:
        code = ExitCode.TASK_FAILED if run.exit_code is None else run.exit_code
        codes.append(code)
        ended = "finished" if code == 0 else f"exited {code}" if run.exit_code is not None else "stopped"
        print(f"{run.label} task {run.task_id} {ended}{': ' + run.stopped_reason if code else ''}")
    failed = [c for c in codes if c != 0]
    if not failed:
        print(f"all {len(runs)} scoring task(s) finished")
        return ExitCode.OK
    code = ExitCode.ROWS_FAILED if all(c == ExitCode.ROWS_FAILED for c in failed) else next(
        c for c in failed if c != ExitCode.ROWS_FAILED)
    print(f"error: {len(failed)} of {len(runs)} scoring task(s) did not finish cleanly (see their logs "
          "above); a re-run skips the outputs that are complete", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
