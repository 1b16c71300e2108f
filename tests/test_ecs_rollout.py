"""ECS rollout: against the moto server (real boto3 calls) and against scripted ECS answers.

Moto's ECS does not model deployments (a forced deployment never completes there), so the moto
tests cover planning, bad input and the rollback path end to end, and the waiting/failure logic is
driven by a fake boto3 ECS client that answers scripted describe_services results and raises real
botocore ClientErrors.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
from fakes import DIGEST, FakeEcs, FakeStore, UnsetAliasStore, deployment, new_deployment, run_scripted
from helpers import ROOT

MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_TYPE,
                       "config": {"digest": "sha256:" + "1" * 64}, "layers": []})


# -- fixtures on the moto server ----------------------------------------------------------
@pytest.fixture
def two_versions(local_store):
    """The local store with a second, newer version published (production still on the first)."""
    from model.data import load_dataset
    from model.store import ModelStore
    from model.train import train

    store = ModelStore(local_store)
    first = store.alias("digits", "production").version
    candidate = train(load_dataset("digits"), name="digits", seed=7)
    manifest = candidate.manifest
    store.publish(candidate.artifact, manifest, onnx=candidate.onnx)
    return local_store, first, manifest["version"]


@pytest.fixture
def ecs_world(aws_env):
    """VPC, subnet, security group, an ECR repository with one pushed tag, a cluster and a service."""
    import boto3

    suffix = uuid.uuid4().hex[:8]
    ec2, ecs, ecr = boto3.client("ec2"), boto3.client("ecs"), boto3.client("ecr")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"svc-{suffix}", Description="svc", VpcId=vpc)["GroupId"]
    repo = f"model-service-{suffix}"
    uri = ecr.create_repository(repositoryName=repo)["repository"]["repositoryUri"]
    pushed = ecr.put_image(repositoryName=repo, imageManifest=MANIFEST, imageTag="abc123")["image"]["imageId"]
    cluster = f"cluster-{suffix}"
    ecs.create_cluster(clusterName=cluster)
    first = ecs.register_task_definition(
        family=f"model-service-{suffix}", networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
        cpu="1024", memory="2048",
        containerDefinitions=[{"name": "model-service", "image": f"{uri}@{DIGEST}", "essential": True,
                               "environment": [{"name": "MODEL_VERSION", "value": "old"}]}],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(
        cluster=cluster, serviceName="model", taskDefinition=first, desiredCount=1, launchType="FARGATE",
        deploymentController={"type": "ECS"},
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True},
                                 "maximumPercent": 200, "minimumHealthyPercent": 100},
        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}},
    )
    return {"env": aws_env, "cluster": cluster, "service": "model", "repo": repo, "uri": uri,
            "pushed_digest": pushed["imageDigest"], "first": first, "family": f"model-service-{suffix}"}


def rollout(world, *args, env=None):
    return subprocess.run([str(ROOT / "scripts/rollout"), "ecs", "--cluster", world["cluster"],
                           "--service", world["service"], *args],
                          capture_output=True, text=True, env=env or world["env"], timeout=120, cwd=ROOT)


def service_state(world):
    import boto3

    ecs = boto3.client("ecs")
    service = ecs.describe_services(cluster=world["cluster"], services=[world["service"]])["services"][0]
    revisions = ecs.list_task_definitions(familyPrefix=world["family"], status="ACTIVE")["taskDefinitionArns"]
    return service["taskDefinition"], revisions


def assert_one_error_line(result, code, text):
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


# -- against moto -------------------------------------------------------------------------
def test_dry_run_plans_image_digest_and_model_and_changes_nothing(ecs_world, two_versions):
    store, first, second = two_versions
    result = rollout(ecs_world, "--image", f"{ecs_world['repo']}:abc123", "--promote", second,
                     "--store", store, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"{ecs_world['uri']}@{ecs_world['pushed_digest']}" in result.stdout
    assert f"production {first} -> {second}" in result.stdout
    assert service_state(ecs_world) == (ecs_world["first"], [ecs_world["first"]])
    from model.store import ModelStore

    assert ModelStore(store).alias("digits", "production").version == first


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--cluster", "no-such-cluster"], 4, "no-such-cluster"),
        (["--service", "no-such-service"], 4, "no-such-service"),
        (["--image", "REPO:never-pushed"], 4, "never-pushed"),
        (["--image", "not a ref"], 9, "invalid image reference"),
        (["--model-version", "20200101T000000Z-deadbeef"], 4, "not found"),
        (["--promote", "20200101T000000Z-deadbeef"], 4, "not found"),
        (["--model-version", "V", "--promote", "V"], 9, "at most one"),
        (["--template", "ecs/task-def.json", "--model-alias", "production"], 9, "unfilled placeholders"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(ecs_world, local_store, args, code, text):
    args = [a.replace("REPO", ecs_world["repo"]) for a in args]
    env = {k: v for k, v in ecs_world["env"].items() if k not in ("TASK_ROLE_ARN", "EXECUTION_ROLE_ARN")}
    result = rollout(ecs_world, *args, "--store", local_store, env=env)
    assert_one_error_line(result, code, text)
    assert service_state(ecs_world) == (ecs_world["first"], [ecs_world["first"]])
    from model.store import ModelStore

    assert ModelStore(local_store).alias("digits", "production").previous is None


def test_missing_credentials_is_exit_3(ecs_world, tmp_path):
    env = {k: v for k, v in ecs_world["env"].items() if not k.startswith("AWS_") or k in
           ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true")
    result = rollout(ecs_world, "--dry-run", env=env)
    assert_one_error_line(result, 3, "credentials")


def test_failed_rollout_on_moto_restores_revision_and_alias(ecs_world, two_versions):
    """Moto never completes a deployment: the rollout times out and must undo everything it did."""
    store, first, second = two_versions
    result = rollout(ecs_world, "--image", f"{ecs_world['repo']}:abc123", "--promote", second,
                     "--store", store, "--timeout", "1", "--poll", "0.2", "--rollback-timeout", "0")
    assert_one_error_line(result, 12, "timed out")
    assert "registered" in result.stdout and "rollback: alias production -> " + first in result.stdout
    task_definition, revisions = service_state(ecs_world)
    assert task_definition == ecs_world["first"]
    assert revisions == [ecs_world["first"]]  # the new revision was deregistered
    from model.store import ModelStore

    assert ModelStore(store).alias("digits", "production").version == first


def test_rendered_template_revision_pins_digest_and_version(ecs_world, two_versions):
    """With --template the new revision comes from ecs/task-def.json (registered before the timeout)."""
    import boto3

    store, first, _ = two_versions
    env = {**ecs_world["env"], "TASK_ROLE_ARN": "arn:aws:iam::123456789012:role/task",
           "EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/exec", "TASK_FAMILY": ecs_world["family"]}
    result = rollout(ecs_world, "--template", "ecs/task-def.json", "--image", f"{ecs_world['repo']}:abc123",
                     "--model-alias", "production", "--store", store, "--timeout", "0",
                     "--rollback-timeout", "0", env=env)
    assert result.returncode == 12, result.stderr
    registered = [line.split()[-1] for line in result.stdout.splitlines()
                  if line.startswith("rollout: registered ")]
    definition = boto3.client("ecs").describe_task_definition(taskDefinition=registered[0])["taskDefinition"]
    container = definition["containerDefinitions"][0]
    assert container["image"] == f"{ecs_world['uri']}@{ecs_world['pushed_digest']}"
    assert {"name": "MODEL_VERSION", "value": first} in container["environment"]
    assert definition["cpu"] == "1024" and definition["taskRoleArn"].endswith("role/task")


# -- scripted ECS answers (tests/fakes.py) ---------------------------------------------------
def test_success_waits_for_completion_then_verifies(version_server):
    fake = FakeEcs([new_deployment("IN_PROGRESS", running=0),
                    lambda f: [deployment(f.td, "IN_PROGRESS"), deployment("arn:td/old:1", "COMPLETED",
                                                                              status="ACTIVE")],
                    new_deployment("COMPLETED")])
    store = FakeStore()
    error, lines = run_scripted(fake, store=store, url=version_server.url)
    assert error is None, lines
    assert fake.updates == ["arn:td/new:2"] and store.production.version == "v-new"
    env = fake.registered[0]["containerDefinitions"][0]["environment"]
    assert {"name": "MODEL_VERSION", "value": "v-new"} in env
    assert any("answered v-new 3 times" in line for line in lines)


def test_timeout_rolls_back_image_and_model():
    fake = FakeEcs([lambda f: [deployment(f.td, "IN_PROGRESS", running=0)] if f.td.endswith("new:2")
                    else [deployment(f.td, "COMPLETED")]])
    store = FakeStore()
    error, _lines = run_scripted(fake, store=store, timeout=30)
    assert type(error).__name__ == "RolloutFailed" and error.exit_code == 12 and "timed out" in str(error)
    assert fake.updates == ["arn:td/new:2", "arn:td/old:1"]
    assert fake.deregistered == ["arn:td/new:2"]
    assert store.moves == ["v-new", "v-old"]


def test_circuit_breaker_failure_is_detected_without_waiting_for_the_timeout():
    fake = FakeEcs([lambda f: [deployment(f.td, "FAILED", running=0, failed=2)] if f.td.endswith("new:2")
                    else [deployment(f.td, "COMPLETED")]])
    error, lines = run_scripted(fake, timeout=3600)
    assert error.exit_code == 12 and "circuit breaker" in str(error)
    assert fake.updates[-1] == "arn:td/old:1"
    assert not any(line.startswith("waiting") for line in lines)


def test_failed_tasks_count_as_failure():
    fake = FakeEcs([lambda f: [deployment(f.td, "IN_PROGRESS", running=0, failed=1)]
                    if f.td.endswith("new:2") else [deployment(f.td, "COMPLETED")]])
    error, _ = run_scripted(fake)
    assert error.exit_code == 12 and "failed to start" in str(error)


def test_verify_mismatch_rolls_back(version_server):
    version_server.version = "v-old"  # the load balancer still reaches old tasks only
    fake = FakeEcs([new_deployment("COMPLETED")])
    store = FakeStore()
    error, _lines = run_scripted(fake, store=store, url=version_server.url)
    assert error.exit_code == 12 and "did not answer version v-new" in str(error)
    assert fake.updates == ["arn:td/new:2", "arn:td/old:1"] and store.production.version == "v-old"


def test_service_url_that_does_not_answer_rolls_back():
    from helpers import free_port

    fake = FakeEcs([new_deployment("COMPLETED")])
    error, _ = run_scripted(fake, url=f"http://127.0.0.1:{free_port()}")
    assert error.exit_code == 12 and "did not answer version v-new" in str(error)
    assert "ConnectionRefusedError" in str(error) or "Errno" in str(error)
    assert fake.updates[-1] == "arn:td/old:1"


def test_rollback_failure_is_exit_13_and_says_what_is_left():
    fake = FakeEcs([new_deployment("FAILED")], fail_update_on="arn:td/old:1")
    store = FakeStore()
    error, _ = run_scripted(fake, store=store)
    assert type(error).__name__ == "RollbackFailed" and error.exit_code == 13
    assert "ROLLBACK FAILED, undo by hand" in str(error) and "AccessDeniedException" in str(error)
    assert "not restored to arn:td/old:1" in str(error)
    assert store.production.version == "v-old"  # the alias was still moved back


def test_promoting_an_unset_alias_sets_it_only_after_the_rollout_is_verified(version_server):
    fake = FakeEcs([new_deployment("COMPLETED")])
    store = UnsetAliasStore()
    error, lines = run_scripted(fake, store=store, url=version_server.url)
    assert error is None, lines
    verified = next(i for i, line in enumerate(lines) if "answered v-new 3 times" in line)
    moved = next(i for i, line in enumerate(lines) if line.startswith("alias: production -> v-new"))
    assert verified < moved
    assert store.expected == [None]  # set only if still unset: a concurrent promote is not overwritten


def test_a_failed_rollout_leaves_an_unset_alias_unset(version_server):
    version_server.version = "v-old"
    fake = FakeEcs([new_deployment("COMPLETED")])
    store = UnsetAliasStore()
    error, _ = run_scripted(fake, store=store, url=version_server.url)
    assert type(error).__name__ == "RolloutFailed" and error.exit_code == 12  # not 13: nothing to undo
    assert store.production is None and store.moves == []
    assert fake.updates == ["arn:td/new:2", "arn:td/old:1"]


def test_follow_alias_promote_of_an_unset_alias_is_refused_before_anything_changes():
    fake = FakeEcs([new_deployment("COMPLETED")])
    store = UnsetAliasStore()
    error, _ = run_scripted(fake, store=store, follow_alias=True)
    assert type(error).__name__ == "ResourceNotFound" and error.exit_code == 4
    assert "python -m model promote v-new --alias production" in str(error)
    assert fake.registered == [] and fake.updates == [] and store.moves == []


def test_an_empty_promote_value_is_refused(ecs_world, local_store):
    # `--promote "$(cat missing-file)"` must not turn into "roll out, keeping the model".
    result = rollout(ecs_world, "--promote", "", "--store", local_store)
    assert_one_error_line(result, 9, "--promote was given an empty value")
    assert service_state(ecs_world) == (ecs_world["first"], [ecs_world["first"]])


def make_rollout_model(world, store, candidate, *extra):
    env = {**world["env"], "ECS_CLUSTER": world["cluster"], "ECS_SERVICE": world["service"],
           "MODEL_STORE": store}
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "rollout-model",
                           f"CANDIDATE={candidate}", *extra], capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_failing_model_rollout_leaves_the_alias_where_it_was(ecs_world, two_versions, tmp_path):
    """The train pipeline's last stage: promote + roll out as one unit; a failure undoes both."""
    from model.store import ModelStore

    store, first, second = two_versions
    (tmp_path / "published-version").write_text(second + "\n")
    result = make_rollout_model(ecs_world, store, tmp_path,
                                "ROLLOUT_ARGS=--timeout 1 --poll 0.2 --rollback-timeout 0")
    assert result.returncode != 0
    assert "error: rolled back: " in result.stderr and "timed out" in result.stderr, result.stderr
    assert f"alias: production -> {second}" in result.stdout  # it was moved, then moved back
    assert ModelStore(store).alias("digits", "production").version == first
    assert service_state(ecs_world) == (ecs_world["first"], [ecs_world["first"]])


def test_model_rollout_without_a_published_version_changes_nothing(ecs_world, local_store, tmp_path):
    from model.store import ModelStore

    result = make_rollout_model(ecs_world, local_store, tmp_path / "no-candidate")
    assert result.returncode != 0
    assert "no published version" in result.stderr, result.stderr
    assert ModelStore(local_store).alias("digits", "production").previous is None
    assert service_state(ecs_world) == (ecs_world["first"], [ecs_world["first"]])


def test_sigterm_during_a_real_rollout_restores_revision_and_alias(ecs_world, two_versions):
    """A Jenkins abort sends SIGTERM: `scripts/rollout ecs` rolls back before it exits (code 12)."""
    import signal

    from model.store import ModelStore

    store, first, second = two_versions
    process = subprocess.Popen(
        [str(ROOT / "scripts/rollout"), "ecs", "--cluster", ecs_world["cluster"], "--service",
         ecs_world["service"], "--promote", second, "--store", store, "--timeout", "60", "--poll", "0.2",
         "--rollback-timeout", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ecs_world["env"], cwd=ROOT)
    seen = []
    for line in process.stdout:  # moto never completes a deployment: the rollout waits
        seen.append(line)
        if line.startswith("rollout: waiting"):
            break
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 12, "".join(seen) + out + err
    assert err.strip() == "error: rolled back: interrupted (SIGTERM)"
    assert f"rollback: alias production -> {first}" in out and "rollback: done" in out
    assert service_state(ecs_world) == (ecs_world["first"], [ecs_world["first"]])
    assert ModelStore(store).alias("digits", "production").version == first
