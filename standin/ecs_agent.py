"""A stand-in for ECS's task runner on a laptop: run whatever task definition an ECS service points at.

Moto emulates ECS's API but runs no containers, so a rollout verified against `/model` would verify
nothing. This agent watches one service (through the ECS API, like ECS's own scheduler) and whenever
its task definition changes, stops the running task and starts the new one on a fixed 127.0.0.1 port:
either the container image under podman, or — when no image was built — gunicorn from this checkout
with the container's environment from the task definition (so MODEL_VERSION pinned by a rollout is
exactly what gets served). A task that exits is restarted, as an ECS service would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from deploy.task_def import environment, service_container

ROOT = Path(__file__).resolve().parent.parent
# A task that keeps exiting is restarted no more often than this (seconds), like ECS's back-off.
RESTART_DELAY = 5.0


@dataclass(frozen=True)
class Task:
    """What the agent runs: one revision's image and container environment."""

    task_definition: str
    image: str
    environment: dict[str, str]

    @classmethod
    def from_definition(cls, definition: dict) -> Task:
        """The task of a describe_task_definition answer (its `taskDefinition` object)."""
        return cls(
            task_definition=definition["taskDefinitionArn"],
            image=service_container(definition).get("image", ""),
            environment=environment(definition),
        )


def local_environment(task: Task, port: int, extra: dict[str, str]) -> dict[str, str]:
    """The container environment, bound to 127.0.0.1:port and pointed at the local AWS emulator."""
    env = dict(task.environment)
    # The task definition binds 0.0.0.0:8080 inside its own network namespace; here it shares the host's.
    env.update({"PORT": str(port), "BIND": f"127.0.0.1:{port}"})
    env.update(extra)
    return env


class GunicornLauncher:
    """Runs the service from this checkout under gunicorn, as the image's CMD does."""

    kind = "gunicorn"

    def __init__(self, log_dir: Path, python: str = sys.executable, cwd: Path = ROOT):
        self.log_dir = Path(log_dir)
        self.python = python
        self.cwd = cwd

    def start(self, task: Task, port: int, extra_env: dict[str, str]) -> subprocess.Popen:
        """Start the task; returns the process."""
        env = {**os.environ, **local_environment(task, port, extra_env)}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        revision = task.task_definition.rsplit(":", 1)[-1]
        with open(self.log_dir / f"task-{revision}.log", "ab") as log:
            return subprocess.Popen(
                [self.python, "-m", "gunicorn", "--config", "service/gunicorn.conf.py", "service.wsgi:app"],
                cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def stop(self, process: subprocess.Popen) -> None:
        """SIGTERM (gunicorn drains), then SIGKILL after the graceful timeout, as ECS does."""
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    @staticmethod
    def exited(process: subprocess.Popen) -> bool:
        return process.poll() is not None


class PodmanLauncher:
    """Runs the task's image under podman, on the host network; `podman run` itself never pulls.

    `resolve_image` maps the task definition's registry reference (an ECR URI, maybe by digest) to a
    local image reference, pulling it first if it must (pipeline-local pulls from its local registry,
    as ECS pulls from ECR); by default the reference is used as is.
    """

    kind = "podman"

    def __init__(self, log_dir: Path, podman: str = "podman", resolve_image=None):
        self.log_dir = Path(log_dir)
        self.podman = podman
        self.resolve_image = resolve_image or (lambda image: image)
        self._count = 0

    def start(self, task: Task, port: int, extra_env: dict[str, str]) -> str:
        """Start the task's container; returns the container name."""
        self._count += 1
        name = f"local-ecs-task-{os.getpid()}-{self._count}"
        env_args = []
        for key, value in local_environment(task, port, extra_env).items():
            env_args += ["--env", f"{key}={value}"]
        subprocess.run(
            [self.podman, "run", "--detach", "--name", name, "--network", "host", "--pull", "never",
             *env_args, self.resolve_image(task.image)],
            check=True, capture_output=True, text=True, timeout=120,
        )
        return name

    def stop(self, name: str) -> None:
        """Stop (SIGTERM, then SIGKILL after 25 s) and remove the container, keeping its log."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{name}.log", "wb") as log:
            subprocess.run([self.podman, "logs", name], stdout=log, stderr=subprocess.STDOUT, timeout=60)
        subprocess.run([self.podman, "rm", "--force", "--time", "25", name], capture_output=True, timeout=60)

    def exited(self, name: str) -> bool:
        answer = subprocess.run(
            [self.podman, "inspect", "--format", "{{.State.Running}}", name],
            capture_output=True, text=True, timeout=30,
        )
        return answer.returncode != 0 or answer.stdout.strip() != "true"


@dataclass
class LocalEcsAgent:
    """Keeps the service's current task definition running locally on 127.0.0.1:port.

    `ecs` is a boto3 ECS client (for the local emulator); `extra_env` is added to every task's
    environment (the emulator's endpoint and credentials, a cache folder).
    """

    ecs: object
    cluster: str
    service: str
    port: int
    launcher: object
    extra_env: dict[str, str] = field(default_factory=dict)
    poll_interval: float = 0.5
    events: list[str] = field(default_factory=list)
    _task: Task | None = None
    _handle: object = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _started_at: float = 0.0
    _last_error: str = ""
    _healthy: bool = False
    # Told what ECS would record about the deployment: started(arn), healthy(arn), failed(arn).
    reporter: object = None

    @property
    def url(self) -> str:
        """Where the running task answers (the SERVICE_URL of a local rollout)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> str | None:
        """The ARN of the task definition being run, if any."""
        return self._task.task_definition if self._task else None

    def start(self) -> LocalEcsAgent:
        """Start watching in a background thread."""
        self._thread = threading.Thread(target=self._watch, name="local-ecs-agent", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching and stop the running task."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=60)
        with self._lock:
            self._stop_task()

    def sync(self) -> None:
        """One reconciliation: start the service's task definition if it is not the one running."""
        services = self.ecs.describe_services(cluster=self.cluster, services=[self.service])["services"]
        if not services or services[0].get("status") != "ACTIVE":
            return
        wanted = services[0]["taskDefinition"]
        with self._lock:
            if self._task and self._task.task_definition == wanted and not self.launcher.exited(self._handle):
                if not self._healthy and self._answers_health():
                    self._healthy = True
                    self._report("healthy", wanted)
                    self._log(f"{_revision(wanted)} is healthy")
                return
            if self._task and self._task.task_definition == wanted:
                if time.monotonic() - self._started_at < RESTART_DELAY:
                    return
                self._report("failed", wanted)
                self._log(f"task {_revision(wanted)} exited; restarting it")
            definition = self.ecs.describe_task_definition(taskDefinition=wanted)["taskDefinition"]
            task = Task.from_definition(definition)
            self._stop_task()
            self._handle = self.launcher.start(task, self.port, self.extra_env)
            self._task, self._started_at, self._healthy = task, time.monotonic(), False
            self._report("started", wanted)
            version = task.environment.get("MODEL_VERSION") or f"alias:{task.environment.get('MODEL_ALIAS')}"
            self._log(f"started {_revision(wanted)} ({self.launcher.kind}, model {version}) on {self.url}")

    def _answers_health(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def _report(self, event: str, arn: str) -> None:
        if self.reporter is not None:
            getattr(self.reporter, event)(arn)

    def _stop_task(self) -> None:
        if self._handle is not None:
            self.launcher.stop(self._handle)
            self._log(f"stopped {_revision(self._task.task_definition)}")
        self._handle, self._task = None, None

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
                self._last_error = ""
            except Exception as exc:  # the agent reports and keeps watching, as ECS would
                error = f"error: {type(exc).__name__}: {exc}"
                if error != self._last_error:
                    self._log(error)
                self._last_error = error
            self._stop.wait(self.poll_interval)

    def _log(self, message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} local-ecs-agent: {message}"
        self.events.append(line)
        print(line, file=sys.stderr, flush=True)


def _revision(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]

