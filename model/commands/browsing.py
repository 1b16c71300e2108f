"""Reading the store: list, models, show, resolve, history and verify."""

from __future__ import annotations

import json
import sys

from model.commands.options import open_store, settings, target, verifier
from model.store import DEFAULT_ALIAS


def cmd_list(args) -> int:
    """One model's versions, newest first, with metrics and aliases."""
    from model.errors import IntegrityError

    store = open_store(args)
    _, name = settings(args)
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
                print(
                    f"{row['version']:<27} UNREADABLE MANIFEST (python -m model show --version "
                    f"{row['version']})"
                )
                continue
            scores = headline({"task": row["task"], "metrics": row["metrics"]})
            print(f"{row['version']:<27} {row['created_at']:<21} {scores:<34} {', '.join(row['aliases'])}")
    if unreadable:
        raise IntegrityError(f"{len(unreadable)} version(s) have an unreadable manifest: {unreadable[0]}")
    return 0


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
    print(json.dumps(store.manifest(name, version), indent=2, sort_keys=True))
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
