"""A moto server on 127.0.0.1 with the project's stack deployed into it, and the one write into
moto's ECS internals that reports a deployment's progress (moto runs no tasks)."""

from __future__ import annotations

import logging
import os

from standin.errors import PipelineError

# The local run's stack (infra/stack.yaml deployed into moto) and region.
STACK_NAME = "mlops-local"
ENVIRONMENT = "local"
REGION = "us-east-1"


class LocalAws:
    """A moto server on 127.0.0.1 holding the resources the pipelines expect (a context manager)."""

    def __init__(self):
        self.server = None
        self.endpoint = ""
        self.resources: dict[str, str] = {}

    def __enter__(self) -> LocalAws:
        # moto's ECS reports a service's tasks as running only with this set in its process.
        os.environ.setdefault("MOTO_ECS_SERVICE_RUNNING", "1")
        from moto.server import ThreadedMotoServer

        from standin.moto_fixes import patch_change_set_outputs, patch_change_set_template_url

        patch_change_set_outputs()
        patch_change_set_template_url()
        # moto moves a task to STOPPED the first time it is described; ECS keeps it RUNNING until its
        # container exits. The local task runner marks it STOPPED then (write_moto_task_stopped).
        from moto.moto_api import state_manager

        state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual",
                                                                          "times": 2**62})

        # The server's per-request log would drown the stages' own output.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc) -> None:
        if self.server:
            self.server.stop()

    @property
    def env(self) -> dict[str, str]:
        """What boto3 (and the AWS CLI) need to use this server and nothing else."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_SESSION_TOKEN": "local",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self, service: str):
        """A boto3 client for this server (the runner's only place clients are built)."""
        import boto3

        env = self.env
        return boto3.client(
            service, endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=env["AWS_SESSION_TOKEN"],
        )

    def provision(self, model_name: str) -> dict[str, str]:
        """Deploy infra/stack.yaml into moto, as `scripts/stack deploy` does in an account.

        The same template, rendering, parameter checks and change-set state machine; only the
        endpoint differs. Returns the deploy variables the stack's outputs give (MODEL_STORE,
        ECR_REPOSITORY, ECS_CLUSTER, ECS_SERVICE, ...), as `scripts/stack outputs --format env` would.
        """
        import json

        from deploy.settings import from_stack_outputs
        from deploy.stack import parameters, template
        from deploy.stack.cloudformation import CloudFormation
        from deploy.stack.deployer import Stacks

        account = self.client("sts").get_caller_identity()["Account"]
        loaded = template.load()
        given = parameters.check(loaded, {
            "EnvironmentName": ENVIRONMENT,
            # No image exists before the deploy pipeline pushes one: the agent then runs the checkout.
            "Image": f"{account}.dkr.ecr.{REGION}.amazonaws.com/{ENVIRONMENT}-model-service:bootstrap",
            "ModelName": model_name,
            "DesiredCount": "1", "MinTasks": "1", "MaxTasks": "1",
        })
        from deploy.stack.templates import TemplateBucket

        templates = TemplateBucket(self.client("s3"), self.client("sts"), REGION)
        stacks = Stacks(CloudFormation(self.client("cloudformation")), log=lambda line: None, poll=0.2,
                        templates=templates)
        stacks.plan(STACK_NAME, json.dumps(template.render(loaded)), given, change_set="local")
        outputs = stacks.execute(STACK_NAME, "local", timeout=300)
        self.resources = from_stack_outputs(outputs)
        return self.resources


def write_moto_deployment(cluster: str, service: str, region: str, arn: str, *, state: str,
                          running: int | None = None, failed_delta: int = 0) -> bool:
    """THE one place that writes moto internals: set the service's deployment record of `arn`.

    moto keeps a service's deployment at the task definition it was created with (update_service only
    renews its id) and never changes its rolloutState, so a rollout waiting for its revision's
    deployment would wait forever. ECS's scheduler updates that record as tasks run; locally the ECS
    agent runs the tasks, and this writes the record into the moto server running in this process
    (moto's ECS backend: `ecs_backends[account][region].services["cluster:service"]`, whose
    `deployments` list describe_services answers). `running=None` means the service's desired count.
    Returns False if the service has moved on to another revision (a rollback) meanwhile.

    moto has no API for this: if its internals change, this raises PipelineError naming them, the
    agent logs it, the rollout times out, and the local pipeline test fails.
    """
    from datetime import UTC, datetime

    try:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ecs.models import ecs_backends

        record = ecs_backends[DEFAULT_ACCOUNT_ID][region].services[f"{cluster}:{service}"]
        if record.task_definition != arn:
            return False
        deployment = dict(record.deployments[0]) if record.deployments else {}
        failed = int(deployment.get("failedTasks", 0)) + failed_delta if failed_delta else 0
        running = record.desired_count if running is None else running
        deployment.update(taskDefinition=arn, status="PRIMARY", rolloutState=state, runningCount=running,
                          pendingCount=0 if running else 1, failedTasks=failed,
                          rolloutStateReason=f"local ECS agent: {state.lower()}",
                          updatedAt=datetime.now(UTC))
        record.deployments = [deployment]
    except (ImportError, KeyError, AttributeError, IndexError, TypeError) as exc:
        raise PipelineError(f"moto's ECS internals changed ({type(exc).__name__}: {exc}): the local "
                            f"ECS agent cannot report deployments (standin/pipeline.py)") from None
    return True


def write_moto_task_stopped(cluster: str, task_arn: str, region: str, *, exit_code: int | None,
                            reason: str) -> None:
    """Mark a one-off task STOPPED in moto with its container's exit code (None: it never ran).

    moto's StopTask sets the status and reason but no exit code (moto reports 0 from the start), and
    nothing stops a task whose container exits; ECS records both. Raises PipelineError if moto's
    internals change.
    """
    try:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ecs.models import ecs_backends

        backend = ecs_backends[DEFAULT_ACCOUNT_ID][region]
        task = next(t for arn, t in backend.tasks[cluster.rsplit("/", 1)[-1]].items()
                    if arn == task_arn or arn.endswith(task_arn.rsplit("/", 1)[-1]))
        task.last_status = "STOPPED"
        task.desired_status = "STOPPED"
        task.stopped_reason = task.stopped_reason or reason
        for container in task.containers:
            container.last_status = "STOPPED"
            container.exitCode = exit_code
    except (ImportError, KeyError, AttributeError, StopIteration) as exc:
        raise PipelineError(f"moto's ECS internals changed ({type(exc).__name__}: {exc}): the local task "
                            "runner cannot report a stopped task (standin/task_runner.py)") from None


class MotoDeployments:
    """Tells moto's ECS what ECS records as a deployment's tasks start, pass health or fail."""

    def __init__(self, cluster: str, service: str, region: str = REGION):
        self.cluster, self.service, self.region = cluster, service, region

    def started(self, arn: str) -> None:
        write_moto_deployment(self.cluster, self.service, self.region, arn, state="IN_PROGRESS", running=0)

    def healthy(self, arn: str) -> None:
        write_moto_deployment(self.cluster, self.service, self.region, arn, state="COMPLETED")

    def failed(self, arn: str) -> None:
        write_moto_deployment(self.cluster, self.service, self.region, arn, state="IN_PROGRESS", running=0,
                              failed_delta=1)


