"""`scripts/stack`: the AWS side of the project as one CloudFormation stack (infra/stack.yaml).

    scripts/stack plan     show the change set a deploy would make (--out DIR keeps it for review)
    scripts/stack deploy   create or update the stack and wait; print its outputs
    scripts/stack destroy  delete it (refused while the store holds model versions, unless --force)
    scripts/stack outputs  the outputs, or as the deploy variables (--format env)
    scripts/stack render   the template with the container definition from ecs/task-def.json
    scripts/stack smoke    the service URL answers /ready, /model and a prediction

A deploy keeps what the service runs: unless --param Image=... or ModelVersion=... is given, the
image and model of the service's current revision are passed on (a rollout moves them, not the
stack). Parameters not given keep their previous values on an update.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from deploy.errors import InvalidInput, NoChanges, ToolError, run_command
from model.exit_codes import text_table

DEFAULT_STACK = "mlops"


def say(line: str) -> None:
    """One progress line on stdout, flushed."""
    print(f"stack: {line}", flush=True)


def build_parser() -> argparse.ArgumentParser:
    """Arguments of every subcommand."""
    from deploy.settings import settings

    region = settings()["AWS_REGION"]
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--stack-name", default=os.environ.get("STACK_NAME") or DEFAULT_STACK,
                        help="the stack (default $STACK_NAME or %(default)s)")
    common.add_argument("--region", default=region, help="AWS region (default $AWS_REGION)")
    params = argparse.ArgumentParser(add_help=False)
    params.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a template parameter (repeat); see infra/stack.yaml for the list")
    params.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds to wait for CloudFormation (default %(default)s)")
    parser = argparse.ArgumentParser(prog="scripts/stack", description=__doc__, epilog=text_table(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    each = {"epilog": text_table(), "formatter_class": argparse.RawDescriptionHelpFormatter}

    empty = argparse.ArgumentParser(add_help=False)
    empty.add_argument("--no-fail-on-empty-changeset", action="store_true",
                       help="exit 0, not 16, when the stack already matches")
    p = sub.add_parser("plan", parents=[common, params, empty], **each,
                       help="show the change set a deploy makes")
    p.add_argument("--out", type=Path,
                   help="write plan.json and plan.txt here and keep the change set for `deploy --plan`")
    p.add_argument("--change-set", help="name the change set (default plan-<UTC time>)")

    p = sub.add_parser("deploy", parents=[common, params, empty], **each,
                       help="create or update; wait; outputs")
    p.add_argument("--plan", type=Path, dest="plan_file",
                   help="execute the change set a `plan --out` kept (what was reviewed), as it is")

    p = sub.add_parser("destroy", parents=[common], **each, help="delete the stack and wait")
    p.add_argument("--force", action="store_true", help="also when the store holds model versions")
    p.add_argument("--yes", action="store_true", help="do not ask for the stack name")
    p.add_argument("--timeout", type=float, default=3600.0)

    p = sub.add_parser("outputs", parents=[common], **each, help="the stack's outputs")
    p.add_argument("--format", choices=["text", "json", "env"], default="text",
                   help="env: `export VARIABLE=value` lines of the deploy variables (default %(default)s)")

    p = sub.add_parser("render", **each, help="print the rendered template (JSON)")
    p.add_argument("--out", type=Path, help="write it here instead")

    p = sub.add_parser("smoke", parents=[common], **each, help="check the service URL answers")
    p.add_argument("--url", help="the service URL (default: the stack's ServiceUrl output)")
    p.add_argument("--timeout", type=float, default=300.0)
    return parser


def _clients(region: str | None):
    from deploy.aws import client
    from deploy.stack.cloudformation import CloudFormation
    from deploy.stack.deployer import Stacks
    from deploy.stack.templates import TemplateBucket

    cfn = client("cloudformation", region)
    templates = TemplateBucket(client("s3", region), client("sts", region), cfn.meta.region_name)
    return Stacks(CloudFormation(cfn), log=say, templates=templates), region


def _template_and_parameters(args) -> tuple[str, dict[str, str]]:
    from deploy.stack import parameters, template

    loaded = template.load()
    given = parameters.check(loaded, parameters.parse_assignments(args.param))
    return json.dumps(template.render(loaded)), given


def _keep_running_unit(stacks, args, given: dict[str, str]) -> dict[str, str]:
    """Pass the service's running image and model on, unless the caller chose them."""
    if "Image" in given or "ModelVersion" in given:
        return given
    current = stacks.cfn.stack(args.stack_name)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in (current or {}).get("Outputs", [])}
    if not {"ClusterName", "ServiceName"} <= outputs.keys():
        return given
    from deploy.aws import client
    from deploy.ecs import EcsClient
    from deploy.task_def import pinned_unit

    ecs = EcsClient(client("ecs", args.region))
    service = ecs.describe_service(outputs["ClusterName"], outputs["ServiceName"])
    image, version = pinned_unit(ecs.describe_task_definition(service.task_definition))
    if image.endswith(":none"):  # the placeholder of a stack deployed before any image
        return given
    say(f"keeping what the service runs: image {image}, model {version or '(follows the alias)'}")
    return {**given, "Image": image, "ModelVersion": version or ""}


def _keep_training_image(stacks, args, given: dict[str, str]) -> dict[str, str]:
    """Pass the training family's newest image on (a push registered it), unless the caller chose one.

    The trigger registers a revision with each pushed training image; an update that re-rendered the
    family from an empty TrainImage would make the placeholder the newest revision again."""
    if "TrainImage" in given:
        return given
    current = stacks.cfn.stack(args.stack_name)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in (current or {}).get("Outputs", [])}
    if "TrainTaskFamily" not in outputs:
        return given
    from deploy.aws import client
    from deploy.ecs import EcsClient
    from deploy.errors import DeployError
    from deploy.training.runner import CONTAINER

    try:
        ecs = EcsClient(client("ecs", args.region))
        definition = ecs.describe_task_definition(outputs["TrainTaskFamily"])
    except DeployError:  # no revision (yet): nothing to keep
        return given
    image = next((c.get("image", "") for c in definition.get("containerDefinitions", [])
                  if c.get("name") == CONTAINER), "")
    if not image or image.endswith(":train-none"):  # the placeholder of a stack with no training image
        return given
    say(f"keeping the training image: {image}")
    return {**given, "TrainImage": image}


def plan(args) -> None:
    stacks, _ = _clients(args.region)
    body, given = _template_and_parameters(args)
    given = _keep_running_unit(stacks, args, given)
    given = _keep_training_image(stacks, args, given)
    name = args.change_set or datetime.now(UTC).strftime("plan-%Y%m%dT%H%M%SZ")
    try:
        made = stacks.plan(args.stack_name, body, given, change_set=name)
    except NoChanges as exc:
        if args.out:  # a plan file that says "nothing to do", for `deploy --plan`
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "plan.json").write_text(json.dumps({"stack": args.stack_name, "change_set": None,
                                                            "changes": []}, indent=2) + "\n")
            (args.out / "plan.txt").write_text(f"{exc}\n")
        if not args.no_fail_on_empty_changeset:
            raise
        say(str(exc))
        return
    for line in made.describe():
        say(line)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "plan.json").write_text(json.dumps(made.to_json(), indent=2) + "\n")
        (args.out / "plan.txt").write_text("\n".join(made.describe()) + "\n")
        say(f"kept change set {made.change_set} for review: {args.out / 'plan.json'}; apply it with "
            f"scripts/stack deploy --plan {args.out / 'plan.json'}")
    else:
        stacks.discard(made)
        say("plan only: change set deleted")


def deploy(args) -> None:
    stacks, _ = _clients(args.region)
    if args.plan_file:
        if args.param:
            raise InvalidInput("--plan executes a reviewed change set as it is: no --param with it")
        name = _planned_change_set(args.plan_file, args.stack_name)
        if name is None:
            if not args.no_fail_on_empty_changeset:
                raise NoChanges(f"the plan {args.plan_file} has no changes: nothing to deploy")
            say(f"the plan {args.plan_file} has no changes: nothing to do")
            _print_outputs(stacks, args.stack_name)
            return
    else:
        body, given = _template_and_parameters(args)
        given = _keep_running_unit(stacks, args, given)
        given = _keep_training_image(stacks, args, given)
        name = datetime.now(UTC).strftime("deploy-%Y%m%dT%H%M%SZ")
        try:
            made = stacks.plan(args.stack_name, body, given, change_set=name)
        except NoChanges:
            if not args.no_fail_on_empty_changeset:
                raise
            say(f"stack {args.stack_name} already matches: nothing to do")
            _print_outputs(stacks, args.stack_name)
            return
        for line in made.describe():
            say(line)
    outputs = stacks.execute(args.stack_name, name, timeout=args.timeout)
    for key, value in sorted(outputs.items()):
        print(f"{key}: {value}")


def _planned_change_set(path: Path, stack: str) -> str | None:
    """The change set a plan file names (None: the plan had no changes)."""
    try:
        planned = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read the plan {path}: {exc}") from None
    if planned.get("stack") != stack:
        raise InvalidInput(f"the plan {path} is for stack {planned.get('stack')!r}, not {stack!r}")
    return planned.get("change_set")


def _print_outputs(stacks, stack: str) -> None:
    current = stacks.cfn.stack(stack) or {}
    for output in sorted(current.get("Outputs", []), key=lambda o: o["OutputKey"]):
        print(f"{output['OutputKey']}: {output['OutputValue']}")


def destroy(args) -> None:
    from deploy.aws import client
    from deploy.stack.bucket import ModelBucket

    stacks, _ = _clients(args.region)
    current = stacks.cfn.stack(args.stack_name)
    if current is None:
        say(f"stack {args.stack_name} does not exist: nothing to destroy")
        return
    if not args.yes:
        if not sys.stdin.isatty():
            raise InvalidInput("destroy deletes the environment: pass --yes (no terminal to ask on)")
        answer = input(f"type the stack name ({args.stack_name}) to delete it: ")
        if answer.strip() != args.stack_name:
            raise InvalidInput("not confirmed: nothing deleted")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in current.get("Outputs", [])}
    store = None
    if outputs.get("BucketName"):
        store = ModelBucket(client("s3", args.region), outputs["BucketName"], outputs.get("ModelStore", ""))
    stacks.destroy(args.stack_name, store=store, force=args.force, timeout=args.timeout)


def outputs_command(args) -> None:
    from deploy.errors import ResourceNotFound
    from deploy.settings import from_stack_outputs

    stacks, _ = _clients(args.region)
    current = stacks.cfn.stack(args.stack_name)
    if current is None:
        raise ResourceNotFound(f"stack {args.stack_name} does not exist (scripts/stack deploy creates it)")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in current.get("Outputs", [])}
    if args.format == "json":
        print(json.dumps(outputs, indent=2, sort_keys=True))
    elif args.format == "env":
        import shlex

        for variable, value in from_stack_outputs(outputs).items():
            print(f"export {variable}={shlex.quote(value)}")
    else:
        for key, value in sorted(outputs.items()):
            print(f"{key}: {value}")


def render_command(args) -> None:
    from deploy.stack.template import render_text

    text = render_text()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    else:
        print(text)


def smoke(args) -> None:
    from deploy.image import http_json

    url = args.url
    if not url:
        stacks, _ = _clients(args.region)
        current = stacks.cfn.stack(args.stack_name) or {}
        url = {o["OutputKey"]: o["OutputValue"] for o in current.get("Outputs", [])}.get("ServiceUrl")
        if not url:
            raise InvalidInput(f"stack {args.stack_name} has no ServiceUrl output (pass --url)")
    deadline = time.monotonic() + args.timeout
    status = None
    while time.monotonic() < deadline:
        try:
            status, _ = http_json(f"{url}/ready")
        except OSError:
            status = None
        if status == 200:
            break
        time.sleep(2)
    else:
        raise ToolError(f"{url}/ready did not answer 200 within {args.timeout:g}s (last: {status})")
    _, manifest = http_json(f"{url}/model")
    status, answer = http_json(f"{url}/predict", {"instances": [manifest.get("example")]})
    if status != 200 or len(answer.get("predictions", [])) != 1:
        raise ToolError(f"POST {url}/predict answered {status}: {json.dumps(answer)[:200]}")
    say(f"{url} serves {manifest.get('name')} {manifest.get('version')}: predicted "
        f"{answer['predictions'][0]['label']!r}")


COMMANDS = {"plan": plan, "deploy": deploy, "destroy": destroy, "outputs": outputs_command,
            "render": render_command, "smoke": smoke}


def main(argv: list[str] | None = None) -> int:
    """One line `error: ...` and a code from model/exit_codes.py on failure."""
    args = build_parser().parse_args(argv)
    return run_command(lambda: COMMANDS[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
