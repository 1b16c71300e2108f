"""`python -m model`: train, import, publish, report, list, show, promote, rollback, verify, resolve.

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


def _compiled_line(manifest: dict) -> str:
    record = manifest.get("onnx") or {}
    if record.get("file"):
        return (f"onnx: compiled and parity-checked on {record['rows_checked']} rows "
                f"(worst difference {record['worst_difference']:.2g})")
    return f"onnx: not compiled, served by scikit-learn: {record.get('skipped', 'no record')}"


def _publish(store, candidate, args) -> None:
    artifact, manifest = candidate
    from model.gate import check_gate

    result = check_gate(store, manifest, **_gate_kwargs(args))
    print(result.describe())
    from model.publish import current_manifest, store_report
    from model.signing import signer

    baseline = current_manifest(store, manifest["name"], args.gate_alias)
    store.publish(artifact, manifest, signer=signer(args.sign_key or os.environ.get("MODEL_SIGNING_KEY")),
                  onnx=candidate.onnx)
    print(f"published {manifest['name']} {manifest['version']} to {store.uri}")
    if not args.no_report and not store_report(store, manifest, baseline):
        print("note: no report stored: it needs matplotlib (pip install '.[report]')")
    if args.promote:
        moved = store.move_alias(manifest["name"], args.promote, manifest["version"])
        print(f"{args.promote} -> {moved.version} (was {moved.previous or 'unset'})")
    if args.version_file:
        Path(args.version_file).write_text(manifest["version"] + "\n")


def _column_kinds(pairs: list[str]) -> dict:
    from model.tabular import KINDS

    kinds = _params(pairs)
    for name, kind in kinds.items():
        if kind not in KINDS:
            raise UsageError(f"--column-kind {name}={kind}: the kind must be one of {', '.join(KINDS)}")
    return kinds


def _apply_plan(args) -> None:
    """Fill the train options from the repo's training plan (model/training.toml) for --plan."""
    from model.plan import load_plan

    entry = load_plan(args.plan, args.model)
    given = [flag for flag, value in (("--dataset", args.dataset), ("--recipe", args.recipe),
                                      ("--param", args.param), ("--column-kind", args.column_kind))
             if value]
    if given:
        raise UsageError(f"--plan names the dataset, recipe and parameters; drop {', '.join(given)}")
    args.name = args.name or entry.name
    args.dataset, args.recipe = entry.dataset, entry.recipe
    args.label_column = entry.label_column or args.label_column
    args.text_column = entry.text_column or args.text_column
    args.param = [f"{k}={v}" for k, v in entry.params.items()]
    args.column_kind = [f"{k}={v}" for k, v in entry.column_kinds.items()]


def cmd_train(args) -> int:
    from model.artifact import write_candidate
    from model.data import load_dataset
    from model.evaluate import headline
    from model.recipes import load_recipe
    from model.train import default_recipe, train

    if args.plan:
        _apply_plan(args)
    args.dataset = args.dataset or "digits"
    _store_uri, name = _settings(args)
    params, kinds = _params(args.param), _column_kinds(args.column_kind)
    if args.recipe:
        load_recipe(args.recipe)  # a mistyped recipe fails before the data is read
    store = None
    if args.out is None:
        store = _store(args)
        if args.if_empty and store.versions(name):
            print(f"{name} already has versions in {store.uri}; not training (--if-empty)")
            return 0
    dataset = load_dataset(
        args.dataset, label_column=args.label_column, text_column=args.text_column, column_kinds=kinds
    )
    recipe = args.recipe or default_recipe(dataset)
    shape = dataset.kind
    if dataset.frame:
        shown = ", ".join(f"{c['name']} ({c['kind']})" for c in dataset.columns[:6])
        shape = f"table: {shown}" + (", ..." if len(dataset.columns) > 6 else "")
    print(f"training {name} with recipe {recipe} on {dataset.source} ({dataset.rows} rows, {shape})")
    candidate = train(
        dataset, name=name, recipe=recipe, params=params, seed=args.seed, test_size=args.test_size,
        compile=not args.no_compile,
    )
    manifest = candidate.manifest
    print(f"evaluated ({manifest['task']}): {headline(manifest)}")
    if "onnx" in manifest:
        print(_compiled_line(manifest))
    if args.out is not None:
        write_candidate(args.out, candidate.artifact, manifest, candidate.onnx)
        if not args.no_report:
            _candidate_report(args.out, manifest, store=_report_store(args))
        print(f"wrote candidate {manifest['version']} to {args.out}")
        return 0
    _publish(store, candidate, args)
    return 0


def cmd_import(args) -> int:
    from model.data import load_dataset
    from model.errors import DataError
    from model.evaluate import headline
    from model.publish import build_manifest

    store = _store(args)
    _, name = _settings(args)
    estimator = _load_pickle(args.pickle)
    holdout = load_dataset(args.data, label_column=args.label_column, text_column=args.text_column,
                           column_kinds=_column_kinds(args.column_kind))
    X = holdout.X
    if holdout.kind == "tabular" and not holdout.frame and hasattr(estimator, "feature_names_in_"):
        X = _frame_of(holdout)  # fitted on a DataFrame: give it named columns back
    try:
        candidate = build_manifest(estimator, X, holdout.y, name=name, source=holdout.source,
                                   recipe="imported", data={"sha256": holdout.sha256},
                                   columns=holdout.columns, compile=not args.no_compile)
    except DataError as exc:
        raise DataError(f"cannot import {args.pickle}: {exc}") from None
    manifest = candidate.manifest
    print(f"imported {type(estimator).__name__} from {args.pickle}, evaluated on {holdout.source} "
          f"({holdout.rows} rows, {manifest['task']}): {headline(manifest)}")
    if "onnx" in manifest:
        print(_compiled_line(manifest))
    _publish(store, candidate, args)
    return 0


def _frame_of(dataset):
    from model.tabular import to_frame

    return to_frame(dataset.columns, dataset.X.tolist())


def _load_pickle(path: Path):
    """The estimator in a joblib/pickle file the user trained (loading runs code: trust the file)."""
    import pickle

    import joblib

    from model.errors import DataError

    try:
        return joblib.load(path)
    except FileNotFoundError:
        raise DataError(f"no such file: {path}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError) as exc:
        raise DataError(f"{path} is not a joblib or pickle file ({type(exc).__name__}: {exc})") from None
    except (ImportError, AttributeError) as exc:
        raise DataError(f"{path} needs code this environment does not have: {exc}") from None


def cmd_report(args) -> int:
    store = _store(args)
    _, name = _settings(args)
    version = _resolve_any(store, name, args.version)
    manifest = store.manifest(name, version)
    against = None
    if args.against:
        other = _resolve_any(store, name, args.against)
        against = store.manifest(name, other) if other != version else None
    html = _render(manifest, against)
    if args.publish:
        store.write_report(name, version, html)
        print(f"stored the report of {name} {version} in {store.uri} (served at /report)")
    out = args.out or (None if args.publish else Path(f"report-{name}-{version}.html"))
    if out is not None:
        Path(out).write_text(html, encoding="utf-8")
        print(f"wrote {out}")
    return 0


def _resolve_any(store, name: str, ref: str) -> str:
    """A version id as given, or the version an alias names."""
    from model.store import is_version

    return ref if is_version(ref) else store.resolve(name, alias=ref)


def _render(manifest: dict, against: dict | None) -> str:
    try:
        import matplotlib  # noqa: F401 (the report's plots; an optional dependency)
    except ImportError:
        raise UsageError("the report needs matplotlib: pip install '.[report]'") from None
    from model.report import render_report

    return render_report(manifest, against=against)


def _report_store(args):
    try:
        return _store(args)
    except ModelError:
        return None


def _candidate_report(folder: Path, manifest: dict, store) -> None:
    """report.html beside a candidate's manifest (Jenkins archives it), against production if any."""
    from model.publish import current_manifest

    try:
        baseline = current_manifest(store, manifest["name"], DEFAULT_ALIAS) if store is not None else None
        html = _render(manifest, baseline)
    except UsageError as exc:
        print(f"note: no report: {exc}")
        return
    (Path(folder) / "report.html").write_text(html, encoding="utf-8")


def cmd_publish(args) -> int:
    from model.artifact import read_candidate

    candidate = read_candidate(Path(args.candidate))
    manifest = candidate.manifest
    _, name = _settings(args)
    if manifest["name"] != name and args.name:
        raise ModelError(f"candidate is model {manifest['name']!r}, not {name!r}")
    _publish(_store(args), candidate, args)
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
                "task": manifest.get("task", "classification"),
                "recipe": manifest.get("recipe"),
                "metrics": {k: v for k, v in manifest["metrics"].items() if not isinstance(v, dict)},
                "aliases": sorted(a for a, rec in aliases.items() if rec.version == version),
            }
        )
    if args.json:
        print(json.dumps({"name": name, "store": store.uri, "versions": rows}, indent=2))
    elif not rows:
        print(f"{name}: no versions in {store.uri}")
    else:
        from model.evaluate import headline

        print(f"{name} in {store.uri}")
        print(f"{'VERSION':<27} {'CREATED':<21} {'METRICS':<34} ALIASES")
        for row in rows:
            if "error" in row:
                print(f"{row['version']:<27} UNREADABLE MANIFEST (python -m model show --version "
                      f"{row['version']})")
                continue
            scores = headline({"task": row["task"], "metrics": row["metrics"]})
            print(f"{row['version']:<27} {row['created_at']:<21} {scores:<34} {', '.join(row['aliases'])}")
    if unreadable:
        raise IntegrityError(f"{len(unreadable)} version(s) have an unreadable manifest: {unreadable[0]}")
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
    gate.add_argument("--gate-metric", default=DEFAULT_METRIC, choices=METRICS,
                      help="default: macro_f1 for classifiers, r2 for regressors (mae and rmse: lower "
                           "is better)")
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
    publishing.add_argument("--no-compile", action="store_true",
                            help="train/import: do not convert the model to ONNX (model.onnx)")
    publishing.add_argument("--no-report", action="store_true",
                            help="do not write the HTML report (stored beside the manifest; needs "
                                 "matplotlib)")

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
    p.add_argument("--dataset",
                   help="digits, iris, wine, breast_cancer, diabetes (regression), 20newsgroups (network), "
                        "or a .csv path / s3:// URI (default digits)")
    p.add_argument("--recipe",
                   help="the training code: a name from model/recipes/ (logreg, tfidf, hgb_table, "
                        "forest_regressor, linear_svc) or package.module:function (default: logreg for "
                        "numbers, hgb_table for mixed tables, tfidf for text)")
    p.add_argument("--label-column", default="label", help="CSV label column (default %(default)s)")
    p.add_argument("--text-column", help="CSV text column: trains a text model on it alone")
    p.add_argument("--column-kind", action="append", metavar="COLUMN=KIND",
                   help="force a CSV column's kind: number, category, text or boolean")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="recipe parameter (see the recipe's docstring)")
    p.add_argument("--plan", type=Path, metavar="TOML",
                   help="train what the plan file names (model/training.toml): dataset, recipe, parameters")
    p.add_argument("--model", metavar="NAME", help="with --plan: which entry (default: the first)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--test-size", type=float, default=DEFAULT_TEST_SIZE)
    p.add_argument("--out", type=Path, help="write a candidate folder instead of publishing")
    p.add_argument("--if-empty", action="store_true",
                   help="do nothing if the model already has a version in the store")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("import", parents=[common, gate, publishing],
                       help="evaluate an estimator fitted elsewhere on held-out data, gate and publish it")
    p.add_argument("pickle", type=Path, help="a joblib or pickle file of a fitted estimator (loading it runs "
                                             "its code: import only files you trust)")
    p.add_argument("--data", required=True, help="held-out data: a .csv path or s3:// URI")
    p.add_argument("--label-column", default="label", help="CSV label column (default %(default)s)")
    p.add_argument("--text-column", help="CSV text column, for a text model")
    p.add_argument("--column-kind", action="append", metavar="COLUMN=KIND",
                   help="force a CSV column's kind: number, category, text or boolean")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("report", parents=[common],
                       help="write a version's HTML report (plots, metrics, lineage; needs matplotlib)")
    p.add_argument("version", help="a version id or an alias")
    p.add_argument("--against", metavar="VERSION|ALIAS", help="compare with this version, e.g. production")
    p.add_argument("--out", type=Path, help="the HTML file (default report-<name>-<version>.html)")
    p.add_argument("--publish", action="store_true",
                   help="store it beside the version's manifest (the service serves it at /report)")
    p.set_defaults(func=cmd_report)

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
