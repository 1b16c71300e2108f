"""One rollout, two targets: plan, then change things in a fixed order with one way back.

    plan (reads only) -> [move alias] -> apply -> wait -> verify -> [set an unset alias]

A target (the ECS service, a gunicorn master on this machine) knows how to apply a planned change,
wait for it, verify it through the service's own URL, and restore what it applied. This module owns
the order and the compensation: **any** exception after the first change (a botocore error, a reset
connection, a garbage HTTP answer, a bug) and SIGTERM/SIGINT (a Jenkins abort, Ctrl-C) run the same
rollback, which restores only what this run changed and only if nobody changed it since:

- the alias is moved back with a conditional write on the record this run wrote, so a promotion
  made meanwhile by somebody else is kept (and reported);
- the target restores its own change (the ECS target only if the service still runs this run's
  revision; the local target reloads only if the alias is back where it was).

The result is RolloutFailed (exit 12: everything restored) or RollbackFailed (exit 13: the message
lists what is left to undo by hand). An error before the first change leaves everything as it was
and keeps its own exit code.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from deploy.errors import DeployError, RollbackFailed, RolloutFailed, from_model_error
from model.errors import ConflictError, ModelError


class Terminated(Exception):
    """SIGTERM arrived (Jenkins aborts a build with it); raised where the rollout was."""


@dataclass(frozen=True)
class AliasMove:
    """Move `alias` of `model` from the record read at plan time (`before`, None: unset) to `to`."""

    model: str
    alias: str
    before: object  # model.store.Alias | None
    to: str

    @property
    def describe(self) -> str:
        return f"alias:   {self.alias} {self.before.version if self.before else 'unset'} -> {self.to}"


class Target(Protocol):
    """What a rollout acts on. Each method raises on failure; `restore` undoes `apply` if still ours."""

    # True if the target reads the alias when it applies (a gunicorn reload); False if the planned
    # change pins its version (an ECS revision with MODEL_VERSION).
    follows_alias: bool
    # Set by `apply` as soon as it has changed anything (a registered revision, a signal sent).
    touched: bool

    def describe(self) -> list[str]: ...

    def apply(self) -> None: ...

    def wait(self) -> None: ...

    def verify(self) -> None: ...

    def restore(self) -> list[str]:
        """Undo what `apply` did, if it did anything and nobody changed it since; problems left."""
        ...


class Rollout:
    """Runs a target's change with an optional alias move; see the module docstring."""

    def __init__(self, target: Target, *, store=None, alias_move: AliasMove | None = None,
                 log: Callable[[str], None] = print):
        if alias_move and store is None:
            raise ValueError("an alias move needs the store")
        self.target, self.store, self.move, self.log = target, store, alias_move, log

    def describe(self) -> list[str]:
        """The plan, as progress lines."""
        return [*self.target.describe(), *([self.move.describe] if self.move else [])]

    def execute(self) -> None:
        """Carry the plan out; RolloutFailed / RollbackFailed if it did not complete."""
        # A target that pins the version sets an unset alias last, once verified: the store has no
        # "unset" to go back to. A target that reads the alias needs it first (refused at plan time).
        set_last = self.move is not None and self.move.before is None and not self.target.follows_alias
        moved = None
        with signals_raise():
            try:
                if self.move and not set_last:
                    moved = self._move_alias(self.move.before)
                elif set_last:
                    self.log(f"alias: {self.move.alias} is unset; it is set once the rollout is verified")
                self.target.apply()
                self.target.wait()
                self.target.verify()
                if set_last:
                    self._move_alias(None)
            except (Exception, KeyboardInterrupt) as exc:
                reason = _reason(exc)
                if moved is None and not self.target.touched:
                    raise _as_deploy_error(exc) from None
                self.log(f"rollout failed: {reason}")
                with _signals_deferred(self.log):
                    problems = self._compensate(moved)
                if problems:
                    raise RollbackFailed(
                        f"{reason}; ROLLBACK FAILED, undo by hand: {'; '.join(problems)}") from None
                raise RolloutFailed(f"rolled back: {reason}") from None

    def _move_alias(self, expected) -> object:
        try:
            moved = self.store.move_alias(self.move.model, self.move.alias, self.move.to, expected=expected)
        except ModelError as exc:
            raise from_model_error(exc) from None
        self.log(f"alias: {self.move.alias} -> {moved.version} (was {moved.previous or 'unset'})")
        return moved

    def _compensate(self, moved) -> list[str]:
        """Restore the alias (if this run moved it), then the target; return what could not be."""
        problems: list[str] = []
        alias_back = True
        if moved is not None:
            alias_back, problem = self._alias_back(moved)
            problems += [problem] if problem else []
        if self.target.follows_alias and not alias_back:
            # Reloading would load whatever the alias names now: not this run's to decide.
            problems.append(f"the server was not reloaded and still serves {self.move.to}")
        else:
            try:
                problems += self.target.restore()
            except Exception as exc:  # the rollback must report, never die half-way
                problems.append(f"restoring the target failed: {_reason(exc)}")
        if not problems:
            self.log("rollback: done")
        return problems

    def _alias_back(self, moved) -> tuple[bool, str | None]:
        """Move the alias back if it is still where this run put it: (moved back, problem)."""
        move = self.move
        try:
            back = self.store.move_alias(move.model, move.alias, move.before.version, expected=moved)
        except ConflictError:
            # Somebody promoted meanwhile: their move stands, and there is nothing of ours to undo.
            try:
                now = self.store.alias(move.model, move.alias)
                where = now.version if now else "unset"
            except Exception:
                where = "unreadable"
            self.log(f"rollback: alias {move.alias} was moved by someone else since (now {where}); "
                     f"left as it is")
            return False, None
        except Exception as exc:
            return False, f"alias {move.alias} not moved back to {move.before.version}: {_reason(exc)}"
        self.log(f"rollback: alias {move.alias} -> {back.version}")
        return True, None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (SIGINT)"
    if isinstance(exc, Terminated):
        return "interrupted (SIGTERM)"
    if isinstance(exc, DeployError | ModelError):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _as_deploy_error(exc: BaseException) -> BaseException:
    """An error raised before anything changed, with its own exit code."""
    if isinstance(exc, ModelError):
        return from_model_error(exc)
    if isinstance(exc, Terminated):
        return KeyboardInterrupt()
    return exc


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM raises Terminated where the rollout is (SIGINT already raises KeyboardInterrupt)."""
    if not _on_main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_deferred(log: Callable[[str], None]) -> Iterator[None]:
    """While rolling back, SIGTERM and SIGINT are noted, not obeyed: a half rollback is the worst end."""
    if not _on_main_thread():
        yield
        return

    def handler(signum, frame):
        log(f"rollback: {signal.Signals(signum).name} received; finishing the rollback first")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
