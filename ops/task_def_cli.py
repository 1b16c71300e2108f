"""`scripts/register-task-def`: render ecs/task-def.json with an image and a model version; register it.

    scripts/register-task-def --image repo@sha256:... --model-version V [--dry-run]

Placeholders are filled from the environment (ops.deploy_settings); an unfilled one is an error (exit 5).
Prints the rendered JSON with --dry-run, else the registered revision's ARN.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ops.deploy_errors import DeployError, InvalidInput


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    """Arguments (defaults from ops.deploy_settings)."""
    from ops.deploy_settings import settings

    env = settings()
    parser = argparse.ArgumentParser(prog="scripts/register-task-def", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--template", type=Path, default=Path("ecs/task-def.json"))
    parser.add_argument("--image", required=True, help="image, preferably repo@sha256:... (immutable)")
    parser.add_argument("--model-version", default="",
                        help="pin this model version (empty: tasks follow MODEL_ALIAS at start-up)")
    parser.add_argument("--region", default=env["AWS_REGION"])
    parser.add_argument("--dry-run", action="store_true", help="print the rendered definition only")
    return parser, env


def main(argv: list[str] | None = None) -> int:
    """Render, validate and (unless --dry-run) register; one-line errors."""
    from ops.deploy_settings import template_values
    from ops.task_def import is_digest_ref, render_file

    parser, env = build_parser()
    args = parser.parse_args(argv)
    try:
        values = {**template_values(env), "AWS_REGION": args.region, "IMAGE": args.image,
                  "MODEL_VERSION": args.model_version}
        definition = render_file(args.template, values)
        if not is_digest_ref(args.image):
            print(f"warning: {args.image} is not pinned by digest", file=sys.stderr)
        if args.dry_run:
            print(json.dumps(definition, indent=2))
            return 0
        if not args.region:
            raise InvalidInput("no AWS region: pass --region or set AWS_REGION")
        from ops.aws import client
        from ops.ecs import EcsClient

        registered = EcsClient(client("ecs", args.region)).register_task_definition(definition)
        print(registered["taskDefinitionArn"])
        return 0
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
