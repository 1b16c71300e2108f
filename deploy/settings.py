"""The deploy tooling's configuration: the one place environment variables are read.

Every script's flags default to these, so Jenkins sets variables and operators can pass flags.
"""

from __future__ import annotations

import os

from model.store import DEFAULT_ALIAS, DEFAULT_NAME

# variable -> default (None: no default, the flag or variable is required where it is used)
DEFAULTS: dict[str, str | None] = {
    "AWS_REGION": None,
    "ECR_REPOSITORY": None,
    "ECS_CLUSTER": None,
    "ECS_SERVICE": None,
    "SERVICE_URL": None,
    "MODEL_STORE": None,
    "MODEL_NAME": DEFAULT_NAME,
    "MODEL_ALIAS": DEFAULT_ALIAS,
    # A public key (PEM) or kms:KEY: a rollout refuses a model version it did not sign.
    "MODEL_VERIFY_KEY": None,
    # The service's prediction capture (README: Monitoring); empty: none, no columns left out or hashed.
    "CAPTURE_RATE": None,
    "CAPTURE_EXCLUDE": None,
    "CAPTURE_HASH": None,
    "IMAGE_NAME": "model-service",
    "BASE_IMAGE": None,
    "TASK_FAMILY": "model-service",
    "TASK_ROLE_ARN": None,
    "EXECUTION_ROLE_ARN": None,
    "LOG_GROUP": "/ecs/model-service",
    "ROLLOUT_TIMEOUT": "600",
    # scripts/train-task: the stack's training task definition and where its tasks run (stack outputs).
    "TRAIN_TASK_FAMILY": "model-train",
    "TRAIN_SUBNETS": None,
    "TRAIN_SECURITY_GROUPS": None,
    "TRAIN_CPU": None,
    "TRAIN_MEMORY": None,
    "TRAIN_TIMEOUT": "7200",
    "DATA_PREFIX": "data",
}


def settings(environ: dict | None = None) -> dict[str, str | None]:
    """The variables above from the environment (empty counts as unset), with their defaults."""
    env = os.environ if environ is None else environ
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    values = {key: (env.get(key) or default) for key, default in DEFAULTS.items()}
    values["AWS_REGION"] = region or None
    return values


def template_values(values: dict[str, str | None]) -> dict[str, str | None]:
    """The task-definition template's placeholders filled from the settings (IMAGE/MODEL_VERSION apart)."""
    return {
        "FAMILY": values["TASK_FAMILY"],
        "TASK_ROLE_ARN": values["TASK_ROLE_ARN"],
        "EXECUTION_ROLE_ARN": values["EXECUTION_ROLE_ARN"],
        "AWS_REGION": values["AWS_REGION"],
        "LOG_GROUP": values["LOG_GROUP"],
        "MODEL_STORE": values["MODEL_STORE"],
        "MODEL_NAME": values["MODEL_NAME"],
        "MODEL_ALIAS": values["MODEL_ALIAS"],
        "MODEL_VERIFY_KEY": values["MODEL_VERIFY_KEY"] or "",  # empty: signatures are not required
        "CAPTURE_RATE": values["CAPTURE_RATE"] or "",  # empty: the variable is left out (no capture)
        "CAPTURE_EXCLUDE": values["CAPTURE_EXCLUDE"] or "",
        "CAPTURE_HASH": values["CAPTURE_HASH"] or "",
    }


# The stack's outputs (infra/stack.yaml) as the variables above: `scripts/stack outputs --format env`
# prints them for a shell or a Jenkins environment, and the local pipeline run sets them from the stack.
STACK_OUTPUTS: dict[str, str] = {
    "MODEL_STORE": "ModelStore",
    "MODEL_NAME": "ModelName",
    "MODEL_ALIAS": "ModelAlias",
    "ECR_REPOSITORY": "EcrRepository",
    "ECS_CLUSTER": "ClusterName",
    "ECS_SERVICE": "ServiceName",
    "SERVICE_URL": "ServiceUrl",
    "TASK_FAMILY": "TaskFamily",
    "TASK_ROLE_ARN": "TaskRoleArn",
    "EXECUTION_ROLE_ARN": "ExecutionRoleArn",
    "LOG_GROUP": "LogGroupName",
    "TRAIN_TASK_FAMILY": "TrainTaskFamily",
    "TRAIN_SUBNETS": "TrainSubnets",
    "TRAIN_SECURITY_GROUPS": "TrainSecurityGroup",
    "DATA_PREFIX": "DataPrefix",
    "TRAIN_RUNS_TABLE": "TrainRunsTable",
    "TRAIN_TRIGGER_FUNCTION": "TrainTriggerFunction",
    "PREDICTIONS_TABLE": "PredictionsTable",
}


def from_stack_outputs(outputs: dict[str, str]) -> dict[str, str]:
    """The deploy variables a stack's outputs give (those it has)."""
    return {variable: outputs[key] for variable, key in STACK_OUTPUTS.items() if key in outputs}
