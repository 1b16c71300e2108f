"""The scoring side of the stack: the predictions table always, the function, its queue, rule and
dead-letter queue with a ScoreImage; read from the rendered template and deployed into moto.

The upload rule is proven as the training rules are (tests/test_train_rules.py): real S3 "Object
Created" documents are put on the bus and a queue swapped in as the rule's target shows which pass.
"""

from __future__ import annotations

import json
import uuid

import pytest
from test_stack_iam import allows, statements
from test_train_rules import deploy, put, received, s3_created

from deploy.stack.template import load, render

SCORING = ("ScoreDeadLetterQueue", "ScoreQueue", "ScoreQueuePolicy", "ScoreOnUploadRule", "ScoreLogGroup",
           "ScoreRole", "ScoreFunction", "ScoreSource")


@pytest.fixture(scope="module")
def rendered():
    return render(load())


@pytest.fixture(scope="module")
def env(moto_endpoint):
    import os

    return {**os.environ, "AWS_ENDPOINT_URL": moto_endpoint, "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def scoring(env):
    """A stack deployed with a scoring image (by digest, in its own repository)."""
    suffix = uuid.uuid4().hex[:8]
    image = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/x{suffix}-model-service@sha256:{'a' * 64}"
    deployed = deploy(env, f"ScoreImage={image}", "ScoreIdColumn=customer_id")
    return {**deployed, "image": image}


def test_the_function_and_its_plumbing_exist_only_with_a_score_image(rendered):
    resources = rendered["Resources"]
    assert "Condition" not in resources["PredictionsTable"]
    for name in SCORING:
        assert resources[name]["Condition"] == "HasScoreImage", name
    assert rendered["Outputs"]["ScoreDeadLetterQueueUrl"]["Condition"] == "HasScoreImage"


def test_the_table_keeps_predictions_and_is_keyed_for_exactly_once(rendered):
    table = rendered["Resources"]["PredictionsTable"]
    assert table["DeletionPolicy"] == "Retain" and table["UpdateReplacePolicy"] == "Retain"
    properties = table["Properties"]
    assert properties["KeySchema"] == [{"AttributeName": "PK", "KeyType": "HASH"},
                                       {"AttributeName": "SK", "KeyType": "RANGE"}]
    (index,) = properties["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by-day" and [k["AttributeName"] for k in index["KeySchema"]] == [
        "GSI1PK", "GSI1SK"]
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_the_scoring_role_reads_uploads_and_models_writes_the_table_and_nothing_more(rendered):
    role = statements(rendered, "ScoreRole", "score-uploads")
    assert allows(role, "s3:GetObject") and allows(role, "dynamodb:PutItem")
    assert allows(role, "dynamodb:UpdateItem") and allows(role, "dynamodb:ConditionCheckItem")
    # the done marker is read before scoring, and the upload by the version the event names
    assert allows(role, "dynamodb:GetItem") and allows(role, "s3:GetObjectVersion")
    for refused in ("s3:PutObject", "s3:DeleteObject", "dynamodb:DeleteItem", "dynamodb:Scan",
                    "ecs:RunTask", "iam:PassRole"):
        assert not allows(role, refused), refused
    reads = next(s for s in role if s["Sid"] == "ReadUploadsAndModels")["Resource"]
    assert json.dumps(reads).count("${ScorePrefix}/*") == 1
    assert json.dumps(reads).count("${StorePrefix}/*") == 1
    # The pipelines never read or write predictions: people do, with rights of their own (docs/ecs.md).
    deployer = statements(rendered, "DeployerPolicy")
    assert not allows(deployer, "dynamodb:Query") and not allows(deployer, "dynamodb:PutItem")


def test_without_a_score_image_only_the_table_is_deployed(env):
    deployed = deploy(env)
    resources = deployed["aws"]["cloudformation"].list_stack_resources(StackName=deployed["stack"])[
        "StackResourceSummaries"]
    kinds = {r["LogicalResourceId"]: r["ResourceType"] for r in resources}
    assert kinds["PredictionsTable"] == "AWS::DynamoDB::Table"
    assert not set(SCORING) & set(kinds)
    assert deployed["outputs"]["PredictionsTable"] and "ScoreDeadLetterQueueUrl" not in deployed["outputs"]


def test_the_deployed_function_runs_the_image_with_the_table_and_dead_letter_queue(scoring):
    configuration = scoring["aws"]["lambda"].get_function(FunctionName=f"{scoring['environment']}-score")
    # moto keeps neither PackageType nor ImageUri from CloudFormation: the template says them.
    function = render(load())["Resources"]["ScoreFunction"]["Properties"]
    assert function["PackageType"] == "Image" and function["Code"] == {"ImageUri": {"Ref": "ScoreImage"}}
    variables = configuration["Configuration"]["Environment"]["Variables"]
    outputs = scoring["outputs"]
    assert variables["PREDICTIONS_TABLE"] == outputs["PredictionsTable"]
    assert variables["DEAD_LETTER_QUEUE_URL"].endswith(f"/{scoring['environment']}-score-dead-letters")
    assert variables["MODEL_STORE"] == outputs["ModelStore"] and variables["SCORE_PREFIX"] == "score"
    assert variables["ID_COLUMN"] == "customer_id"
    mappings = scoring["aws"]["lambda"].list_event_source_mappings(
        FunctionName=f"{scoring['environment']}-score")["EventSourceMappings"]
    (mapping,) = mappings
    assert mapping["EventSourceArn"].endswith(f":{scoring['environment']}-score-uploads")
    assert mapping["BatchSize"] == 1


def test_the_upload_rule_sends_objects_under_the_score_prefix_of_this_bucket_only(scoring):
    events, sqs = scoring["aws"]["events"], scoring["aws"]["sqs"]
    name = f"{scoring['environment']}-score-on-upload"
    (target,) = events.list_targets_by_rule(Rule=name)["Targets"]
    assert target["Arn"].endswith(f":{scoring['environment']}-score-uploads")
    # Observe through a queue of our own (moto would try to run the function on its own queue).
    url = sqs.create_queue(QueueName=f"observe-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.remove_targets(Rule=name, Ids=[target["Id"]])
    events.put_targets(Rule=name, Targets=[{"Id": "observe", "Arn": arn}])

    bucket = scoring["outputs"]["BucketName"]
    cases = {
        "an upload to score": (bucket, "score/2026-12-01/export.csv", True),
        "json lines": (bucket, "score/export.jsonl", True),
        "training data": (bucket, "data/digits/2026-12-01.csv", False),
        "a published model": (bucket, "models/digits/versions/v/model.joblib", False),
        "a prefix that only starts with score": (bucket, "scores/export.csv", False),
        "another bucket": (f"{bucket}-other", "score/export.csv", False),
    }
    for bucket_name, key, _ in cases.values():
        put(scoring, "aws.s3", "Object Created", s3_created(bucket_name, key),
            [f"arn:aws:s3:::{bucket_name}"])
    got = {(e["detail"]["bucket"]["name"], e["detail"]["object"]["key"]) for e in received(scoring, url)}
    assert got == {(b, k) for b, k, match in cases.values() if match}
