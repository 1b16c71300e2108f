"""A moto server on 127.0.0.1 holding what the pipelines expect to exist in AWS, and the one
write into moto's internals that reports an ECS deployment's progress (moto runs no tasks)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from model.store import DEFAULT_ALIAS
from standin.errors import PipelineError

ROOT = Path(__file__).resolve().parent.parent
TASK_TEMPLATE = ROOT / "ecs" / "task-def.json"

# The names of the local stand-ins for the AWS resources the pipelines use.
BUCKET = "mlops-models-local"
STORE_PREFIX = "models"
REPOSITORY = "model-service"
CLUSTER = "mlops-local"
SERVICE = "model-service"
FAMILY = "model-service"
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

        from standin.moto_fixes import patch_change_set_outputs

        patch_change_set_outputs()

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
        """Create the bucket, the ECR repository, networking, the cluster and the service."""
        from deploy.task_def import render_file

        self.client("s3").create_bucket(Bucket=BUCKET)
        repository = self.client("ecr").create_repository(repositoryName=REPOSITORY)["repository"]
        ec2 = self.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="model-service", Description="model service",
                                          VpcId=vpc)["GroupId"]
        ecs = self.client("ecs")
        ecs.create_cluster(clusterName=CLUSTER)
        store = f"s3://{BUCKET}/{STORE_PREFIX}"
        definition = render_file(TASK_TEMPLATE, {
            "FAMILY": FAMILY,
            # No image exists before the deploy pipeline pushes one: the agent then runs the checkout.
            "IMAGE": f"{repository['repositoryUri']}:bootstrap",
            "MODEL_STORE": store,
            "MODEL_NAME": model_name,
            "MODEL_ALIAS": DEFAULT_ALIAS,
            "MODEL_VERSION": "",
            "AWS_REGION": REGION,
            "TASK_ROLE_ARN": "arn:aws:iam::123456789012:role/model-service-task",
            "EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/model-service-execution",
            "LOG_GROUP": "/ecs/model-service",
        })
        arn = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(
            cluster=CLUSTER, serviceName=SERVICE, taskDefinition=arn, desiredCount=1, launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": {
                "subnets": [subnet], "securityGroups": [group], "assignPublicIp": "DISABLED"}},
        )
        self.resources = {
            "MODEL_STORE": store,
            "ECR_REPOSITORY": REPOSITORY,
            "ECR_REPOSITORY_URI": repository["repositoryUri"],
            "ECS_CLUSTER": CLUSTER,
            "ECS_SERVICE": SERVICE,
            "SUBNET": subnet,
            "SECURITY_GROUP": group,
        }
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


