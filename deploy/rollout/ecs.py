"""The ECS target: roll the (image digest, model version) unit out to a service as a new revision.

`plan_ecs()` only reads (cluster, service, running revision, ECR, model store, quality gate) and
builds the new revision; `EcsTarget` then, under the rollout core (deploy/rollout/core.py):

    apply   register the revision (image@digest + MODEL_VERSION), update-service --force-new-deployment
    wait    rolloutState COMPLETED, one deployment, running == desired; fail fast on FAILED, the
            circuit breaker, failed tasks, or the timeout
    verify  GET /model through the service URL answers the new version several times in a row
    restore if the service still runs this run's revision: back to the previous one (image and model
            together), wait for it, deregister the new revision

An alias that was never set has no previous target to move back to, and the store has no "unset":
so --promote of an unset alias sets it last, after verify, and a failed rollout leaves it unset.
(--follow-alias tasks read the alias at start-up, so there it must exist first: that is refused.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deploy.ecr import EcrClient, resolve_image
from deploy.ecs import EcsClient, EcsService
from deploy.errors import DeployError, InvalidInput, ResourceNotFound, from_model_error
from deploy.rollout.core import AliasMove
from deploy.task_def import derive, is_digest_ref, pinned_unit, render_file
from deploy.verify import verify_version
from model.errors import ModelError
from model.store import DEFAULT_ALIAS, DEFAULT_NAME


class DeploymentFailed(DeployError):
    """ECS reports the new deployment failed (circuit breaker, failed tasks) or it timed out."""


@dataclass
class EcsRequest:
    """What to roll out where. At most one model selector (none: keep the running model)."""

    cluster: str
    service: str
    model_name: str = DEFAULT_NAME
    model_version: str | None = None  # pin this version
    model_alias: str | None = None  # resolve this alias to a version and pin it
    promote: str | None = None  # move `alias` to this version (gated), then pin it
    alias: str = DEFAULT_ALIAS  # the alias --promote moves
    gate: dict = field(default_factory=dict)  # check_promotion's options (metric, tolerance, force)
    verify_key: str | None = None  # refuse a version not signed by this key (model.signing)
    follow_alias: bool = False  # no MODEL_VERSION: tasks resolve MODEL_ALIAS at start-up
    image: str | None = None  # repo:tag, looked up in ECR
    image_digest: str | None = None  # repo@sha256:..., used as is
    template: Path | None = None  # render this template instead of deriving from the live revision
    template_values: dict = field(default_factory=dict)
    service_url: str | None = None
    timeout: float = 600.0
    rollback_timeout: float = 300.0
    poll: float = 10.0
    verify_consecutive: int = 3
    verify_timeout: float = 120.0


@dataclass
class EcsTarget:
    """A planned ECS rollout (see the module docstring); `touched` once a revision is registered."""

    ecs: EcsClient
    request: EcsRequest
    current_arn: str
    current_image: str
    current_model: str | None
    new_definition: dict
    image: str
    model_version: str | None
    log: Callable[[str], None] = print
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    verifier: Callable[..., None] = verify_version
    follows_alias: bool = False
    touched: bool = False
    new_arn: str | None = None

    def describe(self) -> list[str]:
        return [
            f"current: {self.current_arn} image {self.current_image} model {self.current_model or '(alias)'}",
            f"new:     family {self.new_definition['family']} image {self.image} "
            f"model {self.model_version or '(follows alias at start-up)'}",
        ]

    def apply(self) -> None:
        req = self.request
        registered = self.ecs.register_task_definition(self.new_definition)
        self.new_arn, self.touched = registered["taskDefinitionArn"], True
        self.log(f"registered {self.new_arn}")
        self.ecs.update_service(req.cluster, req.service, self.new_arn)
        self.log(f"updated service {req.service}: new deployment of {_short(self.new_arn)}")

    def wait(self) -> None:
        self._wait_for(self.new_arn, timeout=self.request.timeout)

    def verify(self) -> None:
        if self.request.service_url and self.model_version:
            self.verifier(self.request.service_url, self.model_version,
                          consecutive=self.request.verify_consecutive, timeout=self.request.verify_timeout,
                          log=self.log, clock=self.clock, sleep=self.sleep)

    def restore(self) -> list[str]:
        if self.new_arn is None:
            return []
        req = self.request
        try:
            running = self.ecs.describe_service(req.cluster, req.service).task_definition
        except Exception as exc:
            return [f"service {req.service} not restored to {self.current_arn}: cannot read it: {exc}"]
        problems = []
        if running == self.new_arn:
            try:
                self.log(f"rollback: service {req.service} -> {self.current_arn}")
                self.ecs.update_service(req.cluster, req.service, self.current_arn)
                if req.rollback_timeout > 0:
                    self._wait_for(self.current_arn, timeout=req.rollback_timeout)
            except Exception as exc:
                return [f"service {req.service} not restored to {self.current_arn}: {exc}"]
        elif running != self.current_arn:
            problems.append(f"service {req.service} was switched to {running} by someone else: left as it "
                            f"is (this run's revision was {self.new_arn}, the previous {self.current_arn})")
        try:
            self.ecs.deregister_task_definition(self.new_arn)
            self.log(f"rollback: deregistered {self.new_arn}")
        except Exception as exc:  # an unused ACTIVE revision is untidy, not harmful
            self.log(f"rollback: could not deregister {self.new_arn}: {exc}")
        return problems

    def _wait_for(self, task_definition: str, *, timeout: float) -> EcsService:
        """Poll until the deployment of `task_definition` completes; DeploymentFailed otherwise."""
        req = self.request
        deadline = self.clock() + timeout
        last = None
        while True:
            service = self.ecs.describe_service(req.cluster, req.service)
            if service.is_complete(task_definition):
                self.log(f"deployment complete: {service.running_count}/{service.desired_count} running")
                return service
            reason = self._failure(service, task_definition)
            if reason:
                raise DeploymentFailed(reason)
            deployment = service.deployment_for(task_definition)
            state = (
                f"{deployment.rollout_state or deployment.status}: {deployment.running_count}/"
                f"{deployment.desired_count} new tasks running, {len(service.deployments)} deployments"
                if deployment else "waiting for the new deployment to appear"
            )
            if state != last:
                self.log(f"waiting: {state}")
                last = state
            if self.clock() >= deadline:
                raise DeploymentFailed(f"timed out after {timeout:g}s ({state})")
            self.sleep(req.poll)

    def _failure(self, service: EcsService, task_definition: str) -> str | None:
        req = self.request
        if service.task_definition != task_definition:
            return f"the service was switched to {service.task_definition} (ECS rollback or another deploy)"
        if service.deployment_for(task_definition) is not None:
            reason = service.failure(task_definition)
            if reason:
                return reason
        for task in self.ecs.stopped_tasks(req.cluster, req.service):
            if task.get("taskDefinitionArn") == task_definition and task.get("stopCode") in (
                "TaskFailedToStart", "EssentialContainerExited"
            ):
                return f"a new task stopped: {task.get('stoppedReason') or task.get('stopCode')}"
        return None


def plan_ecs(req: EcsRequest, ecs: EcsClient, ecr: EcrClient | None = None, store=None, *,
             log: Callable[[str], None] = print, **target_options) -> tuple[EcsTarget, AliasMove | None]:
    """Resolve image and model, gate a promotion, build the new revision; raise before any change."""
    selectors = [s for s in (req.model_version, req.model_alias, req.promote) if s]
    if len(selectors) > 1:
        raise InvalidInput("give at most one of --model-version, --model-alias, --promote")
    if req.image and req.image_digest:
        raise InvalidInput("give --image or --image-digest, not both")
    if req.follow_alias and selectors and not req.promote:
        raise InvalidInput("--follow-alias cannot be combined with a pinned model version")
    ecs.describe_cluster(req.cluster)
    service = ecs.describe_service(req.cluster, req.service)
    current = ecs.describe_task_definition(service.task_definition)
    current_image, current_model = pinned_unit(current)

    image = _image(req, ecr, current_image, log)
    try:
        model_version, move = _model(req, store, current_model, log)
    except ModelError as exc:
        raise from_model_error(exc) from None
    if req.template:
        values = {**req.template_values, "IMAGE": image, "MODEL_VERSION": model_version or ""}
        values.setdefault("MODEL_NAME", req.model_name)
        values.setdefault("MODEL_ALIAS", req.alias)
        new_definition = render_file(req.template, values)
    else:
        new_definition = derive(current, image=image, model_version=model_version)
    if not model_version:
        new_definition = derive(new_definition, model_version=None)
    target = EcsTarget(ecs, req, service.task_definition, current_image, current_model, new_definition,
                       image, model_version, log=log, **target_options)
    return target, move


def _image(req: EcsRequest, ecr: EcrClient | None, current_image: str, log) -> str:
    if req.image_digest:
        if not is_digest_ref(req.image_digest):
            raise InvalidInput(f"--image-digest {req.image_digest!r} is not repo@sha256:<64 hex>")
        return req.image_digest
    if req.image:
        if ecr is None:
            raise InvalidInput("--image needs ECR to resolve the tag to a digest")
        image = resolve_image(ecr, req.image)
        log(f"image: {req.image} is {image}")
        return image
    return current_image  # a model-only rollout keeps the running image


def _model(req: EcsRequest, store, current_model: str | None, log):
    if not (req.model_version or req.model_alias or req.promote):
        return (None if req.follow_alias else current_model), None
    if store is None:
        raise InvalidInput("a model option needs --store / MODEL_STORE")
    version = _checked_version(req, store)
    if req.promote:
        from model.gate import check_promotion

        before = store.alias(req.model_name, req.alias)
        if before is None and req.follow_alias:
            raise ResourceNotFound(
                f"alias {req.alias!r} of {req.model_name} is not set, and --follow-alias tasks "
                f"would read it before the rollout is verified; set it first: "
                f"python -m model promote {version} --alias {req.alias}")
        result = check_promotion(store, req.model_name, version, alias=req.alias, **req.gate)
        if result is not None:
            log(result.describe())
        move = None if before and before.version == version else AliasMove(req.model_name, req.alias,
                                                                            before, version)
        return (None if req.follow_alias else version), move
    if req.model_alias:
        log(f"model: alias {req.model_alias} of {req.model_name} is {version}")
    return version, None


def _checked_version(req: EcsRequest, store) -> str:
    """The version the request names, its signature checked when a verification key is configured."""
    from model.signing import verifier

    version = store.resolve(req.model_name, alias=None if req.promote else req.model_alias,
                            version=req.promote or req.model_version)
    check = verifier(req.verify_key)
    if check is not None:
        store.manifest(req.model_name, version, verifier=check)
    return version


def _short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]
