"""Roll the (image digest, model version) unit out to an ECS service, verify it, roll back on failure.

The action is split in two: `plan()` only reads (service, current revision, ECR, model store) and
builds the new revision; `execute()` changes things in a fixed order and undoes them on failure:

    1. move the model alias (only with --promote)
    2. register the new task-definition revision (image@digest + MODEL_VERSION)
    3. update-service --force-new-deployment
    4. wait: rolloutState COMPLETED, one deployment, running == desired; fail fast on FAILED,
       the circuit breaker, failed tasks, or the timeout
    5. verify through the service URL that GET /model answers the new version several times

On any failure after step 1 the previous revision (image and model together) is put back and the
alias is moved back, then RolloutFailed (exit 6) is raised, or RollbackFailed (exit 7) if undoing failed.

An alias that was never set has no previous target to move back to, and the store has no "unset":
so --promote of an unset alias sets it last, after step 5, and a failed rollout leaves it unset.
(--follow-alias tasks read the alias at start-up, so there it must exist first: that is refused.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ops.deploy_errors import DeployError, InvalidInput, ResourceNotFound, RollbackFailed, RolloutFailed
from ops.ecr import EcrClient, resolve_image
from ops.ecs import EcsClient, EcsService
from ops.task_def import derive, is_digest_ref, pinned_unit, render_file
from ops.verify import verify_version


class DeploymentFailed(DeployError):
    """ECS reports the new deployment failed (circuit breaker, failed tasks) or it timed out."""

    exit_code = 6


@dataclass
class RolloutRequest:
    """What to roll out where. Exactly one model selector may be given (or none: keep the current)."""

    cluster: str
    service: str
    model_name: str = "digits"
    model_version: str | None = None  # pin this version
    model_alias: str | None = None  # resolve this alias to a version and pin it
    promote: str | None = None  # move `alias` to this version, then pin it
    alias: str = "production"  # the alias --promote moves
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
    dry_run: bool = False


@dataclass
class Plan:
    """The read-only half of a rollout: where the service is and what it will become."""

    current_arn: str
    current_image: str
    current_model: str | None
    new_definition: dict
    image: str
    model_version: str | None
    alias_move: tuple[str, str | None, str] | None = None  # (alias, from, to)

    def describe(self) -> list[str]:
        lines = [
            f"current: {self.current_arn} image {self.current_image} model {self.current_model or '(alias)'}",
            f"new:     family {self.new_definition['family']} image {self.image} "
            f"model {self.model_version or '(follows alias at start-up)'}",
        ]
        if self.alias_move:
            alias, old, new = self.alias_move
            lines.append(f"alias:   {alias} {old or 'unset'} -> {new}")
        return lines


class EcsRollout:
    """Plans and executes a rollout; every collaborator is passed in (see `main` for the real ones)."""

    def __init__(
        self,
        ecs: EcsClient,
        ecr: EcrClient | None = None,
        store=None,
        *,
        log: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        verify: Callable[..., None] = verify_version,
    ):
        self.ecs, self.ecr, self.store = ecs, ecr, store
        self.log, self.clock, self.sleep, self.verify = log, clock, sleep, verify

    # -- plan (reads only) ------------------------------------------------------------------
    def plan(self, req: RolloutRequest) -> Plan:
        """Resolve image and model, build the new revision; raise before anything is changed."""
        selectors = [s for s in (req.model_version, req.model_alias, req.promote) if s]
        if len(selectors) > 1:
            raise InvalidInput("give at most one of --model-version, --model-alias, --promote")
        if req.image and req.image_digest:
            raise InvalidInput("give --image or --image-digest, not both")
        if req.follow_alias and selectors and not req.promote:
            raise InvalidInput("--follow-alias cannot be combined with a pinned model version")
        self.ecs.describe_cluster(req.cluster)
        service = self.ecs.describe_service(req.cluster, req.service)
        current = self.ecs.describe_task_definition(service.task_definition)
        current_image, current_model = pinned_unit(current)

        image = self._image(req, current_image)
        model_version, alias_move = self._model(req, current_model)
        if req.template:
            values = {**req.template_values, "IMAGE": image, "MODEL_VERSION": model_version or ""}
            values.setdefault("MODEL_NAME", req.model_name)
            values.setdefault("MODEL_ALIAS", req.alias)
            new_definition = render_file(req.template, values)
        else:
            new_definition = derive(current, image=image, model_version=model_version)
        if not model_version:
            new_definition = derive(new_definition, model_version=None)
        return Plan(service.task_definition, current_image, current_model, new_definition, image,
                    model_version, alias_move)

    def _image(self, req: RolloutRequest, current_image: str) -> str:
        if req.image_digest:
            if not is_digest_ref(req.image_digest):
                raise InvalidInput(f"--image-digest {req.image_digest!r} is not repo@sha256:<64 hex>")
            return req.image_digest
        if req.image:
            if self.ecr is None:
                raise InvalidInput("--image needs ECR to resolve the tag to a digest")
            image = resolve_image(self.ecr, req.image)
            self.log(f"image: {req.image} is {image}")
            return image
        return current_image  # a model-only rollout keeps the running image

    def _model(self, req: RolloutRequest, current_model: str | None):
        needs_store = req.model_version or req.model_alias or req.promote
        if not needs_store:
            if req.follow_alias:
                return None, None
            return current_model, None
        if self.store is None:
            raise InvalidInput("a model option needs --store / MODEL_STORE")
        from model.errors import ModelError

        try:
            if req.promote:
                version = self.store.resolve(req.model_name, version=req.promote)
                record = self.store.alias(req.model_name, req.alias)
                old = record.version if record else None
                if old is None and req.follow_alias:
                    raise ResourceNotFound(
                        f"alias {req.alias!r} of {req.model_name} is not set, and --follow-alias tasks "
                        f"would read it before the rollout is verified; set it first: "
                        f"python -m model promote {version} --alias {req.alias}")
                move = None if old == version else (req.alias, old, version)
                return (None if req.follow_alias else version), move
            version = self.store.resolve(req.model_name, alias=req.model_alias, version=req.model_version)
        except ModelError as exc:
            raise _model_error(exc) from None
        if req.model_alias:
            self.log(f"model: alias {req.model_alias} of {req.model_name} is {version}")
        return version, None

    # -- execute (changes things, undoes them on failure) -----------------------------------
    def run(self, req: RolloutRequest) -> Plan:
        """plan() then, unless it is a dry run, execute()."""
        plan = self.plan(req)
        for line in plan.describe():
            self.log(line)
        if req.dry_run:
            self.log("dry run: nothing registered, no alias moved, service not updated")
            return plan
        self.execute(req, plan)
        return plan

    def execute(self, req: RolloutRequest, plan: Plan) -> str:
        """Carry out a plan; return the new task-definition ARN."""
        moved = None
        new_arn = None
        # An unset alias is set only once the rollout is verified (see the module docstring).
        set_last = bool(plan.alias_move) and plan.alias_move[1] is None
        try:
            if plan.alias_move and not set_last:
                moved = self._move_alias(req, plan.alias_move[2])
            elif set_last:
                self.log(f"alias: {req.alias} is unset; it is set once the rollout is verified")
            registered = self.ecs.register_task_definition(plan.new_definition)
            new_arn = registered["taskDefinitionArn"]
            self.log(f"registered {new_arn}")
            self.ecs.update_service(req.cluster, req.service, new_arn)
            self.log(f"updated service {req.service}: new deployment of {new_arn.rsplit('/', 1)[-1]}")
            self.wait(req, new_arn, timeout=req.timeout)
            if req.service_url and plan.model_version:
                self.verify(req.service_url, plan.model_version, consecutive=req.verify_consecutive,
                            timeout=req.verify_timeout, log=self.log)
            if set_last:
                self._move_alias(req, plan.alias_move[2], expected=None)
        except (DeployError, KeyboardInterrupt) as exc:
            reason = str(exc) or type(exc).__name__
            self.log(f"rollout failed: {reason}")
            self._rollback(req, plan, new_arn, moved, reason)
            raise RolloutFailed(f"rolled back to {plan.current_arn}: {reason}") from None
        self.log(f"rollout complete: {req.service} runs {new_arn}")
        return new_arn

    def _move_alias(self, req: RolloutRequest, version: str, expected="read"):
        from model.errors import ModelError

        try:
            moved = self.store.move_alias(req.model_name, req.alias, version, expected=expected)
        except ModelError as exc:
            raise _model_error(exc) from None
        self.log(f"alias: {req.alias} -> {moved.version} (was {moved.previous or 'unset'})")
        return moved

    def wait(self, req: RolloutRequest, task_definition: str, *, timeout: float) -> EcsService:
        """Poll until the deployment of `task_definition` completes; DeploymentFailed otherwise."""
        deadline = self.clock() + timeout
        last = None
        while True:
            service = self.ecs.describe_service(req.cluster, req.service)
            if service.is_complete(task_definition):
                self.log(f"deployment complete: {service.running_count}/{service.desired_count} running")
                return service
            reason = self._failure(req, service, task_definition)
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

    def _failure(self, req: RolloutRequest, service: EcsService, task_definition: str) -> str | None:
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

    def _rollback(self, req: RolloutRequest, plan: Plan, new_arn: str | None, moved, reason: str) -> None:
        problems = []
        if new_arn:
            try:
                self.log(f"rollback: service {req.service} -> {plan.current_arn}")
                self.ecs.update_service(req.cluster, req.service, plan.current_arn)
                if req.rollback_timeout > 0:
                    self.wait(req, plan.current_arn, timeout=req.rollback_timeout)
            except DeployError as exc:
                problems.append(f"service not restored: {exc}")
            try:
                self.ecs.deregister_task_definition(new_arn)
                self.log(f"rollback: deregistered {new_arn}")
            except DeployError as exc:
                self.log(f"rollback: could not deregister {new_arn}: {exc}")
        if moved is not None:
            problems.extend(self._alias_back(req, moved))
        if problems:
            raise RollbackFailed(f"{reason}; ROLLBACK FAILED: {'; '.join(problems)}")
        self.log("rollback: done")

    def _alias_back(self, req: RolloutRequest, moved) -> list[str]:
        from model.errors import ModelError

        if not moved.previous:
            return [f"alias {req.alias} was unset before; it still names {moved.version}"]
        try:
            back = self.store.move_alias(req.model_name, req.alias, moved.previous, expected=moved)
        except ModelError as exc:
            return [f"alias {req.alias} not moved back: {exc}"]
        self.log(f"rollback: alias {req.alias} -> {back.version}")
        return []


def _model_error(exc) -> DeployError:
    """A model-store error as a DeployError with the matching exit code (not found, store unusable)."""
    from model.errors import NotFoundError, StoreError
    from ops.deploy_errors import AwsError

    if isinstance(exc, NotFoundError):
        return ResourceNotFound(str(exc))
    if isinstance(exc, StoreError):
        return AwsError(str(exc))
    return DeployError(str(exc))


# -- command line: scripts/rollout ecs ------------------------------------------------------
def build_parser():
    """Arguments of `scripts/rollout ecs` (flags default to the variables in ops.deploy_settings)."""
    import argparse

    from ops.deploy_settings import settings

    env = settings()
    parser = argparse.ArgumentParser(
        prog="scripts/rollout ecs", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__ + "\nExit codes: see ops/deploy_errors.py and the README (operations).",
    )
    where = parser.add_argument_group("where")
    where.add_argument("--cluster", default=env["ECS_CLUSTER"], help="ECS cluster (default $ECS_CLUSTER)")
    where.add_argument("--service", default=env["ECS_SERVICE"], help="ECS service (default $ECS_SERVICE)")
    where.add_argument("--region", default=env["AWS_REGION"], help="AWS region (default $AWS_REGION)")
    where.add_argument("--service-url", default=env["SERVICE_URL"],
                       help="base URL to verify GET /model through (default $SERVICE_URL; none: no verify)")
    model = parser.add_argument_group("model (at most one; none keeps the running model)")
    model.add_argument("--model-version", help="pin this version")
    model.add_argument("--model-alias", help="resolve this alias (e.g. production) and pin its version")
    model.add_argument("--promote", metavar="VERSION", help="move --alias to VERSION, then pin it")
    model.add_argument("--alias", default=env["MODEL_ALIAS"],
                       help="alias --promote moves (default %(default)s)")
    model.add_argument("--follow-alias", action="store_true",
                       help="do not pin: tasks resolve MODEL_ALIAS at start-up (not verifiable)")
    model.add_argument("--store", default=env["MODEL_STORE"], help="model store (default $MODEL_STORE)")
    model.add_argument("--model-name", default=env["MODEL_NAME"], help="model name (default %(default)s)")
    image = parser.add_argument_group("image (none keeps the running image)")
    image.add_argument("--image", help="repo:tag in ECR, resolved to its digest")
    image.add_argument("--image-digest", help="repo@sha256:... used as is")
    how = parser.add_argument_group("how")
    how.add_argument("--template", type=Path,
                     help="render this task-definition template (e.g. ecs/task-def.json) instead of "
                          "copying the running revision")
    how.add_argument("--timeout", type=float, default=float(env["ROLLOUT_TIMEOUT"]),
                     help="seconds to wait for the deployment (default %(default)s)")
    how.add_argument("--rollback-timeout", type=float, default=300.0,
                     help="seconds to wait for a rollback to settle; 0: do not wait (default %(default)s)")
    how.add_argument("--poll", type=float, default=10.0, help="seconds between checks (default %(default)s)")
    how.add_argument("--verify-count", type=int, default=3,
                     help="consecutive right answers the verify needs (default %(default)s)")
    how.add_argument("--verify-timeout", type=float, default=120.0, help="(default %(default)s)")
    how.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    return parser, env


def main(argv: list[str] | None = None) -> int:
    """`scripts/rollout ecs`: one line `error: ...` on stderr and a documented exit code on failure."""
    import sys

    parser, env = build_parser()
    args = parser.parse_args(argv)
    try:
        if not args.cluster or not args.service:
            raise InvalidInput("name the service: --cluster/--service or ECS_CLUSTER/ECS_SERVICE")
        for flag, value in (("--promote", args.promote), ("--model-version", args.model_version),
                            ("--model-alias", args.model_alias), ("--image", args.image)):
            # An empty value (e.g. `--promote "$(cat missing-file)"`) must not mean "keep the model".
            if value is not None and not value.strip():
                raise InvalidInput(f"{flag} was given an empty value")
        if args.verify_count < 1 or args.timeout < 0 or args.poll <= 0:
            raise InvalidInput("--verify-count must be >= 1, --timeout >= 0 and --poll > 0")
        from ops.aws import client
        from ops.deploy_settings import template_values
        from ops.ecs import EcsClient

        store = None
        if args.model_version or args.model_alias or args.promote:
            if not args.store:
                raise InvalidInput("a model option needs --store or MODEL_STORE")
            from model.errors import ModelError
            from model.store import ModelStore

            try:
                store = ModelStore(args.store)
            except ModelError as exc:
                raise _model_error(exc) from None
        request = RolloutRequest(
            cluster=args.cluster, service=args.service, model_name=args.model_name,
            model_version=args.model_version, model_alias=args.model_alias, promote=args.promote,
            alias=args.alias, follow_alias=args.follow_alias, image=args.image,
            image_digest=args.image_digest, template=args.template,
            template_values={**template_values(env), "AWS_REGION": args.region,
                             "MODEL_STORE": args.store, "MODEL_NAME": args.model_name},
            service_url=args.service_url, timeout=args.timeout, rollback_timeout=args.rollback_timeout,
            poll=args.poll, verify_consecutive=args.verify_count, verify_timeout=args.verify_timeout,
            dry_run=args.dry_run,
        )
        ecr = EcrClient(client("ecr", args.region)) if args.image else None
        rollout = EcsRollout(EcsClient(client("ecs", args.region)), ecr, store,
                             log=lambda line: print(line, flush=True))
        rollout.run(request)
        return 0
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
