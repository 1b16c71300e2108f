"""Zero-downtime model rollout to a locally running gunicorn (`scripts/rollout local ...`).

    python -m ops.local_rollout --pidfile PATH [--url URL] [--store S] [--name N] [--alias A]
                                [--version V | --rollback] [--timeout S] [--settle S]

Steps: check the server is running (pidfile), optionally move the alias (`--version V` promotes V
after downloading and hash-checking it; `--rollback` moves it back to its previous version), send
SIGHUP to the gunicorn master so fresh workers load the alias's current target while the old
workers finish their in-flight requests, then poll `GET /model` until every answer names the
expected version for `--settle` seconds. If that does not happen within `--timeout` seconds and
this command moved the alias, it moves the alias back, sends SIGHUP again and waits for the old
version to be served.

Exit codes:

    0 ok: every answer names the expected version
    1 unexpected error
    2 usage (bad arguments)
    3 the model store cannot be reached or used
    4 model, version or alias not found
    5 conflict: someone else moved the alias meanwhile; nothing was changed
    6 the version's artifact fails its integrity check or cannot be loaded; nothing was changed
    9 not verified in time; the alias (if this command moved it) was moved back and served again
    10 not verified AND restoring the previous version failed: a person must act
    11 no server: the pidfile is missing or names no running process
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_NOT_VERIFIED = 9
EXIT_RESTORE_FAILED = 10
EXIT_NO_SERVER = 11


class RolloutError(Exception):
    """The rollout stopped; `exit_code` says why (see the module docstring)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def say(message: str) -> None:
    """One progress line on stdout (flushed: a pipeline shows it as it happens)."""
    print(f"rollout: {message}", flush=True)


def read_master_pid(pidfile: Path) -> int:
    """The gunicorn master's pid from its pidfile, checked to be a running process."""
    try:
        text = Path(pidfile).read_text().strip()
    except OSError as exc:
        raise RolloutError(
            f"cannot read pidfile {pidfile}: {exc.strerror}; is the service running "
            "(gunicorn --pid PATH, or PIDFILE=PATH)?",
            EXIT_NO_SERVER,
        ) from None
    if not text.isdigit() or int(text) <= 1:
        raise RolloutError(f"pidfile {pidfile} does not hold a process id ({text[:20]!r})", EXIT_NO_SERVER)
    pid = int(text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise RolloutError(
            f"no process {pid} (from {pidfile}): the service is not running", EXIT_NO_SERVER
        ) from None
    except PermissionError:
        raise RolloutError(f"not allowed to signal process {pid} (from {pidfile})", EXIT_NO_SERVER) from None
    return pid


def served_version(url: str, timeout: float = 2.0) -> str | None:
    """The version `GET {url}/model` names, or None if the server did not answer with a model."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/model", timeout=timeout) as response:
            return json.loads(response.read())["version"]
    except (OSError, ValueError, KeyError, TypeError):
        # Refused, reset, timed out, 503 (HTTPError is an OSError) or not a manifest: not served.
        return None


def wait_for_version(
    url: str, expected: str, *, timeout: float, settle: float, interval: float = 0.05
) -> bool:
    """Poll until every answer for `settle` seconds (at least 10 answers) names `expected`."""
    deadline = time.monotonic() + timeout
    streak_start, streak = None, 0
    seen: dict[str | None, int] = {}
    last_report = time.monotonic()
    while time.monotonic() < deadline:
        version = served_version(url)
        seen[version] = seen.get(version, 0) + 1
        now = time.monotonic()
        if version == expected:
            if streak_start is None:
                streak_start = now
                say(f"first answer from {expected}")
            streak += 1
            if now - streak_start >= settle and streak >= 10:
                say(f"verified: {streak} answers in a row from {expected} over {now - streak_start:.1f} s")
                return True
        else:
            streak_start, streak = None, 0
        if now - last_report >= 2.0:
            summary = ", ".join(f"{v or 'no model'}: {n}" for v, n in seen.items())
            say(f"waiting for {expected} ({summary})")
            last_report = now
        time.sleep(interval)
    summary = ", ".join(f"{v or 'no model'}: {n}" for v, n in seen.items())
    say(f"not verified within {timeout:g} s (answers: {summary})")
    return False


def reload_server(pidfile: Path) -> int:
    """SIGHUP the gunicorn master: new workers load the alias's current target, old ones drain."""
    pid = read_master_pid(pidfile)
    os.kill(pid, signal.SIGHUP)
    say(f"sent SIGHUP to gunicorn master {pid}")
    return pid


def rollout(args) -> int:
    """Move the alias if asked, reload, verify; restore the previous target if verification fails."""
    from model.loader import load_model
    from model.store import ModelStore

    read_master_pid(args.pidfile)  # refuse early, before touching the store
    store = ModelStore(args.store)
    before = store.alias(args.name, args.alias)
    moved = False
    if args.version or args.rollback:
        if args.rollback:
            if before is None or not before.previous:
                from model.errors import NotFoundError

                raise NotFoundError(f"alias {args.alias!r} of {args.name} has no previous version")
            target = before.previous
        else:
            target = args.version
        if before is not None and before.version == target:
            say(f"{args.alias} already points at {target}; reloading only")
        else:
            say(f"checking {args.name} {target} (download, sha256, load)")
            load_model(store, args.name, version=target)
            after = store.move_alias(args.name, args.alias, target, expected=before)
            moved = True
            say(f"{args.alias} -> {after.version} (was {after.previous or 'unset'})")
    expected = store.resolve(args.name, alias=args.alias)
    say(f"rolling out {args.name} {expected} to {args.url}")
    reload_server(args.pidfile)
    if wait_for_version(args.url, expected, timeout=args.timeout, settle=args.settle):
        say(f"ok: {args.url} serves {args.name} {expected}")
        return EXIT_OK
    if not moved or before is None:
        print(
            f"error: {args.url} does not serve {expected}; the alias was not moved by this command, "
            "nothing to restore",
            file=sys.stderr,
        )
        return EXIT_NOT_VERIFIED
    say(f"restoring {args.alias} -> {before.version}")
    try:
        restored = store.rollback(args.name, args.alias)
        say(f"{args.alias} -> {restored.version} (rolled back from {restored.previous})")
        reload_server(args.pidfile)
        ok = wait_for_version(args.url, before.version, timeout=args.timeout, settle=args.settle)
    except Exception as exc:  # whatever broke, a person must now look at it
        print(f"error: restoring {before.version} failed: {exc}", file=sys.stderr)
        return EXIT_RESTORE_FAILED
    if not ok:
        print(
            f"error: {expected} was not verified and {before.version} is not served either", file=sys.stderr
        )
        return EXIT_RESTORE_FAILED
    print(f"error: {expected} was not verified; {args.alias} is back on {before.version}", file=sys.stderr)
    return EXIT_NOT_VERIFIED


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="scripts/rollout local",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--store", help="model store URI (default: $MODEL_STORE or store)")
    parser.add_argument("--name", help="model name (default: $MODEL_NAME or digits)")
    parser.add_argument(
        "--alias", default="production", help="the alias the service follows (default %(default)s)"
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", help="promote this version first (checked before the alias moves)")
    which.add_argument(
        "--rollback", action="store_true", help="move the alias back to its previous version first"
    )
    parser.add_argument("--pidfile", type=Path, required=True, help="the gunicorn master's pidfile")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the service (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the new version")
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="seconds every answer must name the new version (default %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a local rollout; return the exit code (see the module docstring)."""
    from model.errors import ModelError

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage error (or --help)
        return EXIT_USAGE if exc.code else EXIT_OK
    if args.timeout <= 0 or args.settle < 0:
        print("error: --timeout must be positive and --settle not negative", file=sys.stderr)
        return EXIT_USAGE
    # The only environment this command reads: the store and model name defaults, as `python -m model`.
    args.store = args.store or os.environ.get("MODEL_STORE") or "store"
    args.name = args.name or os.environ.get("MODEL_NAME") or "digits"
    try:
        return rollout(args)
    except RolloutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
