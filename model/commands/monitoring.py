"""`python -m model monitor`: compare a version's captured records with its training profile.

    python -m model monitor [--version V | --alias A] [--since 24h] [--until TIME]
                            [--psi 0.25] [--out-of-range 0.05] [--unseen 0.05] [--coverage-drop 0.1]
                            [--min-records 100] [--report PATH.html] [--json PATH]

Prints a table (the features by PSI, top 20 plus every drifting one), the predictions' line and a
last line saying `drift: ...`, `no drift ...` or `too few records ...`. Exit 0: no drift, or too few
records to judge; 20: drift; 4: no record captured in the window. docs/monitoring.md has the details.
"""

from __future__ import annotations

import json
from pathlib import Path

from model.errors import NotFoundError, UsageError


def add_arguments(parser) -> None:
    """The options of `monitor` besides --store/--name/--version/--alias (model/cli.py adds those)."""
    from model.drift import Thresholds

    limits = Thresholds()
    parser.add_argument("--since", default="24h", metavar="DURATION|TIME",
                        help="from this long before --until (30m, 24h, 7d) or this ISO time (default 24h)")
    parser.add_argument("--until", metavar="TIME", help="up to this ISO time, exclusive (default now)")
    parser.add_argument("--psi", type=float, default=limits.psi,
                        help="drift when a feature's or the predictions' PSI reaches this "
                        "(default %(default)s)")
    parser.add_argument("--out-of-range", type=float, default=limits.out_of_range, metavar="SHARE",
                        help="drift when this share of a number's values is outside the training range "
                        "(default %(default)s)")
    parser.add_argument("--unseen", type=float, default=limits.unseen, metavar="SHARE",
                        help="drift when this share of a category's values was never seen in training "
                        "(default %(default)s)")
    parser.add_argument("--coverage-drop", type=float, default=limits.coverage_drop, metavar="SHARE",
                        help="text: drift when the token coverage falls this far below training's "
                        "(default %(default)s)")
    parser.add_argument("--min-records", type=int, default=limits.min_records, metavar="N",
                        help="with fewer records, say so and exit 0 instead of judging (default %(default)s)")
    parser.add_argument("--report", type=Path, metavar="PATH.html",
                        help="write the HTML drift report here (needs matplotlib)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the full result as JSON here")


def thresholds(args):
    """The Thresholds the flags name, checked (UsageError, exit 2, for a value that means nothing)."""
    import math

    from model.drift import Thresholds

    for option in ("psi", "out_of_range", "unseen", "coverage_drop"):
        value = getattr(args, option)
        if not math.isfinite(value) or value <= 0:
            raise UsageError(f"--{option.replace('_', '-')} must be a positive number, got {value}")
        if option != "psi" and value > 1:
            raise UsageError(f"--{option.replace('_', '-')} is a share between 0 and 1, got {value}")
    if args.min_records < 1:
        raise UsageError(f"--min-records must be at least 1, got {args.min_records}")
    return Thresholds(psi=args.psi, out_of_range=args.out_of_range, unseen=args.unseen,
                      coverage_drop=args.coverage_drop, min_records=args.min_records)


def _write(path: Path, text: str, what: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the {what} to {path}: {exc.strerror or exc}") from None


def cmd_monitor(args) -> int:
    """Compare the captured records of the window with the version's profile; print, write, judge."""
    from model.commands.options import open_store, settings, target
    from model.monitor.check import DriftDetected, monitor, table_lines
    from model.monitor.records import window

    limits = thresholds(args)
    span = window(args.since, args.until)
    store = open_store(args)
    _, name = settings(args)
    version = target(args, store, name)
    result = monitor(store, name, version, span, limits)
    if args.json:
        _write(args.json, json.dumps(result.to_json(), indent=2) + "\n", "JSON result")
    if args.report:
        from model.monitor.report import render_drift_report

        _write(args.report, render_drift_report(result), "report")
    last = result.last_line()
    if result.exit_code == NotFoundError.exit_code:
        raise NotFoundError(last)
    for line in table_lines(result):
        print(line)
    if result.drifting and result.exit_code:
        names = ", ".join(r.name for r in result.drifting[:10])
        more = f" and {len(result.drifting) - 10} more" if len(result.drifting) > 10 else ""
        raise DriftDetected(f"drift in {name} {version}: {names}{more}")
    return 0
