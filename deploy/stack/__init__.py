"""The CloudFormation stack: render infra/stack.yaml, plan and apply change sets, destroy."""
