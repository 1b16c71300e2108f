"""Deploy tooling users run against AWS: the image, ECR, task definitions, rollouts and their checks.

Product code: it never imports `standin` (the laptop stand-in for AWS and Jenkins); the import rule
in pyproject.toml ([tool.importlinter]) is checked by `make test`.
"""
