"""Errors of the deploy tooling. Each carries its exit code from the one table (model/exit_codes.py)."""

from __future__ import annotations

from model.exit_codes import ExitCode


class DeployError(Exception):
    """Base class: the deploy could not be done; nothing the message does not mention was changed."""

    exit_code = ExitCode.UNEXPECTED


class AwsError(DeployError):
    """AWS or the store could not be used: unreachable endpoint, no credentials, access denied."""

    exit_code = ExitCode.UNREACHABLE


class ResourceNotFound(DeployError):
    """A cluster, service, repository, image tag, task definition or model version does not exist."""

    exit_code = ExitCode.NOT_FOUND


class InvalidInput(DeployError):
    """An option, template, placeholder or image reference is malformed."""

    exit_code = ExitCode.INVALID_INPUT


class NoServer(DeployError):
    """The local rollout found no running gunicorn master (pidfile missing, stale or unreadable)."""

    exit_code = ExitCode.NO_SERVER


class RolloutFailed(DeployError):
    """The new deployment failed, timed out, was interrupted or served the wrong version; rolled back."""

    exit_code = ExitCode.ROLLED_BACK


class RollbackFailed(DeployError):
    """The new deployment failed and restoring the previous one failed too."""

    exit_code = ExitCode.ROLLBACK_FAILED


class StackBusy(DeployError):
    """Another operation on the stack is in progress."""

    exit_code = ExitCode.STACK_BUSY


class StackFailed(DeployError):
    """The stack cannot be updated from its state, or a change set could not be made."""

    exit_code = ExitCode.STACK_FAILED


class NoChanges(DeployError):
    """The change set is empty: the stack already matches the template and parameters."""

    exit_code = ExitCode.NO_CHANGES


class Refused(DeployError):
    """A destructive step was refused: it would lose data unless forced."""

    exit_code = ExitCode.GATE_REFUSED


class TaskFailed(DeployError):
    """A training task stopped without its container finishing (not pulled, stopped, timed out)."""

    exit_code = ExitCode.TASK_FAILED


class ToolError(DeployError):
    """podman/docker (or another system tool) is missing or one of its commands failed."""

    exit_code = ExitCode.TOOL_FAILED


def from_model_error(exc) -> DeployError:
    """A model-package error as a DeployError with the same exit code and message."""
    error = DeployError(str(exc))
    error.exit_code = exc.exit_code
    return error


def run_command(action) -> int:
    """Run a command's body at the edge: its errors become one `error: ...` line and their exit code.

    `action()` returns None (or 0) on success. DeployError and the model package's errors keep their
    codes; Ctrl-C before anything changed is 130. Anything else is a bug and keeps its traceback.
    """
    import sys

    from model.errors import ModelError

    try:
        return int(action() or ExitCode.OK)
    except (DeployError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
