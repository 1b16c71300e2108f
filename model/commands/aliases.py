"""Moving an alias: promote (gated) and rollback."""

from __future__ import annotations

from model.commands.options import open_store, settings, verifier


def cmd_promote(args) -> int:
    """Move an alias to a version, gated against the version the alias names now."""
    from model.gate import check_promotion

    store = open_store(args)
    _, name = settings(args)
    key = verifier(args)
    if key is not None:  # never point an alias at a version the service would refuse
        store.manifest(name, args.version, verifier=key)
    result = check_promotion(
        store,
        name,
        args.version,
        alias=args.alias,
        gate_alias=args.gate_alias,
        metric=args.gate_metric,
        tolerance=args.gate_tolerance,
        force=args.force,
        allow_schema_change=args.allow_schema_change,
    )
    if result is not None:
        print(result.describe())
    moved = store.move_alias(name, args.alias, args.version)
    print(f"{args.alias} -> {moved.version} (was {moved.previous or 'unset'})")
    return 0


def cmd_rollback(args) -> int:
    """Move an alias back to its previous version, or with --to to any version."""
    store = open_store(args)
    _, name = settings(args)
    # --to names any earlier version: the alias's single `previous` reaches only one step back.
    moved = store.move_alias(name, args.alias, args.to) if args.to else store.rollback(name, args.alias)
    print(f"{args.alias} -> {moved.version} (rolled back from {moved.previous})")
    return 0
