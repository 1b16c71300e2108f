"""Errors of the deploy tooling. Each carries the exit code the scripts document (README: operations).

    0 ok · 1 unexpected error · 2 usage · 3 AWS unreachable, no credentials or access denied
    4 not found (cluster, service, repository, image tag, model version or alias)
    5 invalid input (task definition template, placeholder, image reference, option values)
    6 the deployment failed or was not verified; the previous (image, model) was restored
    7 the deployment failed AND the rollback failed: a person must act
    8 the container tool (podman/docker) failed: build, push or smoke test
"""

from __future__ import annotations


class DeployError(Exception):
    """Base class: the deploy could not be done; nothing the message does not mention was changed."""

    exit_code = 1


class AwsError(DeployError):
    """AWS could not be used: unreachable endpoint, missing credentials, access denied, throttled."""

    exit_code = 3


class ResourceNotFound(DeployError):
    """A cluster, service, repository, image tag, task definition or model version does not exist."""

    exit_code = 4


class InvalidInput(DeployError):
    """An option, template, placeholder or image reference is malformed."""

    exit_code = 5


class RolloutFailed(DeployError):
    """The new deployment failed, timed out or served the wrong version; it was rolled back."""

    exit_code = 6


class RollbackFailed(DeployError):
    """The new deployment failed and restoring the previous one failed too."""

    exit_code = 7


class ToolError(DeployError):
    """podman/docker is missing or one of its commands failed."""

    exit_code = 8
