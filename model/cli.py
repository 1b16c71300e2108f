"""`python -m model`: train, import, publish, report, list, show, promote, rollback, verify, resolve, score,
predictions, monitor.

Every failure is one line on stderr, `error: ...`, and an exit code from model/exit_codes.py
(printed at the end of `--help`).
"""

# This docstring is the --help description. This module holds the argument parser, the dispatch and
# the one place errors become exit codes; the commands live in model/commands/, one module per job.

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model.commands.aliases import cmd_promote, cmd_rollback
from model.commands.browsing import cmd_history, cmd_list, cmd_models, cmd_resolve, cmd_show, cmd_verify
from model.commands.maintenance import cmd_clean, cmd_keygen
from model.commands.monitoring import add_arguments as add_monitor_arguments
from model.commands.monitoring import cmd_monitor
from model.commands.predictions import add_arguments as add_predictions_arguments
from model.commands.predictions import cmd_predictions
from model.commands.publishing import cmd_gate, cmd_import, cmd_publish, cmd_report, cmd_train
from model.commands.scoring import add_arguments as add_score_arguments
from model.commands.scoring import cmd_score
from model.errors import ModelError
from model.exit_codes import ExitCode, text_table
from model.store import DEFAULT_ALIAS, DEFAULT_NAME, DEFAULT_STORE


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every command (also used to render --help)."""
    from model.gate import DEFAULT_METRIC, DEFAULT_TOLERANCE, METRICS
    from model.train import DEFAULT_SEED, DEFAULT_TEST_SIZE

    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--store", help=f"store URI (default: $MODEL_STORE or {DEFAULT_STORE})")
    common = argparse.ArgumentParser(add_help=False, parents=[store])
    common.add_argument("--name", help=f"model name (default: $MODEL_NAME or {DEFAULT_NAME})")

    gate = argparse.ArgumentParser(add_help=False)
    gate.add_argument(
        "--gate-metric",
        default=DEFAULT_METRIC,
        choices=METRICS,
        help="default: macro_f1 for classifiers, r2 for regressors (mae and rmse: lower is better)",
    )
    gate.add_argument(
        "--gate-tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help="how much worse than the baseline is still accepted (default %(default)s)",
    )
    gate.add_argument(
        "--gate-alias",
        default=DEFAULT_ALIAS,
        help="the alias whose target is the baseline (default %(default)s)",
    )
    gate.add_argument("--force", action="store_true", help="publish even if the gate fails")
    gate.add_argument(
        "--allow-schema-change",
        action="store_true",
        help="accept a version whose inputs or classes differ from what the alias serves",
    )

    verifying = argparse.ArgumentParser(add_help=False)
    verifying.add_argument(
        "--verify-key",
        metavar="PEM|kms:KEY",
        help="refuse a version not signed by this key (default $MODEL_VERIFY_KEY)",
    )

    publishing = argparse.ArgumentParser(add_help=False)
    publishing.add_argument(
        "--sign-key",
        metavar="PEM|kms:KEY",
        help="sign the manifest with this key (default $MODEL_SIGNING_KEY)",
    )
    publishing.add_argument(
        "--promote", metavar="ALIAS", help="move this alias to the new version after publishing"
    )
    publishing.add_argument(
        "--version-file", metavar="PATH", help="write the published version id to this file"
    )
    publishing.add_argument(
        "--no-compile",
        action="store_true",
        help="train/import: do not convert the model to ONNX (model.onnx)",
    )
    publishing.add_argument(
        "--no-report",
        action="store_true",
        help="do not write the HTML report (stored beside the manifest; needs matplotlib)",
    )

    select = argparse.ArgumentParser(add_help=False)
    select.add_argument("--alias", default=None, help=f"alias to resolve (default {DEFAULT_ALIAS})")
    select.add_argument("--version", default=None, help="a version id (wins over --alias)")

    parser = argparse.ArgumentParser(
        prog="python -m model",
        description=__doc__,
        epilog=text_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "train", parents=[common, gate, publishing], help="train, evaluate, gate and publish a model"
    )
    p.add_argument(
        "--dataset",
        help="digits, iris, wine, breast_cancer, diabetes (regression), 20newsgroups (network), "
        "or a .csv path / s3:// URI (default digits)",
    )
    p.add_argument(
        "--recipe",
        help="the training code: a name from model/recipes/ (logreg, tfidf, hgb_table, "
        "forest_regressor, linear_svc) or package.module:function (default: logreg for "
        "numbers, hgb_table for mixed tables, tfidf for text)",
    )
    p.add_argument("--label-column", default="label", help="CSV label column (default %(default)s)")
    p.add_argument("--text-column", help="CSV text column: trains a text model on it alone")
    p.add_argument(
        "--column-kind",
        action="append",
        metavar="COLUMN=KIND",
        help="force a CSV column's kind: number, category, text or boolean",
    )
    p.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="recipe parameter (see the recipe's docstring)"
    )
    p.add_argument(
        "--plan",
        type=Path,
        metavar="TOML",
        help="train what the plan file names (model/training.toml): dataset, recipe, parameters "
        "(--dataset replaces the plan's data)",
    )
    p.add_argument("--model", metavar="NAME", help="with --plan: which entry (default: the first)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--test-size", type=float, default=DEFAULT_TEST_SIZE)
    p.add_argument("--out", type=Path, help="write a candidate folder instead of publishing")
    p.add_argument(
        "--if-empty", action="store_true", help="do nothing if the model already has a version in the store"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "import",
        parents=[common, gate, publishing],
        help="evaluate an estimator fitted elsewhere on held-out data, gate and publish it",
    )
    p.add_argument(
        "pickle",
        type=Path,
        help="a joblib or pickle file of a fitted estimator (loading it runs "
        "its code: import only files you trust)",
    )
    p.add_argument("--data", required=True, help="held-out data: a .csv path or s3:// URI")
    p.add_argument("--label-column", default="label", help="CSV label column (default %(default)s)")
    p.add_argument("--text-column", help="CSV text column, for a text model")
    p.add_argument(
        "--column-kind",
        action="append",
        metavar="COLUMN=KIND",
        help="force a CSV column's kind: number, category, text or boolean",
    )
    p.set_defaults(func=cmd_import)

    p = sub.add_parser(
        "report",
        parents=[common],
        help="write a version's HTML report (plots, metrics, lineage; needs matplotlib)",
    )
    p.add_argument("version", help="a version id or an alias")
    p.add_argument("--against", metavar="VERSION|ALIAS", help="compare with this version, e.g. production")
    p.add_argument("--out", type=Path, help="the HTML file (default report-<name>-<version>.html)")
    p.add_argument(
        "--publish",
        action="store_true",
        help="store it beside the version's manifest (the service serves it at /report)",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "publish",
        parents=[common, gate, publishing],
        help="gate and publish a candidate folder written by train --out",
    )
    p.add_argument("candidate", type=Path)
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser(
        "gate", parents=[common, gate], help="check a candidate folder against the quality gate only"
    )
    p.add_argument("candidate", type=Path)
    p.set_defaults(func=cmd_gate)

    p = sub.add_parser(
        "list",
        parents=[store],
        help="versions, newest first, with metrics and aliases: one model's, or every model's",
    )
    # Unlike the other commands, no name means every model rather than the default one.
    p.add_argument(
        "--name", help="only this model (default: $MODEL_NAME; neither: every model, grouped by model)"
    )
    p.add_argument("--json", action="store_true", help="the same as JSON: each version names its model")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("models", parents=[common], help="every model in the store, with its aliases")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "show",
        parents=[common, select],
        help="print a version's manifest (the newest when the alias is unset)",
    )
    p.add_argument("--profile", action="store_true",
                   help="print only the training data's profile, in full (show summarises it)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("resolve", parents=[common, select], help="print the version an alias names")
    p.set_defaults(func=cmd_resolve)

    p = sub.add_parser(
        "promote",
        parents=[common, gate, verifying],
        help="move an alias to a version (gated against the alias's target)",
    )
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

    p = sub.add_parser(
        "verify",
        parents=[common, select, verifying],
        help="download, hash-check (and check the signature of) and load a version",
    )
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "clean",
        parents=[common],
        help="remove versions a crashed publish left without a manifest, and empty folders",
    )
    p.add_argument(
        "--older-than-hours",
        type=float,
        default=1.0,
        help="only versions whose id time is older than this: a younger one may still be "
        "publishing (default %(default)s)",
    )
    p.add_argument("--dry-run", action="store_true", help="list what would be removed")
    p.set_defaults(func=cmd_clean)

    p = sub.add_parser(
        "score",
        parents=[common, select, verifying],
        help="score .csv/.jsonl files (a file, a folder or an s3:// prefix) with a verified version, "
        "resumably, in parallel processes",
    )
    add_score_arguments(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "predictions",
        help="what the scoring function stored: one object's predictions, or a day's and its per-class "
        "counters ($PREDICTIONS_TABLE)",
    )
    add_predictions_arguments(p)
    p.set_defaults(func=cmd_predictions)

    p = sub.add_parser(
        "monitor",
        parents=[common, select],
        help="compare a version's captured predictions with its training profile (drift: exit 20); "
        "a table, --json and an HTML --report",
    )
    add_monitor_arguments(p)
    p.set_defaults(func=cmd_monitor)

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
