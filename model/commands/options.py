"""What every command reads from its options and the environment: the store, the model name, keys."""

from __future__ import annotations

import os

from model.errors import UsageError
from model.store import DEFAULT_NAME, DEFAULT_STORE


def settings(args) -> tuple[str, str]:
    """The store URI and model name: flags win over MODEL_STORE / MODEL_NAME, then the defaults."""
    return store_uri(args), chosen_name(args) or DEFAULT_NAME


def store_uri(args) -> str:
    """The store URI: --store, else $MODEL_STORE, else the default folder."""
    return _given(args, "store") or os.environ.get("MODEL_STORE") or DEFAULT_STORE


def chosen_name(args) -> str | None:
    """The model --name or $MODEL_NAME names, or None when neither is set (`list`: every model)."""
    return _given(args, "name") or os.environ.get("MODEL_NAME") or None


def _given(args, option: str) -> str | None:
    # The CLI's only configuration read: flags win over the MODEL_* variables.
    value = getattr(args, option, None)
    if value is not None and not value.strip():
        # `--name ""` (an unset shell variable) must not quietly mean the default model.
        raise UsageError(f"--{option} was given an empty value")
    return value


def open_store(args):
    """The ModelStore the options name (nothing is read from it yet)."""
    from model.store import ModelStore

    return ModelStore(store_uri(args))


def target(args, store, name) -> str:
    """The version `--version` pins, else the one `--alias` (default production) names."""
    return store.resolve(name, alias=args.alias, version=args.version)


def verifier(args):
    """The signature verifier of `--verify-key` or $MODEL_VERIFY_KEY, or None if neither is set."""
    from model.signing import verifier as load_verifier

    return load_verifier(args.verify_key or os.environ.get("MODEL_VERIFY_KEY"))
