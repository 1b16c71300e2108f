"""A model on its way into the store: train, import, publish, gate and report."""

from __future__ import annotations

import os
from pathlib import Path

from model.commands.options import open_store, settings
from model.errors import ModelError, UsageError
from model.store import DEFAULT_ALIAS


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
        return (
            f"onnx: compiled and parity-checked on {record['rows_checked']} rows "
            f"(worst difference {record['worst_difference']:.2g})"
        )
    return f"onnx: not compiled, served by scikit-learn: {record.get('skipped', 'no record')}"


def _publish(store, candidate, args) -> None:
    artifact, manifest = candidate
    from model.gate import check_gate

    result = check_gate(store, manifest, **_gate_kwargs(args))
    print(result.describe())
    from model.publish import current_manifest, store_report
    from model.signing import signer

    baseline = current_manifest(store, manifest["name"], args.gate_alias)
    store.publish(
        artifact,
        manifest,
        signer=signer(args.sign_key or os.environ.get("MODEL_SIGNING_KEY")),
        onnx=candidate.onnx,
    )
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
    # --dataset may replace the plan's data (a training run started by new data trains the plan's
    # recipe on it); the recipe and its parameters stay the plan's.
    given = [
        flag
        for flag, value in (
            ("--recipe", args.recipe),
            ("--param", args.param),
            ("--column-kind", args.column_kind),
        )
        if value
    ]
    if given:
        raise UsageError(f"--plan names the recipe and parameters; drop {', '.join(given)}")
    args.name = args.name or entry.name
    args.dataset, args.recipe = args.dataset or entry.dataset, entry.recipe
    args.label_column = entry.label_column or args.label_column
    args.text_column = entry.text_column or args.text_column
    args.param = [f"{k}={v}" for k, v in entry.params.items()]
    args.column_kind = [f"{k}={v}" for k, v in entry.column_kinds.items()]


def cmd_train(args) -> int:
    """Train a recipe on a dataset, evaluate it, then gate and publish it (or write a candidate)."""
    from model.artifact import write_candidate
    from model.data import load_dataset
    from model.evaluate import headline
    from model.recipes import load_recipe
    from model.train import default_recipe, train

    if args.plan:
        _apply_plan(args)
    args.dataset = args.dataset or "digits"
    _store_uri, name = settings(args)
    params, kinds = _params(args.param), _column_kinds(args.column_kind)
    if args.recipe:
        load_recipe(args.recipe)  # a mistyped recipe fails before the data is read
    store = None
    if args.out is None:
        store = open_store(args)
        if args.if_empty and store.versions(name):
            print(f"{name} already has versions in {store.uri}; not training (--if-empty)")
            return 0
        # A store that cannot take the result must fail now, not after the data and the fit.
        store.check_writable()
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
        dataset,
        name=name,
        recipe=recipe,
        params=params,
        seed=args.seed,
        test_size=args.test_size,
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
    """Evaluate an estimator fitted elsewhere on held-out data, then gate and publish it."""
    from model.data import load_dataset
    from model.errors import DataError
    from model.evaluate import headline
    from model.publish import build_manifest

    store = open_store(args)
    _, name = settings(args)
    store.check_writable()  # before the pickle is loaded and evaluated
    estimator = _load_pickle(args.pickle)
    holdout = load_dataset(
        args.data,
        label_column=args.label_column,
        text_column=args.text_column,
        column_kinds=_column_kinds(args.column_kind),
    )
    X = holdout.X
    if holdout.kind == "tabular" and not holdout.frame and hasattr(estimator, "feature_names_in_"):
        X = _frame_of(holdout)  # fitted on a DataFrame: give it named columns back
    try:
        candidate = build_manifest(
            estimator,
            X,
            holdout.y,
            name=name,
            source=holdout.source,
            recipe="imported",
            data={"sha256": holdout.sha256},
            columns=holdout.columns,
            compile=not args.no_compile,
        )
    except DataError as exc:
        raise DataError(f"cannot import {args.pickle}: {exc}") from None
    manifest = candidate.manifest
    print(
        f"imported {type(estimator).__name__} from {args.pickle}, evaluated on {holdout.source} "
        f"({holdout.rows} rows, {manifest['task']}): {headline(manifest)}"
    )
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
    """Write a version's HTML report to a file, and with --publish store it beside the manifest."""
    store = open_store(args)
    _, name = settings(args)
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
        return open_store(args)
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
    """Gate and publish a candidate folder that `train --out` wrote."""
    from model.artifact import read_candidate

    store = open_store(args)
    store.check_writable()  # as train and import do: the same error before anything is read
    candidate = read_candidate(Path(args.candidate))
    manifest = candidate.manifest
    _, name = settings(args)
    if manifest["name"] != name and args.name:
        raise ModelError(f"candidate is model {manifest['name']!r}, not {name!r}")
    _publish(store, candidate, args)
    return 0


def cmd_gate(args) -> int:
    """Check a candidate folder against the quality gate only (nothing is published)."""
    from model.artifact import read_candidate
    from model.gate import check_gate

    _, manifest = read_candidate(Path(args.candidate))
    print(check_gate(open_store(args), manifest, **_gate_kwargs(args)).describe())
    return 0
