"""A stand-in for Fargate's one-off tasks: run what RunTask recorded in moto, as ECS would.

moto's RunTask records a task and runs nothing, so a training run would never start. This runner
watches the cluster (through the ECS API) for tasks of one task-definition family, and runs each new
one: its container's command and environment from the task definition with RunTask's overrides
applied, either under podman (the task's image) or, without an image, from this checkout. Its output
goes to the task's awslogs stream in moto's CloudWatch Logs, line by line, as the awslogs driver
sends it; when it exits, moto's task record is marked STOPPED with the container's exit code. A task
stopped through the API (StopTask) is stopped here too (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from standin.aws import write_moto_task_stopped

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class OneOffTask:
    """What a recorded task runs: its container's command, environment, image and log stream."""

    arn: str
    image: str
    command: list[str]
    environment: dict[str, str]
    log_group: str
    log_stream: str

    @classmethod
    def from_records(cls, task: dict, definition: dict) -> OneOffTask:
        """Merge the task definition's container with the task's overrides, as ECS does."""
        container = definition["containerDefinitions"][0]
        override = next((o for o in task.get("overrides", {}).get("containerOverrides", [])
                         if o.get("name") == container["name"]), {})
        environment = {e["name"]: e.get("value", "") for e in container.get("environment", [])}
        environment.update({e["name"]: e.get("value", "") for e in override.get("environment", [])})
        options = (container.get("logConfiguration") or {}).get("options") or {}
        task_id = task["taskArn"].rsplit("/", 1)[-1]
        prefix = options.get("awslogs-stream-prefix", "")
        return cls(arn=task["taskArn"], image=container.get("image", ""),
                   command=list(override.get("command") or container.get("command") or []),
                   environment=environment, log_group=options.get("awslogs-group", ""),
                   log_stream=f"{prefix}/{container['name']}/{task_id}" if prefix else "")


class CheckoutLauncher:
    """Runs a task's command from this checkout (`python` is this interpreter), for runs without an image."""

    kind = "checkout"

    def __init__(self, cwd: Path = ROOT, python: str = sys.executable):
        self.cwd, self.python = cwd, python

    def start(self, task: OneOffTask, extra_env: dict[str, str]) -> subprocess.Popen:
        command = list(task.command)
        if command[:1] == ["python"]:
            command[0] = self.python
        return subprocess.Popen(command, cwd=self.cwd, env={**os.environ, **task.environment, **extra_env},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)


class PodmanTaskLauncher:
    """Runs a task's image under podman on the host network (the emulator listens on 127.0.0.1)."""

    kind = "podman"

    def __init__(self, podman: str = "podman", resolve_image=None):
        self.podman = podman
        self.resolve_image = resolve_image or (lambda image: image)

    def start(self, task: OneOffTask, extra_env: dict[str, str]) -> subprocess.Popen:
        env_args = []
        for key, value in {**task.environment, **extra_env}.items():
            env_args += ["--env", f"{key}={value}"]
        name = f"local-train-{task.arn.rsplit('/', 1)[-1][:12]}"
        return subprocess.Popen(
            [self.podman, "run", "--rm", "--name", name, "--network", "host", "--pull", "never", *env_args,
             self.resolve_image(task.image), *task.command],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )


@dataclass
class LocalTaskRunner:
    """Runs the tasks RunTask records for `family` in `cluster` (a context manager, or start/stop)."""

    ecs: object
    logs: object
    cluster: str
    family: str
    region: str
    launcher: object
    extra_env: dict[str, str] = field(default_factory=dict)
    poll_interval: float = 0.3
    events: list[str] = field(default_factory=list)
    _seen: set = field(default_factory=set)
    _running: dict = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> LocalTaskRunner:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> LocalTaskRunner:
        self._thread = threading.Thread(target=self._watch, name="local-task-runner", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching; tasks still running are stopped."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        for process in list(self._running.values()):
            _terminate(process)

    def sync(self) -> None:
        """Start the recorded tasks not yet started; stop the ones StopTask stopped."""
        arns = self.ecs.list_tasks(cluster=self.cluster, family=self.family)["taskArns"]
        if not arns:
            return
        for task in self.ecs.describe_tasks(cluster=self.cluster, tasks=arns[:100])["tasks"]:
            arn = task["taskArn"]
            if arn in self._running and task.get("desiredStatus") == "STOPPED":
                self._log(f"task {_short(arn)} was stopped through the API: stopping it")
                _terminate(self._running[arn])
            if arn in self._seen or task.get("desiredStatus") != "RUNNING":
                continue
            self._seen.add(arn)
            definition = self.ecs.describe_task_definition(
                taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
            threading.Thread(target=self._run, args=(OneOffTask.from_records(task, definition),),
                             name=f"task-{_short(arn)}", daemon=True).start()

    def _run(self, task: OneOffTask) -> None:
        try:
            process = self.launcher.start(task, self.extra_env)
        except (OSError, subprocess.SubprocessError) as exc:
            self._log(f"task {_short(task.arn)} could not start: {exc}")
            write_moto_task_stopped(self.cluster, task.arn, self.region, exit_code=None,
                                    reason=f"CannotStartContainerError: {exc}")
            return
        self._running[task.arn] = process
        self._log(f"started task {_short(task.arn)} ({self.launcher.kind}): {' '.join(task.command)}")
        stream = _LogStream(self.logs, task.log_group, task.log_stream)
        for line in process.stdout:
            stream.put(line.rstrip("\n"))
        code = process.wait()
        stream.flush()
        self._running.pop(task.arn, None)
        self._log(f"task {_short(task.arn)} exited {code}")
        write_moto_task_stopped(self.cluster, task.arn, self.region, exit_code=code,
                                reason="Essential container in task exited")

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as exc:  # the runner reports and keeps watching, as ECS would
                self._log(f"error: {type(exc).__name__}: {exc}")
            self._stop.wait(self.poll_interval)

    def _log(self, message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} local-task-runner: {message}"
        self.events.append(line)
        print(line, file=sys.stderr, flush=True)


class _LogStream:
    """One awslogs stream: created on the first line, each line an event (the driver's behaviour)."""

    def __init__(self, logs, group: str, stream: str):
        self.logs, self.group, self.stream = logs, group, stream
        self._created = False
        self._pending: list[dict] = []
        self._last = 0.0

    def put(self, line: str) -> None:
        if not self.stream:
            return
        self._pending.append({"timestamp": int(time.time() * 1000), "message": line})
        if time.monotonic() - self._last > 0.2:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        if not self._created:
            with contextlib.suppress(self.logs.exceptions.ResourceAlreadyExistsException):
                self.logs.create_log_stream(logGroupName=self.group, logStreamName=self.stream)
            self._created = True
        self.logs.put_log_events(logGroupName=self.group, logStreamName=self.stream, logEvents=self._pending)
        self._pending, self._last = [], time.monotonic()


def _terminate(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1][:8]
