"""The stack deploy's state machine, driven by botocore's Stubber with CloudFormation's real shapes.

moto cannot show a busy stack, a failed update rolled back, a failed rollback or a cancelled update;
the Stubber answers exactly what CloudFormation answers in those states (its responses are checked
against botocore's CloudFormation model), and the deployer must turn each into its exit code.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.stub import ANY, Stubber

from deploy.stack.cloudformation import CloudFormation
from deploy.stack.deployer import Change, Plan, Stacks
from model.exit_codes import ExitCode

NOW = datetime(2026, 12, 2, tzinfo=UTC)
STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1"


@pytest.fixture
def cfn():
    import boto3

    client = boto3.client("cloudformation", region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def stacks_of(client, lines=None, interrupt_after=None):
    calls = [0]

    def sleep(_):
        calls[0] += 1
        if interrupt_after is not None and calls[0] == interrupt_after:
            raise KeyboardInterrupt

    return Stacks(CloudFormation(client), log=(lines if lines is not None else []).append,
                  clock=lambda: 0.0, sleep=sleep)


def stack(status, outputs=None, parameters=None):
    body = {"StackName": "s", "StackId": STACK_ID, "CreationTime": NOW, "StackStatus": status}
    if outputs:
        body["Outputs"] = [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]
    if parameters:
        body["Parameters"] = [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]
    return {"Stacks": [body]}


def change_set(status, execution="AVAILABLE", reason=None, changes=()):
    body = {"ChangeSetName": "c", "StackName": "s", "Status": status, "ExecutionStatus": execution,
            "Changes": [{"Type": "Resource", "ResourceChange": change} for change in changes]}
    if reason:
        body["StatusReason"] = reason
    return body


def event(logical_id, status, reason):
    return {"StackId": STACK_ID, "EventId": logical_id + status, "StackName": "s", "Timestamp": NOW,
            "LogicalResourceId": logical_id, "ResourceStatus": status, "ResourceStatusReason": reason}


def expect_stack(stubber, status, **kwargs):
    stubber.add_response("describe_stacks", stack(status, **kwargs), {"StackName": "s"})


def expect_execution_of_an_update(stubber):
    """A reviewed change set that can run, on a stable stack, executed."""
    stubber.add_response("describe_change_set", change_set("CREATE_COMPLETE"),
                         {"StackName": "s", "ChangeSetName": "c"})
    expect_stack(stubber, "UPDATE_COMPLETE")
    stubber.add_response("execute_change_set", {}, {"StackName": "s", "ChangeSetName": "c"})


def test_a_busy_stack_is_exit_14_and_nothing_is_made(cfn):
    client, stubber = cfn
    expect_stack(stubber, "UPDATE_IN_PROGRESS")
    with pytest.raises(Exception) as error:
        stacks_of(client).plan("s", "{}", {}, change_set="c")
    assert error.value.exit_code == ExitCode.STACK_BUSY and "UPDATE_IN_PROGRESS" in str(error.value)


def test_a_rolled_back_creation_must_be_deleted_first(cfn):
    client, stubber = cfn
    expect_stack(stubber, "ROLLBACK_COMPLETE")
    with pytest.raises(Exception) as error:
        stacks_of(client).plan("s", "{}", {}, change_set="c")
    assert error.value.exit_code == ExitCode.STACK_FAILED and "scripts/stack destroy" in str(error.value)


def test_an_empty_change_set_is_deleted_and_exit_16(cfn):
    client, stubber = cfn
    expect_stack(stubber, "UPDATE_COMPLETE", parameters={"DesiredCount": "2"})
    stubber.add_response("create_change_set", {"Id": "cs-1"}, {
        "StackName": "s", "ChangeSetName": "c", "ChangeSetType": "UPDATE", "TemplateBody": "{}",
        "Capabilities": ["CAPABILITY_NAMED_IAM"], "Description": ANY,
        # A parameter not given keeps its previous value, not the template's default.
        "Parameters": [{"ParameterKey": "DesiredCount", "UsePreviousValue": True}]})
    stubber.add_response("describe_change_set", change_set(
        "FAILED", "UNAVAILABLE", "The submitted information didn't contain changes. Submit different "
        "information to create a change set."), {"StackName": "s", "ChangeSetName": "c"})
    stubber.add_response("delete_change_set", {}, {"StackName": "s", "ChangeSetName": "c"})
    with pytest.raises(Exception) as error:
        stacks_of(client).plan("s", "{}", {}, change_set="c")
    assert error.value.exit_code == ExitCode.NO_CHANGES


def test_a_failed_update_rolled_back_by_cloudformation_is_exit_12_with_the_first_failure(cfn):
    client, stubber = cfn
    expect_execution_of_an_update(stubber)
    for status in ("UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"):
        expect_stack(stubber, status)
    stubber.add_response("describe_stack_events", {"StackEvents": [
        event("s", "UPDATE_ROLLBACK_COMPLETE", ""),
        event("Service", "UPDATE_FAILED", "Resource update cancelled"),
        event("TaskDefinition", "UPDATE_FAILED", "Invalid memory for cpu 256"),
    ]}, {"StackName": "s"})
    lines = []
    with pytest.raises(Exception) as error:
        stacks_of(client, lines).execute("s", "c")
    assert error.value.exit_code == ExitCode.ROLLED_BACK
    assert "rolled it back (UPDATE_ROLLBACK_COMPLETE): TaskDefinition: Invalid memory" in str(error.value)
    assert "waiting: stack s is UPDATE_ROLLBACK_IN_PROGRESS" in lines


def test_a_failed_rollback_is_exit_13(cfn):
    client, stubber = cfn
    expect_execution_of_an_update(stubber)
    expect_stack(stubber, "UPDATE_ROLLBACK_FAILED")
    stubber.add_response("describe_stack_events", {"StackEvents": [
        event("Bucket", "UPDATE_FAILED", "bucket not empty")]}, {"StackName": "s"})
    with pytest.raises(Exception) as error:
        stacks_of(client).execute("s", "c")
    assert error.value.exit_code == ExitCode.ROLLBACK_FAILED and "bucket not empty" in str(error.value)


def test_an_interrupted_update_is_cancelled_and_rolled_back(cfn):
    client, stubber = cfn
    expect_execution_of_an_update(stubber)
    expect_stack(stubber, "UPDATE_IN_PROGRESS")  # then Ctrl-C while sleeping
    stubber.add_response("cancel_update_stack", {}, {"StackName": "s"})
    expect_stack(stubber, "UPDATE_ROLLBACK_COMPLETE")
    with pytest.raises(Exception) as error:
        stacks_of(client, interrupt_after=1).execute("s", "c")
    assert error.value.exit_code == ExitCode.ROLLED_BACK
    assert "the update was cancelled and the stack is UPDATE_ROLLBACK_COMPLETE" in str(error.value)


def test_a_change_set_that_cannot_run_is_refused_before_anything(cfn):
    client, stubber = cfn
    stubber.add_response("describe_change_set", change_set("CREATE_COMPLETE", "OBSOLETE"),
                         {"StackName": "s", "ChangeSetName": "c"})
    with pytest.raises(Exception) as error:
        stacks_of(client).execute("s", "c")
    assert error.value.exit_code == ExitCode.STACK_FAILED and "OBSOLETE" in str(error.value)


def test_success_answers_the_outputs(cfn):
    client, stubber = cfn
    expect_execution_of_an_update(stubber)
    expect_stack(stubber, "UPDATE_COMPLETE", outputs={"ServiceUrl": "http://alb"})
    assert stacks_of(client).execute("s", "c") == {"ServiceUrl": "http://alb"}


def test_the_plan_reads_as_a_table():
    plan = Plan("s", "plan-1", "UPDATE", [
        Change("Modify", "TaskDefinition", "AWS::ECS::TaskDefinition", "True"),
        Change("Modify", "Service", "AWS::ECS::Service", "False"),
        Change("Add", "Queue", "AWS::SQS::Queue", ""),
    ])
    assert plan.describe() == [
        "change set plan-1 of stack s (UPDATE): 3 change(s), 1 replacement(s)",
        "  action  resource        type                      replacement",
        "  Modify  TaskDefinition  AWS::ECS::TaskDefinition  True",
        "  Modify  Service         AWS::ECS::Service         False",
        "  Add     Queue           AWS::SQS::Queue           -",
    ]
