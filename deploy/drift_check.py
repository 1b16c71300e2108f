"""`make monitor-check` (Jenkins' Monitor stage): run the monitor and turn drift into a retrain request.

    python -m deploy.drift_check [--retrain-file build/monitor/retrain] [-- MONITOR OPTIONS]

Runs `python -m model monitor` with the options after `--` (the Makefile passes the report and JSON
paths, --since and MONITOR_ARGS) and translates its exit code for a pipeline:

- 0 (no drift, or too few records to judge): removes the retrain file; exits 0.
- 20 (drift): writes the retrain file, one line holding the dataset to retrain on, and exits 0, so
  the stage passes and the next one ('Retrain on drift') starts a train build with that dataset.
- anything else (4: no captured record in the window, 3: the store cannot be read, ...): exits with
  that code; the monitor's own `error:` line is above it, and no retrain is requested.

The retrain file is removed first in every case: a workspace keeps files between builds, and a
request left by yesterday's build must not start a retrain today.

"The recent data" is the newest `.csv` object directly under `s3://<bucket>/<DATA_PREFIX>/<model>/`,
the prefix whose uploads start a training run in the stack (deploy/training/trigger.py). That bucket
is the model store's (the stack's ModelBucket holds the store, the data and the captures), so it is
known when MODEL_STORE (or the monitor's --store) is an s3:// URI. Otherwise (a local store), or when
that prefix holds no CSV, the line is empty: "retrain on the training plan's own dataset".
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from model.exit_codes import ExitCode, text_table

RETRAIN_FILE = Path("build/monitor/retrain")


def monitor_target(monitor_args: list[str], environ: dict | None = None) -> tuple[str, str]:
    """(store URI, model name) the monitor will read: its --store/--name, else MODEL_STORE/MODEL_NAME,
    else the defaults, as `python -m model` decides them (model/commands/options.py)."""
    from deploy.settings import settings
    from model.store import DEFAULT_STORE

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--store")
    parser.add_argument("--name")
    given, _ = parser.parse_known_args(monitor_args)
    env = settings(environ)
    return given.store or env["MODEL_STORE"] or DEFAULT_STORE, given.name or env["MODEL_NAME"]


def newest_data(store: str, name: str, data_prefix: str, s3=None) -> str:
    """The newest `.csv` under s3://<store's bucket>/<data_prefix>/<name>/ as an s3:// URI; "" when the
    store is not on S3 or the prefix holds none. Newest: latest LastModified, then the greater key
    (the training trigger's order, so a retrain and an upload-started run agree)."""
    from urllib.parse import urlparse

    from deploy.aws import aws_errors, client

    parsed = urlparse(store)
    if parsed.scheme != "s3" or not parsed.netloc:
        return ""
    bucket, prefix = parsed.netloc, f"{data_prefix.strip('/')}/{name}/"
    s3 = s3 or client("s3")
    listed = {}
    with aws_errors(f"listing the training data s3://{bucket}/{prefix}"):
        # Delimiter: only the model's own folder, as the trigger watches it (no sub-folders).
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            listed.update({o["Key"]: o["LastModified"] for o in page.get("Contents", [])
                           if o["Key"].lower().endswith(".csv")})
    if not listed:
        return ""
    newest = max(listed, key=lambda key: (listed[key], key))
    return f"s3://{bucket}/{newest}"


def check(monitor_args: list[str], retrain_file: Path) -> int:
    """Run the monitor, then write or remove the retrain request; returns the exit code."""
    from deploy.settings import settings

    retrain_file.unlink(missing_ok=True)
    # The monitor's output (its summary line, or its error line) goes straight to the build log.
    code = subprocess.run([sys.executable, "-m", "model", "monitor", *monitor_args]).returncode
    if code == ExitCode.OK:
        print("drift-check: no drift: no retrain requested", flush=True)
        return ExitCode.OK
    if code != ExitCode.DRIFT:
        return code
    store, name = monitor_target(monitor_args)
    dataset = newest_data(store, name, settings()["DATA_PREFIX"])
    retrain_file.parent.mkdir(parents=True, exist_ok=True)
    retrain_file.write_text(dataset + "\n")
    on = dataset or "the training plan's own dataset (no newer data found)"
    print(f"drift-check: drift found in {name}: retrain requested on {on} ({retrain_file})", flush=True)
    return ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors with their exit codes (model/exit_codes.py)."""
    from deploy.errors import run_command

    parser = argparse.ArgumentParser(prog="python -m deploy.drift_check", description=__doc__,
                                     epilog=text_table(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--retrain-file", type=Path, default=RETRAIN_FILE,
                        help="where a retrain request is written (default %(default)s)")
    parser.add_argument("monitor_args", nargs="*", metavar="-- OPTION",
                        help="`python -m model monitor` options, after `--`")
    args = parser.parse_args(argv)
    return run_command(lambda: check(args.monitor_args, args.retrain_file))


if __name__ == "__main__":
    sys.exit(main())
