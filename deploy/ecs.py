"""ECS in three small pieces, after fabfuel/ecs-deploy: a thin client, a service and a deployment.

`EcsClient` has one method per API call and turns botocore errors into DeployErrors; `EcsService` and
`EcsDeployment` wrap the describe_services answer with the properties the rollout reasons about.
"""

from __future__ import annotations

from dataclasses import dataclass

from deploy.aws import aws_errors
from deploy.errors import ResourceNotFound


class EcsClient:
    """One method per ECS API call; the boto3 client is passed in."""

    def __init__(self, boto_client):
        self.boto = boto_client

    def describe_service(self, cluster: str, service: str) -> EcsService:
        """The service, or ResourceNotFound if the cluster or the service does not exist."""
        with aws_errors(f"describe service {service} in cluster {cluster}"):
            answer = self.boto.describe_services(cluster=cluster, services=[service])
        failures = answer.get("failures") or []
        if failures or not answer.get("services"):
            reason = failures[0].get("reason", "MISSING") if failures else "MISSING"
            raise ResourceNotFound(f"ECS service {service!r} not found in cluster {cluster!r} ({reason})")
        data = answer["services"][0]
        if data.get("status") != "ACTIVE":
            raise ResourceNotFound(f"ECS service {service!r} in cluster {cluster!r} is {data.get('status')}")
        return EcsService(data)

    def describe_cluster(self, cluster: str) -> dict:
        """The cluster, or ResourceNotFound."""
        with aws_errors(f"describe cluster {cluster}"):
            answer = self.boto.describe_clusters(clusters=[cluster])
        clusters = [c for c in answer.get("clusters", []) if c.get("status") == "ACTIVE"]
        if not clusters:
            raise ResourceNotFound(f"ECS cluster {cluster!r} not found")
        return clusters[0]

    def describe_task_definition(self, arn: str) -> dict:
        """A registered task definition (the taskDefinition object)."""
        with aws_errors(f"describe task definition {arn}"):
            return self.boto.describe_task_definition(taskDefinition=arn)["taskDefinition"]

    def register_task_definition(self, definition: dict) -> dict:
        """Register a revision; returns the registered taskDefinition (with its ARN)."""
        with aws_errors(f"register task definition {definition.get('family')}"):
            return self.boto.register_task_definition(**definition)["taskDefinition"]

    def deregister_task_definition(self, arn: str) -> None:
        """Mark a revision INACTIVE (used to discard a revision that never went live)."""
        with aws_errors(f"deregister task definition {arn}"):
            self.boto.deregister_task_definition(taskDefinition=arn)

    def update_service(self, cluster: str, service: str, task_definition: str) -> EcsService:
        """Point the service at a revision and force a new deployment."""
        with aws_errors(f"update service {service}"):
            answer = self.boto.update_service(
                cluster=cluster, service=service, taskDefinition=task_definition, forceNewDeployment=True
            )
        return EcsService(answer["service"])

    def stopped_tasks(self, cluster: str, service: str, started_by: str | None = None) -> list[dict]:
        """Tasks of the service that stopped (desired status STOPPED), with their stop reasons."""
        with aws_errors(f"list stopped tasks of {service}"):
            arns = self.boto.list_tasks(cluster=cluster, serviceName=service, desiredStatus="STOPPED")[
                "taskArns"
            ]
            if not arns:
                return []
            tasks = self.boto.describe_tasks(cluster=cluster, tasks=arns[:100])["tasks"]
        return [t for t in tasks if started_by is None or t.get("startedBy") == started_by]


@dataclass(frozen=True)
class EcsDeployment:
    """One entry of a service's `deployments` list."""

    data: dict

    @property
    def id(self) -> str:
        return self.data.get("id", "")

    @property
    def status(self) -> str:
        """PRIMARY (the newest), ACTIVE (being replaced) or INACTIVE."""
        return self.data.get("status", "")

    @property
    def task_definition(self) -> str:
        return self.data.get("taskDefinition", "")

    @property
    def rollout_state(self) -> str:
        """COMPLETED, IN_PROGRESS or FAILED (only with the ECS deployment controller)."""
        return self.data.get("rolloutState", "")

    @property
    def reason(self) -> str:
        return self.data.get("rolloutStateReason", "")

    @property
    def failed_tasks(self) -> int:
        return int(self.data.get("failedTasks", 0) or 0)

    @property
    def desired_count(self) -> int:
        return int(self.data.get("desiredCount", 0) or 0)

    @property
    def running_count(self) -> int:
        return int(self.data.get("runningCount", 0) or 0)

    @property
    def has_failed(self) -> bool:
        """ECS gave up on it (circuit breaker) or rolled it back itself."""
        return self.rollout_state == "FAILED"


@dataclass(frozen=True)
class EcsService:
    """A describe_services entry, with the questions a rollout asks of it."""

    data: dict

    @property
    def name(self) -> str:
        return self.data.get("serviceName", "")

    @property
    def arn(self) -> str:
        return self.data.get("serviceArn", "")

    @property
    def task_definition(self) -> str:
        return self.data.get("taskDefinition", "")

    @property
    def desired_count(self) -> int:
        return int(self.data.get("desiredCount", 0) or 0)

    @property
    def running_count(self) -> int:
        return int(self.data.get("runningCount", 0) or 0)

    @property
    def deployments(self) -> list[EcsDeployment]:
        return [EcsDeployment(d) for d in self.data.get("deployments", [])]

    @property
    def primary(self) -> EcsDeployment | None:
        return next((d for d in self.deployments if d.status == "PRIMARY"), None)

    @property
    def circuit_breaker(self) -> bool:
        """True if ECS stops (and may roll back) a deployment whose tasks keep failing."""
        config = self.data.get("deploymentConfiguration", {}).get("deploymentCircuitBreaker", {})
        return bool(config.get("enable"))

    def deployment_for(self, task_definition: str) -> EcsDeployment | None:
        """The deployment running `task_definition`, if the service has one."""
        return next((d for d in self.deployments if d.task_definition == task_definition), None)

    def is_complete(self, task_definition: str) -> bool:
        """The rollout of `task_definition` finished: it is the only deployment and fully running."""
        deployment = self.deployment_for(task_definition)
        if deployment is None or len(self.deployments) != 1 or deployment.status != "PRIMARY":
            return False
        if deployment.rollout_state and deployment.rollout_state != "COMPLETED":
            return False
        return self.running_count == self.desired_count and deployment.running_count == self.desired_count

    def failure(self, task_definition: str) -> str | None:
        """Why the rollout of `task_definition` failed, or None while it has not (yet)."""
        deployment = self.deployment_for(task_definition)
        if deployment is None:
            # ECS's circuit breaker with rollback replaces the failed deployment by the old one.
            return f"the deployment of {task_definition} is gone (ECS rolled it back)"
        if deployment.has_failed:
            return f"rolloutState FAILED: {deployment.reason or 'deployment circuit breaker'}"
        if deployment.failed_tasks > 0:
            return f"{deployment.failed_tasks} task(s) of the new deployment failed to start"
        return None

    def events(self, limit: int = 3) -> list[str]:
        """The newest service event messages (ECS's own account of what it is doing)."""
        return [e.get("message", "") for e in self.data.get("events", [])[:limit]]
