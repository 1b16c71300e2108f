"""`scripts/rollout ecs|local`: plan, show the plan, execute it under the rollout core.

    scripts/rollout ecs   [--promote V | --model-version V | --model-alias A] [--image repo:tag] ...
    scripts/rollout local --pidfile PATH [--version V | --rollback] ...

Both targets share the order (plan -> move alias -> apply -> wait -> verify), the rollback on any
failure or SIGTERM/SIGINT after the first change, the quality gate on a promotion (`--force`
overrides it, as for `python -m model promote`), and the exit codes below.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deploy.errors import InvalidInput, run_command
from deploy.rollout.core import Rollout
from model.exit_codes import text_table
from model.store import DEFAULT_STORE


def say(line: str) -> None:
    """One progress line on stdout, flushed: a pipeline log shows it as it happens."""
    print(f"rollout: {line}", flush=True)


def _gate_options(parser: argparse.ArgumentParser) -> None:
    from model.gate import DEFAULT_METRIC, DEFAULT_TOLERANCE, METRICS

    gate = parser.add_argument_group("quality gate (a promotion is gated as by `python -m model promote`)")
    gate.add_argument("--gate-metric", default=DEFAULT_METRIC, choices=METRICS)
    gate.add_argument("--gate-tolerance", type=float, default=DEFAULT_TOLERANCE,
                      help="how much worse than the alias's current target is accepted (default %(default)s)")
    gate.add_argument("--force", action="store_true", help="promote even if the gate refuses")
    gate.add_argument("--allow-schema-change", action="store_true",
                      help="promote a version whose inputs or classes differ from what the alias serves")


def _signature_option(parser: argparse.ArgumentParser, env: dict) -> None:
    parser.add_argument("--verify-key", default=env["MODEL_VERIFY_KEY"], metavar="PEM|kms:KEY",
                        help="refuse a model version not signed by this key (default $MODEL_VERIFY_KEY)")


def _gate(args) -> dict:
    return {"metric": args.gate_metric, "tolerance": args.gate_tolerance, "force": args.force,
            "allow_schema_change": args.allow_schema_change}


def build_parser() -> argparse.ArgumentParser:
    """The two targets' arguments (flags default to the variables in deploy.settings)."""
    from deploy.settings import settings

    env = settings()
    parser = argparse.ArgumentParser(prog="scripts/rollout", description=__doc__, epilog=text_table(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="target", required=True, metavar="ecs|local")

    ecs = sub.add_parser("ecs", help="an ECS service: a new revision pinning image digest and model",
                         description=_doc("deploy.rollout.ecs"), epilog=text_table(),
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    where = ecs.add_argument_group("where")
    where.add_argument("--cluster", default=env["ECS_CLUSTER"], help="ECS cluster (default $ECS_CLUSTER)")
    where.add_argument("--service", default=env["ECS_SERVICE"], help="ECS service (default $ECS_SERVICE)")
    where.add_argument("--region", default=env["AWS_REGION"], help="AWS region (default $AWS_REGION)")
    where.add_argument("--service-url", default=env["SERVICE_URL"],
                       help="base URL to verify GET /model through (default $SERVICE_URL; none: no verify)")
    model = ecs.add_argument_group("model (at most one; none keeps the running model)")
    model.add_argument("--model-version", help="pin this version")
    model.add_argument("--model-alias", help="resolve this alias (e.g. production) and pin its version")
    model.add_argument("--promote", metavar="VERSION", help="move --alias to VERSION (gated), then pin it")
    model.add_argument("--alias", default=env["MODEL_ALIAS"],
                       help="alias --promote moves (default %(default)s)")
    model.add_argument("--follow-alias", action="store_true",
                       help="do not pin: tasks resolve MODEL_ALIAS at start-up (not verifiable)")
    model.add_argument("--store", default=env["MODEL_STORE"], help="model store (default $MODEL_STORE)")
    model.add_argument("--model-name", default=env["MODEL_NAME"], help="model name (default %(default)s)")
    image = ecs.add_argument_group("image (none keeps the running image)")
    image.add_argument("--image", help="repo:tag in ECR, resolved to its digest")
    image.add_argument("--image-digest", help="repo@sha256:... used as is")
    how = ecs.add_argument_group("how")
    how.add_argument("--template", type=Path,
                     help="render this task-definition template (e.g. ecs/task-def.json) instead of "
                          "copying the running revision")
    how.add_argument("--timeout", type=float, default=float(env["ROLLOUT_TIMEOUT"]),
                     help="seconds to wait for the deployment (default %(default)s)")
    how.add_argument("--rollback-timeout", type=float, default=300.0,
                     help="seconds to wait for a rollback to settle; 0: do not wait (default %(default)s)")
    how.add_argument("--poll", type=float, default=10.0, help="seconds between checks (default %(default)s)")
    how.add_argument("--verify-count", type=int, default=3,
                     help="consecutive right answers the verify needs (default %(default)s)")
    how.add_argument("--verify-timeout", type=float, default=120.0, help="(default %(default)s)")
    how.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    _gate_options(ecs)
    _signature_option(ecs, env)

    local = sub.add_parser("local", help="a gunicorn master on this machine (SIGHUP)",
                           description=_doc("deploy.rollout.local"), epilog=text_table(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    local.add_argument("--pidfile", type=Path, required=True, help="the gunicorn master's pidfile")
    local.add_argument("--url", default="http://127.0.0.1:8080", help="the service (default %(default)s)")
    local.add_argument("--store", default=env["MODEL_STORE"] or DEFAULT_STORE,
                       help="model store (default $MODEL_STORE or %(default)s, as `python -m model`)")
    local.add_argument("--name", default=env["MODEL_NAME"], help="model name (default %(default)s)")
    local.add_argument("--alias", default=env["MODEL_ALIAS"],
                       help="the alias the service follows (default %(default)s)")
    which = local.add_mutually_exclusive_group()
    which.add_argument("--version",
                       help="promote this version first (checked and gated before the alias moves)")
    which.add_argument("--rollback", action="store_true",
                       help="move the alias back to its previous version first")
    local.add_argument("--timeout", type=float, default=60.0,
                       help="seconds to wait for the new version (default %(default)s)")
    local.add_argument("--settle", type=float, default=2.0,
                       help="seconds every answer must name the new version (default %(default)s)")
    local.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    _gate_options(local)
    _signature_option(local, env)
    return parser


def _doc(module: str) -> str:
    import importlib

    return importlib.import_module(module).__doc__ or ""


def _plan_ecs(args):
    from deploy.aws import client
    from deploy.ecr import EcrClient
    from deploy.ecs import EcsClient
    from deploy.rollout.ecs import EcsRequest, plan_ecs
    from deploy.settings import settings, template_values

    if not args.cluster or not args.service:
        raise InvalidInput("name the service: --cluster/--service or ECS_CLUSTER/ECS_SERVICE")
    for flag, value in (("--promote", args.promote), ("--model-version", args.model_version),
                        ("--model-alias", args.model_alias), ("--image", args.image)):
        # An empty value (e.g. `--promote "$(cat missing-file)"`) must not mean "keep the model".
        if value is not None and not value.strip():
            raise InvalidInput(f"{flag} was given an empty value")
    if args.verify_count < 1 or args.timeout < 0 or args.poll <= 0:
        raise InvalidInput("--verify-count must be >= 1, --timeout >= 0 and --poll > 0")
    store = _open_store(args.store) if (args.model_version or args.model_alias or args.promote) else None
    request = EcsRequest(
        cluster=args.cluster, service=args.service, model_name=args.model_name,
        model_version=args.model_version, model_alias=args.model_alias, promote=args.promote,
        alias=args.alias, gate=_gate(args), verify_key=args.verify_key, follow_alias=args.follow_alias,
        image=args.image,
        image_digest=args.image_digest, template=args.template,
        template_values={**template_values(settings()), "AWS_REGION": args.region,
                         "MODEL_STORE": args.store, "MODEL_NAME": args.model_name},
        service_url=args.service_url, timeout=args.timeout, rollback_timeout=args.rollback_timeout,
        poll=args.poll, verify_consecutive=args.verify_count, verify_timeout=args.verify_timeout,
    )
    ecr = EcrClient(client("ecr", args.region)) if args.image else None
    target, move = plan_ecs(request, EcsClient(client("ecs", args.region)), ecr, store, log=say)
    return target, move, store


def _plan_local(args):
    from deploy.rollout.local import LocalRequest, plan_local, read_master_pid

    if args.timeout <= 0 or args.settle < 0:
        raise InvalidInput("--timeout must be positive and --settle not negative")
    read_master_pid(args.pidfile)  # no server: refused before the store is read
    store = _open_store(args.store)
    request = LocalRequest(pidfile=args.pidfile, store=args.store, name=args.name, alias=args.alias,
                           url=args.url, version=args.version, rollback=args.rollback, gate=_gate(args),
                           verify_key=args.verify_key,
                           timeout=args.timeout, settle=args.settle)
    target, move = plan_local(request, store, log=say)
    return target, move, store


def _open_store(uri: str | None):
    from model.store import ModelStore

    if not uri:
        raise InvalidInput("a model option needs --store or MODEL_STORE")
    return ModelStore(uri)


def run(args) -> None:
    """Plan, print the plan, and (unless --dry-run) execute it."""
    target, move, store = (_plan_ecs if args.target == "ecs" else _plan_local)(args)
    rollout = Rollout(target, store=store, alias_move=move, log=say)
    for line in rollout.describe():
        say(line)
    if args.dry_run:
        say("dry run: nothing changed")
        return
    rollout.execute()
    say("ok: rollout complete")


def main(argv: list[str] | None = None) -> int:
    """One line `error: ...` on stderr and a code from model/exit_codes.py on failure."""
    args = build_parser().parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
