"""`python -m model predictions`: what the scoring function stored (model/scoring/table.py).

    python -m model predictions --object s3://BUCKET/KEY [--version-id V]   the file's predictions
    python -m model predictions --day YYYY-MM-DD [--name M]                  a model's predictions of a day
    python -m model predictions --day YYYY-MM-DD [--name M] --counts         its per-class counters

The table is --table or $PREDICTIONS_TABLE (the stack's PredictionsTable output). --json prints JSON
lines (one prediction, or one class count, per line); otherwise a table.
"""

from __future__ import annotations

import json
import os
import re

from model.errors import NotFoundError, StoreError, UsageError

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def add_arguments(parser) -> None:
    """The options of `predictions` (model/cli.py registers the command)."""
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--object", metavar="s3://BUCKET/KEY", help="the predictions of one scored file")
    what.add_argument("--day", metavar="YYYY-MM-DD",
                      help="a model's predictions of one day (UTC, the day of the upload)")
    parser.add_argument(
        "--version-id",
        metavar="V",
        help="with --object: the object version (or, in a bucket without versioning, the etag) that was "
        "scored (default: the object's current one, asked from S3)",
    )
    parser.add_argument("--name", help="with --day: the model (default: $MODEL_NAME or digits)")
    parser.add_argument("--counts", action="store_true", help="with --day: the per-class counters instead")
    parser.add_argument("--table", help="the predictions table (default: $PREDICTIONS_TABLE)")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")


def cmd_predictions(args) -> int:
    """List stored predictions of an object or a day, or a day's counters."""
    from botocore.exceptions import BotoCoreError, ClientError

    table = _given(args, "table") or os.environ.get("PREDICTIONS_TABLE", "").strip()
    if not table:
        raise UsageError("no predictions table: pass --table or set PREDICTIONS_TABLE")
    if args.object is None and args.version_id:
        raise UsageError("--version-id goes with --object")
    if args.object is not None and args.counts:
        raise UsageError("--counts goes with --day (counters are per model and day)")
    try:
        if args.object is not None:
            return _by_object(args, table)
        return _by_day(args, table)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            raise NotFoundError(f"no predictions table {table!r}") from None
        raise StoreError(f"cannot read {table}: {code or exc}") from None
    except BotoCoreError as exc:
        raise StoreError(f"cannot read {table}: {exc}") from None


def _given(args, option: str) -> str | None:
    value = getattr(args, option, None)
    if value is not None and not value.strip():
        raise UsageError(f"--{option} was given an empty value")
    return value


def _client(service: str):
    import boto3

    return boto3.client(service)


def _by_object(args, table: str) -> int:
    from model.scoring import table as stored

    bucket, _, key = args.object.removeprefix("s3://").partition("/")
    if not args.object.startswith("s3://") or not bucket or not key:
        raise UsageError(f"--object takes s3://bucket/key, got {args.object!r}")
    version = _given(args, "version_id") or _current_version(bucket, key)
    found = stored.by_object(_client("dynamodb"), table, bucket, key, version)
    rows, done = found["predictions"], found["done"]
    if args.json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return 0
    where = f"s3://{bucket}/{key} version {version}"
    if not rows:
        print(f"no predictions stored for {where}")
        return 0
    for marker in done:
        print(f"{where}: {marker['rows']} row(s) scored by {marker['model']} {marker['version']} "
              f"at {marker['scored_at']}")
    _print_rows(rows, with_object=False)
    return 0


def _current_version(bucket: str, key: str) -> str:
    """The object's current version id, or its etag when the bucket has no versioning (what the
    scoring function keys a file by)."""
    from botocore.exceptions import ClientError

    try:
        head = _client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NoSuchBucket"):
            raise NotFoundError(f"s3://{bucket}/{key} does not exist now: name the scored version with "
                                "--version-id") from None
        raise
    version = head.get("VersionId")
    return version if version and version != "null" else head["ETag"].strip('"')


def _by_day(args, table: str) -> int:
    from model.commands.options import chosen_name
    from model.scoring import table as stored
    from model.store import DEFAULT_NAME

    if not _DAY.match(args.day):
        raise UsageError(f"--day takes YYYY-MM-DD, got {args.day!r}")
    name = chosen_name(args) or DEFAULT_NAME
    dynamodb = _client("dynamodb")
    if args.counts:
        counts = stored.counts(dynamodb, table, name, args.day)
        if args.json:
            for label, count in sorted(counts.items()):
                print(json.dumps({"model": name, "day": args.day, "label": label, "count": count}))
        elif not counts:
            print(f"no counts of {name} on {args.day}")
        else:
            width = max(len("label"), *(len(label) for label in counts))
            print(f"{name} on {args.day}: {sum(counts.values())} prediction(s)")
            print(f"{'label':<{width}}  count")
            for label, count in sorted(counts.items()):
                print(f"{label:<{width}}  {count}")
        return 0
    rows = stored.by_day(dynamodb, table, name, args.day)
    if args.json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
    elif not rows:
        print(f"no predictions of {name} on {args.day}")
    else:
        _print_rows(rows, with_object=True)
    return 0


def _print_rows(rows: list[dict], *, with_object: bool) -> None:
    """One line per prediction: (object,) row, id, label or value, its probability, model version."""
    lines = []
    for row in rows:
        shown = row.get("label", row.get("value", ""))
        probability = (row.get("probabilities") or {}).get(str(shown))
        lines.append(([row["object"]] if with_object else []) + [
            str(row["row"]), str(row.get("id") or ""), str(shown),
            f"{probability:.3f}" if isinstance(probability, int | float) else "", row["version"]])
    header = (["object"] if with_object else []) + ["row", "id", "label", "p", "version"]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    for line in [header, *lines]:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
