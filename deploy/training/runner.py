"""Run `python -m model train ...` as a Fargate task and follow it to the end.

The training task definition is the stack's (`TRAIN_TASK_FAMILY`, container `train`); a run overrides
only its command, environment, CPU and memory. The script waits for the task to stop, prints its
CloudWatch log as it arrives (the awslogs stream `<prefix>/train/<task id>`), and ends with the
task's own exit code: the model CLI's codes (model/exit_codes.py) pass through unchanged, so a
refused gate is 8 and bad data 7 in the cloud as on a laptop. A task that stops without its
container having exited (the image could not be pulled, the task was stopped) is TASK_FAILED.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from deploy.aws import aws_errors
from deploy.errors import AwsError, InvalidInput, ResourceNotFound, TaskFailed

CONTAINER = "train"
STARTED_BY = "train-task"
# What `python -m model train` prints once a version is in the store (model/commands/publishing.py).
_PUBLISHED = re.compile(r"^published (?P<name>\S+) (?P<version>\d{8}T\d{6}Z-[0-9a-f]{8}) to (?P<store>\S+)$")
# Fargate's CPU units and the memory (MiB) each allows; ECS refuses other pairs at RunTask.
FARGATE_SIZES = {
    "256": range(512, 2049, 512),
    "512": range(1024, 4097, 1024),
    "1024": range(2048, 8193, 1024),
    "2048": range(4096, 16385, 1024),
    "4096": range(8192, 30721, 1024),
    "8192": range(16384, 61441, 4096),
    "16384": range(32768, 122881, 8192),
}


@dataclass(frozen=True)
class Network:
    """Where a training task runs: subnets and security groups (the stack's outputs)."""

    subnets: list[str]
    security_groups: list[str]
    assign_public_ip: bool = True

    def as_request(self) -> dict:
        return {"awsvpcConfiguration": {
            "subnets": self.subnets, "securityGroups": self.security_groups,
            "assignPublicIp": "ENABLED" if self.assign_public_ip else "DISABLED"}}


@dataclass
class TrainingRun:
    """One training task: what was asked, and what became of it."""

    model: str
    command: list[str]
    task_arn: str = ""
    log_group: str = ""
    log_stream: str = ""
    exit_code: int | None = None
    stopped_reason: str = ""
    published: str | None = None
    lines: list[str] = field(default_factory=list)
    log_token: str | None = None  # where the next read of the log stream starts
    label: str = ""  # printed before each log line (which task it is, when several run)

    @property
    def task_id(self) -> str:
        return self.task_arn.rsplit("/", 1)[-1]


def check_size(cpu: str | None, memory: str | None) -> None:
    """Refuse a CPU/memory pair Fargate would refuse, before a task is started."""
    if cpu is None and memory is None:
        return
    if cpu is not None and cpu not in FARGATE_SIZES:
        raise InvalidInput(f"--cpu {cpu}: Fargate takes {', '.join(FARGATE_SIZES)} CPU units")
    if cpu is not None and memory is not None:
        if not memory.isdigit() or int(memory) not in FARGATE_SIZES[cpu]:
            allowed = FARGATE_SIZES[cpu]
            raise InvalidInput(f"--memory {memory}: with --cpu {cpu} Fargate takes {allowed.start} to "
                               f"{allowed[-1]} MiB in steps of {allowed.step}")
    elif memory is not None and not memory.isdigit():
        raise InvalidInput(f"--memory {memory}: a number of MiB")


def log_location(definition: dict, task_id: str) -> tuple[str, str]:
    """(log group, stream) of the training container's awslogs output for a task."""
    container = next((c for c in definition.get("containerDefinitions", []) if c.get("name") == CONTAINER),
                     None)
    if container is None:
        raise InvalidInput(f"task definition {definition.get('family')} has no container named {CONTAINER!r}")
    config = container.get("logConfiguration") or {}
    options = config.get("options") or {}
    if config.get("logDriver") != "awslogs" or "awslogs-group" not in options:
        return "", ""
    prefix = options.get("awslogs-stream-prefix", "")
    return options["awslogs-group"], f"{prefix}/{CONTAINER}/{task_id}" if prefix else ""


class TaskRunner:
    """Starts a training task and follows it; `ecs` and `logs` are boto3 clients, `log` prints a line."""

    def __init__(self, ecs, logs, *, cluster: str, family: str, network: Network,
                 log: Callable[[str], None] = print, poll: float = 5.0, clock=time.monotonic,
                 sleep=time.sleep):
        self.ecs, self.logs = ecs, logs
        self.cluster, self.family, self.network = cluster, family, network
        self.log, self.poll, self.clock, self.sleep = log, poll, clock, sleep

    def start(self, model: str, command: list[str], *, cpu: str | None = None, memory: str | None = None,
              trigger: str = STARTED_BY, group: str | None = None,
              started_by: str = STARTED_BY) -> TrainingRun:
        """RunTask with the command, the group (default `train:<model>`) and the size asked; the run
        (task ARN set)."""
        check_size(cpu, memory)
        try:
            with aws_errors(f"describe task definition {self.family}"):
                definition = self.ecs.describe_task_definition(taskDefinition=self.family)["taskDefinition"]
        except InvalidInput:  # ECS answers ClientException for a family it does not know
            raise ResourceNotFound(f"no training task definition {self.family!r} (TRAIN_TASK_FAMILY: the "
                                   "stack's TrainTaskFamily output)") from None
        overrides: dict = {"containerOverrides": [{
            "name": CONTAINER, "command": command,
            "environment": [{"name": "MODEL_NAME", "value": model},
                            {"name": "TRAINING_TRIGGER", "value": trigger}],
        }]}
        if cpu:
            overrides["cpu"] = cpu
        if memory:
            overrides["memory"] = memory
        with aws_errors(f"run the training task {self.family} in cluster {self.cluster}"):
            answer = self.ecs.run_task(
                cluster=self.cluster, taskDefinition=definition["taskDefinitionArn"], launchType="FARGATE",
                count=1, group=group or f"train:{model}", startedBy=started_by, overrides=overrides,
                networkConfiguration=self.network.as_request(),
            )
        failures = answer.get("failures") or []
        if failures or not answer.get("tasks"):
            reason = "; ".join(f"{f.get('reason', '?')} {f.get('detail', '')}".strip() for f in failures)
            raise AwsError(f"ECS did not start the training task: {reason or 'no task in the answer'}")
        run = TrainingRun(model=model, command=command, task_arn=answer["tasks"][0]["taskArn"])
        run.log_group, run.log_stream = log_location(definition, run.task_id)
        return run

    def wait(self, run: TrainingRun, timeout: float) -> TrainingRun:
        """Follow the task until it stops, printing its log; stops it if `timeout` seconds pass first."""
        deadline = self.clock() + timeout
        while not self.poll_once(run):
            if self.clock() > deadline:
                self.stop(run, f"scripts/train-task: no result after {timeout:.0f} s")
                raise TaskFailed(f"training task {run.task_id} did not finish in {timeout:.0f} s; it was "
                                 "stopped and published nothing")
            self.sleep(self.poll)
        return run

    def poll_once(self, run: TrainingRun) -> bool:
        """Print the log lines that arrived; once the task stopped, record how it ended and return True."""
        task = self._describe(run.task_arn)
        self._print_new_lines(run)
        if task.get("lastStatus") != "STOPPED":
            return False
        # awslogs delivers the last lines a moment after the container exits.
        for _ in range(3):
            if not self._print_new_lines(run):
                break
            self.sleep(min(self.poll, 1.0))
        container = next((c for c in task.get("containers", []) if c.get("name") == CONTAINER), {})
        run.exit_code = container.get("exitCode")
        run.stopped_reason = task.get("stoppedReason") or ""
        matches = (_PUBLISHED.match(line.strip()) for line in run.lines)
        versions = [m.group("version") for m in matches if m and m.group("name") == run.model]
        run.published = versions[-1] if versions else None
        return True

    def stop(self, run: TrainingRun, reason: str) -> None:
        """Stop the task (a timeout or Ctrl-C must not leave a training task running, and paying)."""
        with aws_errors(f"stop the training task {run.task_id}"):
            self.ecs.stop_task(cluster=self.cluster, task=run.task_arn, reason=reason[:255])

    def _describe(self, arn: str) -> dict:
        with aws_errors(f"describe the training task {arn}"):
            answer = self.ecs.describe_tasks(cluster=self.cluster, tasks=[arn])
        if not answer.get("tasks"):
            raise ResourceNotFound(f"training task {arn} not found in cluster {self.cluster}")
        return answer["tasks"][0]

    def _print_new_lines(self, run: TrainingRun) -> int:
        """Print the log lines that arrived since the last call; how many there were."""
        if not run.log_stream:
            return 0
        from botocore.exceptions import ClientError

        kwargs = {"logGroupName": run.log_group, "logStreamName": run.log_stream, "startFromHead": True}
        count = 0
        while True:
            if run.log_token:
                kwargs["nextToken"] = run.log_token
            try:
                with aws_errors(f"read the training log {run.log_group}"):
                    page = self.logs.get_log_events(**kwargs)
            except ResourceNotFound:
                return count  # the stream appears when the container first writes
            except ClientError:  # pragma: no cover - aws_errors converts every ClientError
                return count
            events = page.get("events", [])
            for event in events:
                line = event.get("message", "").rstrip("\n")
                run.lines.append(line)
                self.log(f"{run.label}  | {line}")
            count += len(events)
            token = page.get("nextForwardToken")
            if not events or token == run.log_token:
                run.log_token = token
                return count
            run.log_token = token
