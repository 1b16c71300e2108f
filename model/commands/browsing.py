"""Reading the store: list, models, show, resolve, history and verify."""

from __future__ import annotations

import json
import sys

from model.commands.options import chosen_name, open_store, settings, target, verifier
from model.store import DEFAULT_ALIAS


def cmd_list(args) -> int:
    """Versions, newest first, with metrics and aliases: of the model --name or $MODEL_NAME names,
    or with neither, of every model in the store, grouped by model."""
    from model.errors import IntegrityError

    store = open_store(args)
    name = chosen_name(args)
    # A name the store does not know is an error (with the closest name), not an empty listing.
    versions = {name: store.known_versions(name)} if name else {m: store.versions(m) for m in store.models()}
    rows, unreadable = [], []
    for model, found in versions.items():
        rows_of_model, bad = _version_rows(store, model, found)
        rows += rows_of_model
        unreadable += bad
    if args.json:
        print(json.dumps({"name": name, "store": store.uri, "versions": rows}, indent=2))
    elif not rows:
        print(f"no models in {store.uri}")
    else:
        _print_versions(rows, f"{name} in {store.uri}" if name else f"every model in {store.uri}")
    if unreadable:
        raise IntegrityError(f"{len(unreadable)} version(s) have an unreadable manifest: {unreadable[0]}")
    return 0


def _version_rows(store, model: str, versions: list[str]) -> tuple[list[dict], list[str]]:
    """One row per version of `model` (an `error` row for an unreadable manifest), and those errors."""
    from model.errors import IntegrityError

    aliases = store.aliases(model)
    rows, unreadable = [], []
    for version in versions:
        try:
            manifest = store.manifest(model, version)
        except IntegrityError as exc:  # one bad manifest must not hide the others
            unreadable.append(f"{version}: {exc}")
            rows.append({"model": model, "version": version, "error": str(exc)})
            continue
        rows.append(
            {
                "model": model,
                "version": version,
                "created_at": manifest["created_at"],
                "task": manifest.get("task", "classification"),
                "recipe": manifest.get("recipe"),
                "metrics": {k: v for k, v in manifest["metrics"].items() if not isinstance(v, dict)},
                "aliases": sorted(a for a, rec in aliases.items() if rec.version == version),
            }
        )
    return rows, unreadable


def _print_versions(rows: list[dict], title: str) -> None:
    from model.evaluate import headline

    width = max(len("MODEL"), *(len(row["model"]) for row in rows))
    print(title)
    print(f"{'MODEL':<{width}} {'VERSION':<27} {'CREATED':<21} {'METRICS':<34} ALIASES")
    for row in rows:
        lead = f"{row['model']:<{width}} {row['version']:<27}"
        if "error" in row:
            show = f"python -m model show --name {row['model']} --version {row['version']}"
            print(f"{lead} UNREADABLE MANIFEST ({show})")
            continue
        scores = headline({"task": row["task"], "metrics": row["metrics"]})
        print(f"{lead} {row['created_at']:<21} {scores:<34} {', '.join(row['aliases'])}")


def cmd_show(args) -> int:
    """Print a version's manifest; the newest version's when the alias is unset."""
    from model.errors import NotFoundError

    store = open_store(args)
    _, name = settings(args)
    try:
        version = target(args, store, name)
    except NotFoundError:
        versions = [] if args.version else store.versions(name)
        if not versions:
            raise
        # An unset alias (a model never promoted): show what exists rather than nothing.
        version = versions[0]
        print(
            f"note: alias {args.alias or DEFAULT_ALIAS!r} of {name} is not set; showing the newest "
            f"version, {version}",
            file=sys.stderr,
        )
    manifest = store.manifest(name, version)
    if getattr(args, "profile", False):
        print(json.dumps(manifest.get("profile"), indent=2, sort_keys=True))
        return 0
    if "profile" in manifest:  # hundreds of numbers: a summary here, all of it with --profile
        from model.profile import summary

        manifest = dict(manifest, profile=summary(manifest["profile"]))
    print(json.dumps(manifest, indent=2, sort_keys=True))
    return 0


def cmd_models(args) -> int:
    """Every model in the store: its number of versions, the newest, its aliases."""
    store = open_store(args)
    names = store.models()
    rows = []
    for name in names:
        versions = store.versions(name)
        aliases = {alias: record.version for alias, record in sorted(store.aliases(name).items())}
        rows.append(
            {
                "name": name,
                "versions": len(versions),
                "newest": versions[0] if versions else None,
                "aliases": aliases,
            }
        )
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
    """Print the version an alias names (or the pinned --version, once checked)."""
    store = open_store(args)
    _, name = settings(args)
    print(target(args, store, name))
    return 0


def cmd_history(args) -> int:
    """Every move of an alias, newest first."""
    store = open_store(args)
    _, name = settings(args)
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
    """Download, hash-check (and with a key, check the signature of) and load a version."""
    from model.loader import load_model

    store = open_store(args)
    _, name = settings(args)
    key = verifier(args)
    loaded = load_model(store, name, alias=args.alias, version=args.version, verifier=key)
    signed = f", signature by {key.key_id} valid" if key else ""
    print(f"ok: {name} {loaded.version} sha256 {loaded.manifest['artifact']['sha256']} loads{signed}")
    return 0
