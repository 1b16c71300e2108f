"""Test-only support code shared by the test modules: paths, tool checks, the CLI and a gunicorn.

Fixtures live in conftest.py; this module holds the plain functions and classes the tests call.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from standin.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Headless Chromium for the page and report tests: no sandbox (containers), nothing from the network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
__all__ = ["CHROMIUM_ARGS", "IN_CI", "PYTHON", "ROOT", "GunicornServer", "cli_fails", "cli_ok", "free_port",
           "require_tool", "run_cli", "write_churn_csv"]


def write_churn_csv(path: Path, rows: int = 400, seed: int = 1) -> Path:
    """A mixed-type table as a customer-churn export looks: a number, a category, a boolean and a
    short free-text note, with a label that depends on them (so a model can learn something)."""
    import csv

    import numpy as np

    rng = np.random.default_rng(seed)
    notes = ["happy customer", "billing complaint", "asked for a discount", "no contact since spring"]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["age", "plan", "active", "note", "churned"])
        for _ in range(rows):
            age, plan = int(rng.integers(18, 80)), str(rng.choice(["basic", "pro", "team"]))
            active = rng.random() < 0.6
            chance = 0.1 + 0.5 * (plan == "basic") + 0.3 * (not active)
            writer.writerow([age, plan, "true" if active else "false", str(rng.choice(notes)),
                             int(rng.random() < chance)])
    return path


def require_tool(name: str, reason: str = "") -> str:
    """Path of a system tool; skip the test without it, but fail in CI where it must exist."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed{': ' + reason if reason else ''} (make system-tools installs it)"
    if IN_CI:
        pytest.fail(f"CI must run this test: {message}")
    pytest.skip(message)


def run_cli(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run `python -m model ...` as a user would, capturing its output."""
    return subprocess.run(
        [PYTHON, "-m", "model", *args],
        capture_output=True,
        text=True,
        env=env or os.environ.copy(),
        cwd=cwd,
        timeout=300,
    )


def cli_ok(result: subprocess.CompletedProcess) -> str:
    """The stdout of a CLI run that must have succeeded (else fail with its stderr)."""
    assert result.returncode == 0, result.stderr
    return result.stdout


def cli_fails(result: subprocess.CompletedProcess, code: int, message: str) -> str:
    """Assert a CLI run failed as documented: exit `code`, one `error: ...` line containing `message`."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]
    return lines[0]


class GunicornServer:
    """A real `gunicorn --config service/gunicorn.conf.py service.wsgi:app` on 127.0.0.1."""

    def __init__(self, folder: Path, env: dict, workers: int = 2, wait_ready: bool = True):
        folder.mkdir(parents=True, exist_ok=True)
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.pidfile = folder / "gunicorn.pid"
        self.metrics_dir = folder / "metrics"
        self.log_path = folder / "gunicorn.log"
        # The server's own address and files win over `env`, which may be a copy of os.environ.
        self.env = {
            **os.environ,
            "WEB_CONCURRENCY": str(workers),
            # A cache of its own: the default one in the temp directory outlives test sessions, and a
            # store URI reused by a later session (a moto bucket name) would find its last good model.
            "MODEL_CACHE_DIR": str(folder / "cache"),
            **env,
            "PORT": str(self.port),
            "PIDFILE": str(self.pidfile),
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
        }
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", "--config", "service/gunicorn.conf.py", "service.wsgi:app"],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.wait_until("/ready" if wait_ready else "/health")

    def wait_until(self, path: str, timeout: float = 60) -> None:
        """Wait until GET path answers 200 (or fail with the server's log)."""
        import time

        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"gunicorn exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                if requests.get(self.url + path, timeout=2).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or listening while its workers still load
            time.sleep(0.1)
        pytest.fail(f"{self.url}{path} not 200 after {timeout} s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        """Everything the server wrote so far (JSON lines)."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM the master (graceful shutdown) and return its exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode
