"""The laptop stand-in for AWS, a registry and Jenkins: test and local-run harness, never product.

Product packages (model, service, deploy) never import it: the import-linter contract in
pyproject.toml says so and `make test` checks it. What lives here exists because moto emulates AWS's
APIs but runs no containers and speaks no registry protocol, and because Jenkins is not on a laptop:

    aws.py          a moto server with the stack deployed in it; moto_fixes.py where moto differs from AWS
    ecs_agent.py    runs the task definition an ECS service points at (as ECS's scheduler would)
    task_runner.py  runs the one-off tasks RunTask records (training), their logs into CloudWatch Logs
    lambda_runtime.py  the Lambda Runtime API a container image's runtime client talks to
    registry.py     a real OCI registry on 127.0.0.1; ecr_endpoint.py fronts it with moto's ECR API
    podman.py       podman confined to one folder; base_image.py a debootstrapped Debian base
    images.py       the above put together for a local run's image stages
    jenkins.py      the Jenkinsfile's dry run (dryrun.groovy) and running its stages' steps
    pipeline.py     `scripts/pipeline-local`: both pipelines, end to end
"""
