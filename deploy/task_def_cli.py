"""`scripts/register-task-def`: render ecs/task-def.json with an image and a model version; register it.

    scripts/register-task-def --image repo@sha256:... --model-version V [--dry-run]

Placeholders are filled from the environment (deploy.settings); an unfilled one is an error (exit 9).
Prints the rendered JSON with --dry-run, else the registered revision's ARN.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deploy.errors import InvalidInput, run_command
from model.exit_codes import text_table


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    """Arguments (defaults from deploy.settings)."""
    from deploy.settings import settings

    env = settings()
    parser = argparse.ArgumentParser(prog="scripts/register-task-def", description=__doc__,
                                     epilog=text_table(),
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
    parser, env = build_parser()
    args = parser.parse_args(argv)
    return run_command(lambda: register(args, env))


def register(args, env: dict) -> None:
    """Render the template with the arguments; print it (--dry-run) or register it and print the ARN."""
    from deploy.settings import template_values
    from deploy.task_def import is_digest_ref, render_file

    values = {**template_values(env), "AWS_REGION": args.region, "IMAGE": args.image,
              "MODEL_VERSION": args.model_version}
    definition = render_file(args.template, values)
    if not is_digest_ref(args.image):
        print(f"warning: {args.image} is not pinned by digest", file=sys.stderr)
    if args.dry_run:
        print(json.dumps(definition, indent=2))
        return
    if not args.region:
        raise InvalidInput("no AWS region: pass --region or set AWS_REGION")
    from deploy.aws import client
    from deploy.ecs import EcsClient

    registered = EcsClient(client("ecs", args.region)).register_task_definition(definition)
    print(registered["taskDefinitionArn"])


if __name__ == "__main__":
    raise SystemExit(main())
