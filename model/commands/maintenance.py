"""Housekeeping: clean up what a crashed publish left, make signing keys."""

from __future__ import annotations

from model.commands.options import open_store, settings


def cmd_clean(args) -> int:
    """Remove versions a crashed publish left without a manifest, and empty version folders."""
    from datetime import timedelta

    store = open_store(args)
    _, name = settings(args)
    stale = store.incomplete(name, timedelta(hours=args.older_than_hours))
    for version, keys in sorted(stale.items()):
        print(
            f"{'would remove' if args.dry_run else 'removing'} incomplete {name} {version} "
            f"({', '.join(k.rsplit('/', 1)[-1] for k in keys)})"
        )
        if not args.dry_run:
            store.remove_incomplete(name, version)
    folders = 0 if args.dry_run else store.prune(name)
    print(
        f"{len(stale)} incomplete version(s), {folders} empty folder(s) "
        f"{'found' if args.dry_run else 'removed'} in {store.uri}"
    )
    return 0


def cmd_keygen(args) -> int:
    """Make an Ed25519 key pair for signing models."""
    from model.signing import generate_key_pair

    private, public = generate_key_pair(args.folder)
    print(f"signing key (keep it on the publishing side only): {private}")
    print(f"verification key (give it to the service and the rollout): {public}")
    return 0
