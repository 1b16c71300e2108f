"""CloudFormation in a thin client: one method per API call, botocore errors become DeployErrors."""

from __future__ import annotations

from deploy.aws import aws_errors


class CloudFormation:
    """The calls `scripts/stack` makes; the boto3 client is passed in."""

    def __init__(self, boto_client):
        self.boto = boto_client

    def stack(self, name: str) -> dict | None:
        """The stack, or None if there is none (or only a deleted one) by that name."""
        from botocore.exceptions import ClientError

        with aws_errors(f"describe stack {name}"):
            try:
                stacks = self.boto.describe_stacks(StackName=name)["Stacks"]
            except ClientError as exc:
                if "does not exist" in exc.response.get("Error", {}).get("Message", ""):
                    return None
                raise
        live = [s for s in stacks if s.get("StackStatus") != "DELETE_COMPLETE"]
        return live[0] if live else None

    def create_change_set(self, **kwargs) -> dict:
        with aws_errors(f"create change set {kwargs.get('ChangeSetName')}"):
            return self.boto.create_change_set(**kwargs)

    def change_set(self, stack: str, name: str) -> dict:
        """The change set with all its changes (every page)."""
        with aws_errors(f"describe change set {name}"):
            answer = self.boto.describe_change_set(StackName=stack, ChangeSetName=name)
            changes = list(answer.get("Changes", []))
            while answer.get("NextToken"):
                answer = self.boto.describe_change_set(StackName=stack, ChangeSetName=name,
                                                       NextToken=answer["NextToken"])
                changes += answer.get("Changes", [])
        return {**answer, "Changes": changes}

    def delete_change_set(self, stack: str, name: str) -> None:
        with aws_errors(f"delete change set {name}"):
            self.boto.delete_change_set(StackName=stack, ChangeSetName=name)

    def execute_change_set(self, stack: str, name: str) -> None:
        with aws_errors(f"execute change set {name}"):
            self.boto.execute_change_set(StackName=stack, ChangeSetName=name)

    def events(self, stack: str) -> list[dict]:
        """The stack's events, newest first (the first page: the latest operation's)."""
        with aws_errors(f"describe events of {stack}"):
            return self.boto.describe_stack_events(StackName=stack).get("StackEvents", [])

    def delete_stack(self, stack: str) -> None:
        with aws_errors(f"delete stack {stack}"):
            self.boto.delete_stack(StackName=stack)

    def cancel_update(self, stack: str) -> None:
        with aws_errors(f"cancel the update of {stack}"):
            self.boto.cancel_update_stack(StackName=stack)
