"""Scoring files: `score` (CSV / JSON-lines files, a folder or an s3:// prefix, with a verified version)."""

from __future__ import annotations

from model.commands.options import open_store, settings, verifier
from model.errors import ModelError, UsageError


def add_arguments(parser) -> None:
    """The options of `score` (model/cli.py adds --store, --name, --alias, --version, --verify-key)."""
    from model.scoring.batch import DEFAULT_CHUNK_ROWS

    parser.add_argument("input", metavar="INPUT",
                        help="a .csv or .jsonl file, a folder, or an s3:// prefix (every .csv/.jsonl "
                        "under it)")
    parser.add_argument("output", metavar="OUTPUT",
                        help="a .jsonl file for a single input, else a folder or s3:// prefix (one "
                        "<relative name>.jsonl per input)")
    parser.add_argument("--id-column", metavar="COL",
                        help="copy this column of each row into its result as `id` (kept out of the "
                        "features unless it is one)")
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, metavar="N",
                        help="rows read and scored at a time: what bounds memory (default %(default)s)")
    parser.add_argument("--shard", metavar="K/N", type=_shard,
                        help="score only the K-th of N equal shares of the input files (0-based; "
                        "scripts/score-tasks runs N tasks with K = 0 .. N-1)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="files scored in parallel processes, at most one per file and core (default: "
                        "the cores)")


def _shard(text: str) -> tuple[int, int]:
    import argparse

    k, sep, n = text.partition("/")
    if not sep or not k.isdigit() or not n.isdigit() or not 0 <= int(k) < int(n):
        raise argparse.ArgumentTypeError(f"expected K/N with 0 <= K < N, got {text!r}")
    return int(k), int(n)


class _Failed(ModelError):
    """The run's one `error:` line: what failed, with the code of the first failure."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.exit_code = code


def cmd_score(args) -> int:
    """Score files with a verified version, resumably, in parallel processes."""
    import os

    from model.loader import load_model
    from model.scoring.batch import Settings, plan, run
    from model.scoring.batch_progress import Progress

    if args.chunk_rows < 1:
        raise UsageError(f"--chunk-rows must be at least 1, got {args.chunk_rows}")
    workers = args.workers if args.workers is not None else os.cpu_count() or 1
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    store = open_store(args)
    _, name = settings(args)
    key = verifier(args)
    loaded = load_model(store, name, alias=args.alias, version=args.version, verifier=key)
    jobs = plan(args.input, args.output)
    if args.shard:
        # Every task lists the same inputs in the same order, so the shares never overlap.
        k, n = args.shard
        jobs = sorted(jobs, key=lambda job: job.output)[k::n]
    chosen = Settings(name, loaded.version, args.chunk_rows, args.id_column)
    progress = Progress()
    try:
        summary = run(loaded, jobs, chosen, workers=workers, progress=progress)
    finally:
        progress.close()
    scored, skipped, failed = (summary.count(s) for s in ("scored", "skipped", "failed"))
    print(f"{name} {loaded.version}: {len(jobs)} file(s): {scored} scored, {skipped} skipped (complete), "
          f"{failed} failed; {summary.rows:,} rows scored, {summary.errors:,} rows failed (skipped outputs "
          "included)")
    code = summary.exit_code()
    if code:
        first = next((o for o in summary.outcomes if o.status == "failed"), None)
        if first is not None:
            raise _Failed(f"{failed} of {len(jobs)} file(s) failed, the first: {first.reason}", code)
        raise _Failed(f"{summary.errors:,} row(s) could not be scored: see the outputs' .errors.jsonl files",
                      code)
    return 0
