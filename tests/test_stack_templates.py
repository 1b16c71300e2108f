"""A template over CloudFormation's inline limit (51,200 bytes) goes through a templates bucket.

The stack with the training trigger's code inlined renders to more than the limit; AWS refuses such a
TemplateBody (moto does not), so `scripts/stack` uploads it and passes a TemplateURL, as `sam deploy`
does. These tests check the limit is really exceeded, the bucket it makes and what it holds.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid

import boto3
import pytest
from helpers import ROOT

from deploy.errors import InvalidInput
from deploy.stack import template
from deploy.stack.templates import BODY_LIMIT, TemplateBucket, bucket_name


def test_the_rendered_stack_is_over_the_inline_limit_so_the_bucket_is_needed():
    body = json.dumps(template.render(template.load()))
    assert len(body.encode()) > BODY_LIMIT


def test_a_plan_uploads_the_template_once_to_a_private_encrypted_expiring_bucket(aws_env):
    name = f"s-{uuid.uuid4().hex[:8]}"
    env = {**aws_env, "AWS_DEFAULT_REGION": "us-east-1"}
    for _ in range(2):  # the same template twice: one object
        result = subprocess.run([str(ROOT / "scripts/stack"), "plan", "--stack-name", name, "--param",
                                 f"EnvironmentName=t{name[2:]}"], capture_output=True, text=True, env=env,
                                cwd=ROOT, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
    s3 = boto3.client("s3")
    bucket = bucket_name("123456789012", "us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{name}/").get("Contents", [])]
    body = json.dumps(template.render(template.load()))
    assert keys == [f"{name}/{hashlib.sha256(body.encode()).hexdigest()}.json"]
    assert s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read().decode() == body
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    (lifecycle,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert lifecycle["Expiration"]["Days"] == 30 and lifecycle["Status"] == "Enabled"


def test_a_small_template_stays_inline_and_makes_no_bucket(aws_env):
    templates = TemplateBucket(boto3.client("s3"), boto3.client("sts"), "us-east-1",
                               name=f"never-{uuid.uuid4().hex[:8]}")
    assert templates.source("s", '{"Resources": {}}') == {"TemplateBody": '{"Resources": {}}'}
    buckets = [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
    assert templates.name not in buckets


def test_without_a_templates_bucket_an_oversized_template_is_refused_before_any_call():
    from deploy.stack.deployer import Stacks

    class NoStack:
        def stack(self, name):
            return None

        def create_change_set(self, **kwargs):
            raise AssertionError("no change set may be made")

    with pytest.raises(InvalidInput, match="over CloudFormation's 51,200 for an inline template"):
        Stacks(NoStack(), log=lambda line: None).plan("s", "x" * (BODY_LIMIT + 1), {}, change_set="c")
