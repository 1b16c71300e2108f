"""`python -m model`: train, publish, list, show, promote, rollback, verify, resolve.

Every failure is one line on stderr, `error: ...`, and an exit code from model/exit_codes.py
(printed at the end of `--help`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from model.errors import ModelError, UsageError
from model.exit_codes import ExitCode, text_table
from model.store import DEFAULT_ALIAS, DEFAULT_NAME, DEFAULT_STORE


def _settings(args) -> tuple[str, str]:
    # The CLI's only configuration read: flags win over MODEL_STORE / MODEL_NAME.
    for flag, value in (("--store", args.store), ("--name", args.name)):
        if value is not None and not value.strip():
            # `--name ""` (an unset shell variable) must not quietly mean the default model.
            raise UsageError(f"{flag} was given an empty value")
    store = args.store or os.environ.get("MODEL_STORE") or DEFAULT_STORE
    name = args.name or os.environ.get("MODEL_NAME") or DEFAULT_NAME
    return store, name


def _store(args):
    from model.store import ModelStore

    return ModelStore(_settings(args)[0])


def _gate_kwargs(args) -> dict:
    return {
        "alias": args.gate_alias,
        "metric": args.gate_metric,
        "tolerance": args.gate_tolerance,
        "force": args.force,
        "allow_schema_change": args.allow_schema_change,
    }


def _params(pairs: list[str]) -> dict:
    params = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param takes key=value, got {pair!r}")
        params[key] = value
    return params


def _publish(store, artifact: bytes, manifest: dict, args) -> None:
    from model.gate import check_gate

    result = check_gate(store, manifest, **_gate_kwargs(args))
    print(result.describe())
    from model.signing import signer

    store.publish(artifact, manifest, signer=signer(args.sign_key or os.environ.get("MODEL_SIGNING_KEY")))
    print(f"published {manifest['name']} {manifest['version']} to {store.uri}")
    if args.promote:
        moved = store.move_alias(manifest["name"], args.promote, manifest["version"])
        print(f"{args.promote} -> {moved.version} (was {moved.previous or 'unset'})")
    if args.version_file:
        Path(args.version_file).write_text(manifest["version"] + "\n")


def cmd_train(args) -> int:
    from model.artifact import write_candidate
    from model.data import load_dataset
    from model.train import train

    _store_uri, name = _settings(args)
    store = None
    if args.out is None:
        store = _store(args)
        if args.if_empty and store.versions(name):
            print(f"{name} already has versions in {store.uri}; not training (--if-empty)")
            return 0
    dataset = load_dataset(
        args.dataset, label_column=args.label_column, text_column=args.text_column
    )
    print(f"training {name} on {dataset.source} ({dataset.rows} rows, {dataset.kind})")
    artifact, manifest = train(
        dataset, name=name, params=_params(args.param), seed=args.seed, test_size=args.test_size
    )
    metrics = manifest["metrics"]
    print(f"evaluated: accuracy={metrics['accuracy']:.4f} macro_f1={metrics['macro_f1']:.4f}")
    if args.out is not None:
        write_candidate(args.out, artifact, manifest)
        print(f"wrote candidate {manifest['version']} to {args.out}")
        return 0
    _publish(store, artifact, manifest, args)
    return 0


def cmd_publish(args) -> int:
    from model.artifact import read_candidate

    artifact, manifest = read_candidate(Path(args.candidate))
    _, name = _settings(args)
    if manifest["name"] != name and args.name:
        raise ModelError(f"candidate is model {manifest['name']!r}, not {name!r}")
    _publish(_store(args), artifact, manifest, args)
    return 0


def cmd_gate(args) -> int:
    from model.artifact import read_candidate
    from model.gate import check_gate

    _, manifest = read_candidate(Path(args.candidate))
    print(check_gate(_store(args), manifest, **_gate_kwargs(args)).describe())
    return 0


def cmd_list(args) -> int:
    from model.errors import IntegrityError

    store = _store(args)
    _, name = _settings(args)
    versions = store.versions(name)
    aliases = store.aliases(name)
    rows, unreadable = [], []
    for version in versions:
        try:
            manifest = store.manifest(name, version)
        except IntegrityError as exc:  # one bad manifest must not hide the others
            unreadable.append(f"{version}: {exc}")
            rows.append({"version": version, "error": str(exc)})
            continue
        rows.append(
            {
                "version": version,
                "created_at": manifest["created_at"],
                "accuracy": manifest["metrics"].get("accuracy"),
                "macro_f1": manifest["metrics"].get("macro_f1"),
                "aliases": sorted(a for a, rec in aliases.items() if rec.version == version),
            }
        )
    if args.json:
        print(json.dumps({"name": name, "store": store.uri, "versions": rows}, indent=2))
    elif not rows:
        print(f"{name}: no versions in {store.uri}")
    else:
        print(f"{name} in {store.uri}")
        print(f"{'VERSION':<27} {'CREATED':<21} {'ACCURACY':>8} {'MACRO_F1':>8}  ALIASES")
        for row in rows:
            if "error" in row:
                print(f"{row['version']:<27} UNREADABLE MANIFEST (python -m model show --version "
                      f"{row['version']})")
                continue
            print(
                f"{row['version']:<27} {row['created_at']:<21} {row['accuracy']:>8.4f} "
                f"{row['macro_f1']:>8.4f}  {', '.join(row['aliases'])}"
            )
    if unreadable:
        raise IntegrityError(f"{len(unreadable)} version(s) have an unreadable manifest: {unreadable[0]}")
    return 0
    if not rows:
        print(f"{name}: no versions in {store.uri}")
        return 0
    print(f"{name} in {store.uri}")
    print(f"{'VERSION':<27} {'CREATED':<21} {'ACCURACY':>8} {'MACRO_F1':>8}  ALIASES")
    for row in rows:
        print(
            f"{row['version']:<27} {row['created_at']:<21} {row['accuracy']:>8.4f} "
            f"{row['macro_f1']:>8.4f}  {', '.join(row['aliases'])}"
        )
    return 0


def _target(args, store, name) -> str:
    return store.resolve(name, alias=args.alias, version=args.version)


def cmd_show(args) -> int:
    from model.errors import NotFoundError

    store = _store(args)
    _, name = _settings(args)
    try:
        version = _target(args, store, name)
    except NotFoundError:
        versions = [] if args.version else store.versions(name)
        if not versions:
            raise
        # An unset alias (a model never promoted): show what exists rather than nothing.
        version = versions[0]
        print(f"note: alias {args.alias or DEFAULT_ALIAS!r} of {name} is not set; showing the newest "
              f"version, {version}", file=sys.stderr)
    print(json.dumps(store.manifest(name, version), indent=2, sort_keys=True))
    return 0


def cmd_models(args) -> int:
    store = _store(args)
    names = store.models()
    rows = []
    for name in names:
        versions = store.versions(name)
        aliases = {alias: record.version for alias, record in sorted(store.aliases(name).items())}
        rows.append({"name": name, "versions": len(versions), "newest": versions[0] if versions else None,
                     "aliases": aliases})
    if args.json:
        print(json.dumps({"store": store.uri, "models": rows}, indent=2))
        return 0
    if not rows:
        print(f"no models in {store.uri}")
        return 0
    print(f"models in {store.uri}")
    print(f"{'NAME':<20} {'VERSIONS':>8}  {'NEWEST':<27} ALIASES")
    for row in rows:
        aliases = ", ".join(f"{a}={v}" for a, v in row["aliases"].items()) or "-"
        print(f"{row['name']:<20} {row['versions']:>8}  {row['newest']:<27} {aliases}")
    return 0


def cmd_resolve(args) -> int:
    store = _store(args)
    _, name = _settings(args)
    print(_target(args, store, name))
    return 0


def cmd_promote(args) -> int:
    from model.gate import check_promotion

    store = _store(args)
    _, name = _settings(args)
    verifier = _verifier(args)
    if verifier is not None:  # never point an alias at a version the service would refuse
        store.manifest(name, args.version, verifier=verifier)
    result = check_promotion(store, name, args.version, alias=args.alias, gate_alias=args.gate_alias,
                             metric=args.gate_metric, tolerance=args.gate_tolerance, force=args.force,
                             allow_schema_change=args.allow_schema_change)
    if result is not None:
        print(result.describe())
    moved = store.move_alias(name, args.alias, args.version)
    print(f"{args.alias} -> {moved.version} (was {moved.previous or 'unset'})")
    return 0


def cmd_rollback(args) -> int:
    store = _store(args)
    _, name = _settings(args)
    # --to names any earlier version: the alias's single `previous` reaches only one step back.
    moved = store.move_alias(name, args.alias, args.to) if args.to else store.rollback(name, args.alias)
    print(f"{args.alias} -> {moved.version} (rolled back from {moved.previous})")
    return 0


def cmd_history(args) -> int:
    store = _store(args)
    _, name = _settings(args)
    moves = store.history(name, args.alias)
    if args.json:
        print(json.dumps({"name": name, "alias": args.alias, "moves": moves}, indent=2))
        return 0
    if not moves:
        print(f"alias {args.alias} of {name} was never moved in {store.uri}")
        return 0
    print(f"{args.alias} of {name}, newest first")
    for move in moves:
        print(f"{move['updated_at']:<21} {move['version']:<27} (was {move.get('previous') or 'unset'})")
    return 0


def cmd_verify(args) -> int:
    from model.loader import load_model

    store = _store(args)
    _, name = _settings(args)
    verifier = _verifier(args)
    loaded = load_model(store, name, alias=args.alias, version=args.version, verifier=verifier)
    signed = f", signature by {verifier.key_id} valid" if verifier else ""
    print(f"ok: {name} {loaded.version} sha256 {loaded.manifest['artifact']['sha256']} loads{signed}")
    return 0


def _verifier(args):
    from model.signing import verifier

    return verifier(args.verify_key or os.environ.get("MODEL_VERIFY_KEY"))


def cmd_clean(args) -> int:
    from datetime import timedelta

    store = _store(args)
    _, name = _settings(args)
    stale = store.incomplete(name, timedelta(hours=args.older_than_hours))
    for version, keys in sorted(stale.items()):
        print(f"{'would remove' if args.dry_run else 'removing'} incomplete {name} {version} "
              f"({', '.join(k.rsplit('/', 1)[-1] for k in keys)})")
        if not args.dry_run:
            store.remove_incomplete(name, version)
    folders = 0 if args.dry_run else store.prune(name)
    print(f"{len(stale)} incomplete version(s), {folders} empty folder(s) "
          f"{'found' if args.dry_run else 'removed'} in {store.uri}")
    return 0


def cmd_keygen(args) -> int:
    from model.signing import generate_key_pair

    private, public = generate_key_pair(args.folder)
    print(f"signing key (keep it on the publishing side only): {private}")
    print(f"verification key (give it to the service and the rollout): {public}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every command (also used to render --help)."""
    from model.gate import DEFAULT_METRIC, DEFAULT_TOLERANCE, METRICS
    from model.train import DEFAULT_SEED, DEFAULT_TEST_SIZE

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", help=f"store URI (default: $MODEL_STORE or {DEFAULT_STORE})")
    common.add_argument("--name", help=f"model name (default: $MODEL_NAME or {DEFAULT_NAME})")

    gate = argparse.ArgumentParser(add_help=False)
    gate.add_argument("--gate-metric", default=DEFAULT_METRIC, choices=METRICS)
    gate.add_argument("--gate-tolerance", type=float, default=DEFAULT_TOLERANCE,
                      help="how much worse than the baseline is still accepted (default %(default)s)")
    gate.add_argument("--gate-alias", default=DEFAULT_ALIAS,
                      help="the alias whose target is the baseline (default %(default)s)")
    gate.add_argument("--force", action="store_true", help="publish even if the gate fails")
    gate.add_argument("--allow-schema-change", action="store_true",
                      help="accept a version whose inputs or classes differ from what the alias serves")

    verifying = argparse.ArgumentParser(add_help=False)
    verifying.add_argument("--verify-key", metavar="PEM|kms:KEY",
                           help="refuse a version not signed by this key (default $MODEL_VERIFY_KEY)")

    publishing = argparse.ArgumentParser(add_help=False)
    publishing.add_argument("--sign-key", metavar="PEM|kms:KEY",
                            help="sign the manifest with this key (default $MODEL_SIGNING_KEY)")
    publishing.add_argument("--promote", metavar="ALIAS",
                            help="move this alias to the new version after publishing")
    publishing.add_argument("--version-file", metavar="PATH",
                            help="write the published version id to this file")

    select = argparse.ArgumentParser(add_help=False)
    select.add_argument("--alias", default=None, help=f"alias to resolve (default {DEFAULT_ALIAS})")
    select.add_argument("--version", default=None, help="a version id (wins over --alias)")

    parser = argparse.ArgumentParser(
        prog="python -m model", description=__doc__, epilog=text_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", parents=[common, gate, publishing],
                       help="train, evaluate, gate and publish a model")
    p.add_argument("--dataset", default="digits",
                   help="digits, iris, wine, breast_cancer, 20newsgroups (network), "
                        "or a .csv path / s3:// URI (default %(default)s)")
    p.add_argument("--label-column", default="label", help="CSV label column (default %(default)s)")
    p.add_argument("--text-column", help="CSV text column: trains the tf-idf text model")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="estimator parameter (C, max_iter, ngram_max, min_df, max_features)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--test-size", type=float, default=DEFAULT_TEST_SIZE)
    p.add_argument("--out", type=Path, help="write a candidate folder instead of publishing")
    p.add_argument("--if-empty", action="store_true",
                   help="do nothing if the model already has a version in the store")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("publish", parents=[common, gate, publishing],
                       help="gate and publish a candidate folder written by train --out")
    p.add_argument("candidate", type=Path)
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("gate", parents=[common, gate],
                       help="check a candidate folder against the quality gate only")
    p.add_argument("candidate", type=Path)
    p.set_defaults(func=cmd_gate)

    p = sub.add_parser("list", parents=[common], help="versions, newest first, with aliases")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("models", parents=[common], help="every model in the store, with its aliases")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("show", parents=[common, select],
                       help="print a version's manifest (the newest when the alias is unset)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("resolve", parents=[common, select], help="print the version an alias names")
    p.set_defaults(func=cmd_resolve)

    p = sub.add_parser("promote", parents=[common, gate, verifying],
                       help="move an alias to a version (gated against the alias's target)")
    p.add_argument("version")
    p.add_argument("--alias", default=DEFAULT_ALIAS)
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("rollback", parents=[common], help="move an alias back to its previous version")
    p.add_argument("--alias", default=DEFAULT_ALIAS)
    p.add_argument("--to", metavar="VERSION", help="back to this version instead (see `history`)")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("history", parents=[common], help="every move of an alias, newest first")
    p.add_argument("--alias", default=DEFAULT_ALIAS)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("verify", parents=[common, select, verifying],
                       help="download, hash-check (and check the signature of) and load a version")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("clean", parents=[common],
                       help="remove versions a crashed publish left without a manifest, and empty folders")
    p.add_argument("--older-than-hours", type=float, default=1.0,
                   help="only versions whose id time is older than this: a younger one may still be "
                        "publishing (default %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed")
    p.set_defaults(func=cmd_clean)

    p = sub.add_parser("keygen", help="make an Ed25519 key pair for signing models")
    p.add_argument("folder", type=Path, help="where signing.pem (0600) and verify.pem are written")
    p.set_defaults(func=cmd_keygen)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
