"""Batch scoring against in-process prediction:
`python -m bench.scoring [--model digits|forest] [--rows N] [--runs 3]`.

The model (digits, the default: the issue's; or bench/models.py's 100-tree random forest, whose
prediction costs more than reading its rows) is trained and published (compiled to ONNX when it
converts) into a temporary store; a CSV of N of its rows is written; then, medians of `--runs` runs:

- `model score`: `python -m model score FILE OUT --workers 1` as a user runs it; its rate is the
  file's own (rows / the seconds its done marker records, from opening the file to committing the
  output), and the wall
  time with the interpreter's start and the model's load is shown beside it;
- in-process predict: the same version's onnxruntime session (or predict_proba without model.onnx)
  on the same rows, already in a float matrix, in the same chunks: the ceiling;
- in-process read + predict + write: the same rows read with the csv module, predicted, and written
  as JSON lines with orjson by a plain loop: what a lean hand-written script does with the same
  model (no checks, no bad-row handling, no resumability).

The ratio of `model score` to in-process predict is the issue's target (>= 80 %).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent


def _prepare(workdir: Path, model: str, rows: int):
    from model.loader import load_model
    from model.store import ModelStore

    if model == "digits":
        from model.data import load_dataset
        from model.train import train

        data = load_dataset("digits")
        candidate, base = train(data, name=model), np.asarray(data.X)
    else:  # bench/models.py's 100-tree random forest on breast-cancer rows: the model costs more
        from sklearn.datasets import load_breast_cancer

        from bench.models import _forest

        candidate, _ = _forest(model)
        base = load_breast_cancer().data
    store = ModelStore(str(workdir / "store"))
    artifact, manifest = candidate
    store.publish(artifact, manifest, onnx=candidate.onnx)
    store.move_alias(model, "production", manifest["version"])
    X = np.vstack([base] * (-(-rows // len(base))))[:rows]
    source = workdir / "rows.csv"
    with open(source, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(manifest["input_schema"]["features"])
        writer.writerows([repr(float(v)) for v in row] for row in X)
    return store.uri, load_model(store, model), X, source


def _predictor(loaded):
    from model.scoring.batch_model import open_predictor

    return open_predictor(loaded, max_batch=1_000_000)


def _in_process(predict, X, chunk: int) -> float:
    started = time.perf_counter()
    for i in range(0, len(X), chunk):
        predict(X[i: i + chunk])
    return len(X) / (time.perf_counter() - started)


def _script(predict_proba, classes, source: Path, out: Path, chunk: int) -> float:
    started = time.perf_counter()
    keys = [str(c) for c in classes]
    with open(source, newline="") as fh, open(out, "wb") as sink:
        reader = csv.reader(fh)
        next(reader)
        rows = 0
        while True:
            block = [row for _, row in zip(range(chunk), reader, strict=False)]
            if not block:
                break
            proba = predict_proba(np.asarray(block, dtype=np.float64))
            for p in proba.tolist():
                best = classes[max(range(len(p)), key=p.__getitem__)]
                sink.write(orjson.dumps({"label": best, "probabilities": dict(zip(keys, p, strict=True))}))
                sink.write(b"\n")
            rows += len(block)
    return rows / (time.perf_counter() - started)


def _cli(store_uri: str, model: str, source: Path, out: Path, chunk: int) -> tuple[float, float]:
    for stale in out.parent.glob(out.name + "*"):
        stale.unlink()
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "model", "score", str(source), str(out), "--store", store_uri,
                    "--name", model, "--workers", "1", "--chunk-rows", str(chunk)], cwd=ROOT,
                   capture_output=True, check=True)
    wall = time.perf_counter() - started
    done = json.loads(Path(f"{out}.done").read_text())  # the file's own time, from open to commit
    return done["rows"] / done["seconds"], done["rows"] / wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scoring", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("digits", "forest"), default="digits")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, default=1000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        store_uri, loaded, X, source = _prepare(workdir, args.model, args.rows)
        predictor = _predictor(loaded)
        if predictor.compiled is not None:
            path = "onnxruntime"
            session = predictor.compiled.session

            def predict(rows):
                return session.run(rows)["matrix"]
            predict(X[:1])  # warm up
        else:
            path, predict = "predict_proba", loaded.estimator.predict_proba
        cli, ceiling, script = [], [], []
        for _ in range(args.runs):
            cli.append(_cli(store_uri, args.model, source, workdir / "out.jsonl", args.chunk_rows))
            ceiling.append(_in_process(predict, X, args.chunk_rows))
            script.append(_script(predict, loaded.manifest["classes"], source, workdir / "script.jsonl",
                                  args.chunk_rows))
    scored = statistics.median(rate for rate, _ in cli)
    wall = statistics.median(rate for _, rate in cli)
    inner, plain = statistics.median(ceiling), statistics.median(script)
    print(f"{args.model} {loaded.version}, {args.rows:,} CSV rows, chunks of {args.chunk_rows}, medians of "
          f"{args.runs} runs; prediction path: {path} (model score: {predictor.path})")
    print(f"model score (the file's own rate):        {scored:>12,.0f} rows/s")
    print(f"model score (wall, start and load incl.): {wall:>12,.0f} rows/s")
    print(f"in-process {path} on a ready matrix:  {inner:>12,.0f} rows/s")
    print(f"in-process csv read + predict + write:    {plain:>12,.0f} rows/s")
    print(f"ratio model score / in-process predict:          {scored / inner:6.1%} (target >= 80 %)")
    print(f"ratio model score / in-process read+predict+write: {scored / plain:6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
