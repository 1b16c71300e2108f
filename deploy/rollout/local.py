"""The local target: a gunicorn master on this machine, reloaded with SIGHUP.

gunicorn starts fresh workers on SIGHUP, which load the alias's current target, while the old workers
finish their in-flight requests. Under the rollout core (deploy/rollout/core.py):

    plan    the server is running (pidfile); the target version is downloaded, hash-checked and loaded
            once, and gated like `python -m model promote`; the alias must be set already
    [move]  the alias moves to the version (conditional on the record read at plan time)
    apply   SIGHUP to the master
    verify  GET /model names the version in every answer for `settle` seconds (at least 10 answers)
    restore once the alias is back where it was: SIGHUP again, and wait for the old version
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deploy.errors import NoServer, ResourceNotFound
from deploy.rollout.core import AliasMove
from deploy.verify import verify_version

# Answers in a row that must name the new version (and span `settle` seconds): gunicorn's old workers
# keep answering for a moment after SIGHUP, and each answer comes from whichever worker accepts.
MIN_ANSWERS = 10


def read_master_pid(pidfile: Path) -> int:
    """The gunicorn master's pid from its pidfile, checked to be a running process; NoServer if not."""
    try:
        text = Path(pidfile).read_text().strip()
    except OSError as exc:
        raise NoServer(f"cannot read pidfile {pidfile}: {exc.strerror}; is the service running "
                       "(gunicorn --pid PATH, or PIDFILE=PATH)?") from None
    if not text.isdigit() or int(text) <= 1:
        raise NoServer(f"pidfile {pidfile} does not hold a process id ({text[:20]!r})")
    pid = int(text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise NoServer(f"no process {pid} (from {pidfile}): the service is not running") from None
    except PermissionError:
        raise NoServer(f"not allowed to signal process {pid} (from {pidfile})") from None
    return pid


@dataclass
class LocalRequest:
    """What to roll out to which server."""

    pidfile: Path
    store: str
    name: str
    alias: str
    url: str = "http://127.0.0.1:8080"
    version: str | None = None  # promote this version first
    rollback: bool = False  # move the alias back to its previous version first
    gate: dict = field(default_factory=dict)  # check_promotion's options (metric, tolerance, force)
    verify_key: str | None = None  # refuse a version not signed by this key (model.signing)
    timeout: float = 60.0
    settle: float = 2.0
    interval: float = 0.05


@dataclass
class LocalTarget:
    """A planned reload of one gunicorn master (see the module docstring)."""

    request: LocalRequest
    expected: str  # the version the server must serve after the reload
    previous: str | None  # the version it served before (what a rollback reloads to)
    log: Callable[[str], None] = print
    follows_alias: bool = True
    touched: bool = False

    def describe(self) -> list[str]:
        return [f"server:  gunicorn master {read_master_pid(self.request.pidfile)} on {self.request.url}, "
                f"{self.request.name} {self.previous or '(none)'} -> {self.expected}"]

    def apply(self) -> None:
        self._reload()

    def wait(self) -> None:
        """Nothing to wait for: the reload is immediate, and `verify` polls until it shows."""

    def verify(self) -> None:
        self._verify(self.expected)

    def restore(self) -> list[str]:
        if not self.touched or not self.previous or self.previous == self.expected:
            return []
        self.log(f"rollback: reloading {self.request.url} to serve {self.previous} again")
        self._reload()
        self._verify(self.previous)
        return []

    def _reload(self) -> None:
        pid = read_master_pid(self.request.pidfile)
        os.kill(pid, signal.SIGHUP)
        self.touched = True
        self.log(f"sent SIGHUP to gunicorn master {pid}")

    def _verify(self, version: str) -> None:
        req = self.request
        verify_version(req.url, version, consecutive=MIN_ANSWERS, settle=req.settle, timeout=req.timeout,
                       interval=req.interval, log=self.log)


def plan_local(req: LocalRequest, store, *, log: Callable[[str], None] = print
               ) -> tuple[LocalTarget, AliasMove | None]:
    """Check the server and the version, gate a promotion; raise before anything changes."""
    from model.gate import check_promotion
    from model.loader import load_model

    read_master_pid(req.pidfile)  # refuse early, before reading the store
    before = store.alias(req.name, req.alias)
    if before is None:
        raise ResourceNotFound(
            f"alias {req.alias!r} of {req.name} is not set, and the server loads it on reload: set it "
            f"first (python -m model promote VERSION --alias {req.alias})")
    if req.rollback:
        if not before.previous:
            raise ResourceNotFound(f"alias {req.alias!r} of {req.name} has no previous version")
        target = before.previous
    else:
        target = req.version or before.version
    if target == before.version:
        log(f"{req.alias} already points at {target}; reloading only")
        return LocalTarget(req, target, before.version, log=log), None
    from model.signing import verifier

    log(f"checking {req.name} {target} (download, sha256, load)")
    load_model(store, req.name, version=target, verifier=verifier(req.verify_key))
    if not req.rollback:
        result = check_promotion(store, req.name, target, alias=req.alias, **req.gate)
        if result is not None:
            log(result.describe())
    return LocalTarget(req, target, before.version, log=log), AliasMove(req.name, req.alias, before, target)
