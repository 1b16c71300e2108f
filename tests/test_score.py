"""`python -m model score`: files scored in chunks with a verified version, on disk and in S3 (moto),
resumably, in parallel processes, with bad rows set aside and memory bounded by the chunk."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from helpers import PYTHON, ROOT, cli_fails, cli_ok, run_cli

from model.exit_codes import ExitCode


@pytest.fixture(scope="module")
def digits():
    from model.data import load_dataset

    data = load_dataset("digits")
    return data.X, list(data.feature_names)


def csv_text(X, names, start: int = 0, id_column: str = "id") -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([id_column, *names])
    for i, row in enumerate(X):
        writer.writerow([f"r{start + i}", *(f"{v:g}" for v in row)])
    return out.getvalue()


def jsonl_text(X, names) -> str:
    return "".join(json.dumps({"id": i, **dict(zip(names, row.tolist(), strict=True))}) + "\n"
                   for i, row in enumerate(X))


def expected(store_uri: str, X) -> list[dict]:
    """In-process predictions of the store's production version: predict_proba on the same rows."""
    from model.loader import load_model
    from model.store import ModelStore

    loaded = load_model(ModelStore(store_uri), "digits")
    proba = loaded.estimator.predict_proba(np.asarray(X, dtype=np.float64))
    classes = loaded.manifest["classes"]
    return [{"label": classes[int(p.argmax())], "probabilities": dict(zip(map(str, classes), p.tolist(),
                                                                           strict=True)),
             "version": loaded.version} for p in proba]


def assert_equal_predictions(lines: list[dict], want: list[dict], ids: list) -> None:
    assert [line["row"] for line in lines] == list(range(1, len(want) + 1))
    assert [line["id"] for line in lines] == ids
    for line, reference in zip(lines, want, strict=True):
        assert line["model"] == "digits" and line["version"] == reference["version"]
        assert line["label"] == reference["label"]
        assert line["probabilities"] == pytest.approx(reference["probabilities"], abs=1e-9)


def read_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line]


# -- S3 in, S3 out -----------------------------------------------------------------------------------
def test_an_s3_prefix_is_scored_into_an_s3_prefix_as_in_process_predictions(aws_env, s3_bucket, local_store,
                                                                            digits):
    import boto3

    X, names = digits
    s3 = boto3.client("s3")
    parts = {"batch/a.csv": (X[:150], csv_text(X[:150], names), [f"r{i}" for i in range(150)]),
             "batch/nested/b.csv": (X[150:260], csv_text(X[150:260], names, start=150),
                                    [f"r{i}" for i in range(150, 260)]),
             "batch/c.jsonl": (X[260:400], jsonl_text(X[260:400], names), list(range(140)))}
    for key, (_, text, _) in parts.items():
        s3.put_object(Bucket=s3_bucket, Key=key, Body=text.encode())
    s3.put_object(Bucket=s3_bucket, Key="batch/notes.txt", Body=b"not an input")

    out = cli_ok(run_cli("score", f"s3://{s3_bucket}/batch/", f"s3://{s3_bucket}/scored", "--store",
                         local_store, "--id-column", "id", "--chunk-rows", "64", "--workers", "2",
                         env=aws_env))
    assert "3 scored, 0 skipped" in out and "0 failed" in out
    for key, (rows, text, ids) in parts.items():
        stem = key[len("batch/"):].rsplit(".", 1)[0]
        body = s3.get_object(Bucket=s3_bucket, Key=f"scored/{stem}.jsonl")["Body"].read().decode()
        assert_equal_predictions(read_lines(body), expected(local_store, rows), ids)
        done = json.loads(s3.get_object(Bucket=s3_bucket, Key=f"scored/{stem}.jsonl.done")["Body"].read())
        assert done["rows"] == len(rows) and done["errors"] == 0 and done["model"] == "digits"
        assert done["input"]["size"] == len(text.encode())
    listed = {o["Key"]: o["LastModified"] for o in s3.list_objects_v2(Bucket=s3_bucket,
                                                                      Prefix="scored/")["Contents"]}
    assert not any(k.endswith(".errors.jsonl") for k in listed) and len(listed) == 6
    time.sleep(1)  # S3 times have one-second resolution: a rewrite would show

    again = cli_ok(run_cli("score", f"s3://{s3_bucket}/batch", f"s3://{s3_bucket}/scored", "--store",
                           local_store, "--id-column", "id", env=aws_env))
    assert "0 scored, 3 skipped" in again and again.count("skipped s3://") == 3
    assert {o["Key"]: o["LastModified"] for o in s3.list_objects_v2(Bucket=s3_bucket,
                                                                     Prefix="scored/")["Contents"]} == listed


# -- a local folder ------------------------------------------------------------------------------------
def test_a_local_folder_is_scored_in_process_and_a_rerun_skips_it(tmp_path, local_store, digits):
    X, names = digits
    inputs = tmp_path / "in"
    (inputs / "deep").mkdir(parents=True)
    (inputs / "one.csv").write_text(csv_text(X[:120], names))
    (inputs / "deep" / "two.jsonl").write_text(jsonl_text(X[120:300], names))
    outputs = tmp_path / "out"

    out = cli_ok(run_cli("score", str(inputs), str(outputs), "--store", local_store, "--id-column", "id",
                         "--workers", "1", "--chunk-rows", "50"))
    assert "2 scored" in out
    assert_equal_predictions(read_lines((outputs / "one.jsonl").read_text()), expected(local_store, X[:120]),
                             [f"r{i}" for i in range(120)])
    assert_equal_predictions(read_lines((outputs / "deep" / "two.jsonl").read_text()),
                             expected(local_store, X[120:300]), list(range(180)))
    marker = outputs / "one.jsonl.done"
    stamp = marker.stat().st_mtime_ns
    again = cli_ok(run_cli("score", str(inputs), str(outputs), "--store", local_store, "--id-column", "id"))
    assert "0 scored, 2 skipped" in again
    assert marker.stat().st_mtime_ns == stamp
    assert not list(outputs.rglob(".*.partial"))


def test_one_file_scores_into_one_file_without_an_id(tmp_path, local_store, digits):
    X, _ = digits
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(row.tolist()) + "\n" for row in X[:30]))
    target = tmp_path / "result.jsonl"
    cli_ok(run_cli("score", str(source), str(target), "--store", local_store))
    lines = read_lines(target.read_text())
    assert all("id" not in line for line in lines)
    assert_equal_predictions([{**line, "id": None} for line in lines], expected(local_store, X[:30]),
                             [None] * 30)


# -- resumable ------------------------------------------------------------------------------------------
def test_a_killed_run_resumes_without_rescoring_finished_files_or_duplicating_rows(tmp_path, local_store,
                                                                                   digits):
    X, names = digits
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    rows = np.vstack([X] * 2)  # 3594 rows per file
    for i in range(4):
        (inputs / f"part-{i}.csv").write_text(csv_text(rows, names))
    command = [PYTHON, "-m", "model", "score", str(inputs), str(outputs), "--store", local_store,
               "--id-column", "id", "--chunk-rows", "100", "--workers", "1"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while not list(outputs.glob("*.done")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in outputs.glob("*.done")}
    assert 1 <= len(finished) < 4, f"the run was not killed midway: {sorted(finished)}"
    for name in finished:  # what is marked done is whole
        assert len(read_lines((outputs / name[:-len(".done")]).read_text())) == len(rows)

    out = cli_ok(run_cli(*command[3:]))
    for name in finished:
        assert f"skipped {inputs / (name[:-len('.jsonl.done')] + '.csv')}" in out
    assert f"{4 - len(finished)} scored, {len(finished)} skipped" in out
    assert {p.name: p.stat().st_mtime_ns for p in outputs.glob("*.done") if p.name in finished} == finished
    for i in range(4):
        lines = read_lines((outputs / f"part-{i}.jsonl").read_text())
        assert [line["row"] for line in lines] == list(range(1, len(rows) + 1))  # each row once
        assert json.loads((outputs / f"part-{i}.jsonl.done").read_text())["rows"] == len(rows)
    assert not list(outputs.glob(".*.partial"))


def test_a_changed_input_is_scored_again(tmp_path, local_store, digits):
    X, names = digits
    source = tmp_path / "in.csv"
    source.write_text(csv_text(X[:10], names))
    target = tmp_path / "out.jsonl"
    cli_ok(run_cli("score", str(source), str(target), "--store", local_store, "--id-column", "id"))
    source.write_text(csv_text(X[:20], names))
    out = cli_ok(run_cli("score", str(source), str(target), "--store", local_store, "--id-column", "id"))
    assert "1 scored, 0 skipped" in out
    assert len(read_lines(target.read_text())) == 20


# -- bad rows ---------------------------------------------------------------------------------------------
def test_bad_rows_go_to_the_errors_file_and_the_exit_code_says_rows_failed(tmp_path, local_store, digits):
    X, names = digits
    inputs = tmp_path / "in"
    inputs.mkdir()
    table = csv_text(X[:5], names).splitlines()
    cells = table[2].split(",")
    table[2] = ",".join([cells[0], "dark", *cells[2:]])  # row 2: a value that is not a number
    table[4] = "r3,1,2,3"  # row 4: too few values
    (inputs / "a.csv").write_text("\n".join(table) + "\n")
    good = {"id": "ok", **dict(zip(names, X[0].tolist(), strict=True))}
    (inputs / "b.jsonl").write_text("\n".join([
        json.dumps(good),
        '{"id": "broken", "pixel_0_0": ',  # row 2: not JSON
        json.dumps({**good, "id": "extra", "colour": 3}),  # row 3: a column the model does not take
        json.dumps({**good, "id": "missing", "pixel_7_7": None}),  # row 4: not a number
        json.dumps(good),
    ]) + "\n")
    outputs = tmp_path / "out"
    result = run_cli("score", str(inputs), str(outputs), "--store", local_store, "--id-column", "id",
                     "--workers", "1")
    cli_fails(result, ExitCode.ROWS_FAILED, "5 row(s) could not be scored")
    assert "2 scored" in result.stdout and "5 rows failed" in result.stdout

    assert [line["row"] for line in read_lines((outputs / "a.jsonl").read_text())] == [1, 3, 5]
    errors = read_lines((outputs / "a.jsonl.errors.jsonl").read_text())
    assert [(e["row"], e["id"]) for e in errors] == [(2, "r1"), (4, "r3")]
    assert errors[0]["error"] == "column pixel_0_0 is a string ('dark'): feature values must be numbers"
    assert errors[1]["error"] == "the row has 4 values, the header has 65 columns"
    assert json.loads((outputs / "a.jsonl.done").read_text())["errors"] == 2

    assert [line["row"] for line in read_lines((outputs / "b.jsonl").read_text())] == [1, 5]
    errors = read_lines((outputs / "b.jsonl.errors.jsonl").read_text())
    assert [e["row"] for e in errors] == [2, 3, 4]
    assert errors[0]["error"].startswith("the line is not valid JSON")
    assert "unknown features colour" in errors[1]["error"] and errors[1]["id"] == "extra"
    assert "pixel_7_7" in errors[2]["error"] and "feature values must be numbers" in errors[2]["error"]

    # Complete outputs with failed rows are skipped by a re-run, which still says rows failed.
    again = run_cli("score", str(inputs), str(outputs), "--store", local_store, "--id-column", "id")
    cli_fails(again, ExitCode.ROWS_FAILED, "could not be scored")
    assert "2 skipped" in again.stdout


# -- bad input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "code", "message"), [
    ("missing input", ExitCode.NOT_FOUND, "does not exist"),
    ("unknown version", ExitCode.NOT_FOUND, "not found"),
    ("header", ExitCode.ROWS_FAILED, "the header does not fit the model: it has columns the model does not "
                                     "take: id (name the id column with --id-column)"),
    ("output inside input", ExitCode.USAGE, "is inside the input"),
    ("chunk", ExitCode.USAGE, "--chunk-rows must be at least 1"),
    ("not an input", ExitCode.USAGE, "is not a .csv or .jsonl file"),
])
def test_bad_input_gives_one_error_line_and_the_documented_code(tmp_path, local_store, digits, case, code,
                                                                 message):
    X, names = digits
    source = tmp_path / "in.csv"
    source.write_text(csv_text(X[:3], names))
    args = {"missing input": [str(tmp_path / "nothing.csv"), str(tmp_path / "o.jsonl")],
            "unknown version": [str(source), str(tmp_path / "o.jsonl"), "--version",
                                "20990101T000000Z-00000000"],
            "header": [str(source), str(tmp_path / "o.jsonl")],
            "output inside input": [str(tmp_path), str(tmp_path / "scored")],
            "chunk": [str(source), str(tmp_path / "o.jsonl"), "--chunk-rows", "0"],
            "not an input": [str(tmp_path / "rows.txt"), str(tmp_path / "o.jsonl")]}[case]
    (tmp_path / "rows.txt").write_text("1,2\n")
    cli_fails(run_cli("score", *args, "--store", local_store), code, message)
    assert not (tmp_path / "o.jsonl.done").exists() and not (tmp_path / "o.jsonl").exists()


def test_a_missing_bucket_is_not_found(aws_env, local_store):
    cli_fails(run_cli("score", "s3://no-such-bucket-for-scoring/in/", "s3://no-such-bucket-for-scoring/out",
                      "--store", local_store, env=aws_env), ExitCode.NOT_FOUND, "does not exist")


# -- memory --------------------------------------------------------------------------------
_PEAK = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def test_memory_stays_flat_on_a_file_many_times_the_chunk(tmp_path, local_store, digits):
    X, names = digits
    chunk = 100

    def peak_kib(rows: int) -> int:
        source = tmp_path / f"rows-{rows}.csv"
        reps = -(-rows // len(X))
        source.write_text(csv_text(np.vstack([X] * reps)[:rows], names))
        command = [PYTHON, "-m", "model", "score", str(source), str(tmp_path / f"out-{rows}.jsonl"),
                   "--store", local_store, "--chunk-rows", str(chunk), "--id-column", "id"]
        # A fresh parent per measurement: RUSAGE_CHILDREN is the peak of its own children only.
        result = subprocess.run([PYTHON, "-c", _PEAK, *command], cwd=ROOT, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr
        return int(result.stdout)

    small, large = peak_kib(20 * chunk), peak_kib(400 * chunk)  # 0.6 MB and 11 MB of CSV
    # Holding the larger file's rows would take tens of MB (40,000 rows x 64 floats as Python objects).
    assert large - small < 8 * 1024, (small, large)


# -- progress --------------------------------------------------------------------------------
def test_on_a_terminal_the_progress_line_shows_rows_per_second_and_an_eta():
    from model.scoring.batch_progress import Progress

    bar, out = io.StringIO(), io.StringIO()
    progress = Progress(out=out, bar=bar, tty=True)
    progress.start(2, 1000)
    progress.started -= 1.0
    progress._drawn = 0.0
    progress.advance(500, 250)
    drawn = bar.getvalue()
    assert drawn.startswith("\r[") and "25%" in drawn and "500 rows" in drawn and "rows/s" in drawn
    assert "ETA 0:0" in drawn and "(0/2 files)" in drawn and "\n" not in drawn
    quiet = Progress(out=io.StringIO(), bar=io.StringIO(), tty=False)
    quiet.start(1, 10)
    quiet.advance(5, 5)
    assert quiet.stream.getvalue() == ""



# -- a mixed table ------------------------------------------------------------------------------------------
def test_a_mixed_table_is_typed_by_column_and_an_unknown_category_is_a_bad_row(tmp_path):
    from helpers import write_churn_csv

    from model.data import load_dataset
    from model.loader import load_model
    from model.store import ModelStore
    from model.tabular import to_input
    from model.train import train

    training = write_churn_csv(tmp_path / "churn.csv", rows=200)
    store = ModelStore(str(tmp_path / "store"))
    artifact, manifest = train(load_dataset(str(training), label_column="churned"), name="churn",
                               compile=False)
    store.publish(artifact, manifest)
    store.move_alias("churn", "production", manifest["version"])
    with open(training, newline="") as fh:
        table = [row[:4] for row in list(csv.reader(fh))[1:21]]
    table[3][1] = "gold"  # row 4: a plan the model's encoder refuses
    table[6][2] = "maybe"  # row 7: not a boolean
    source = tmp_path / "customers.csv"
    source.write_text("customer,age,plan,active,note\n" + "".join(
        f"c{i},{','.join(row)}\n" for i, row in enumerate(table)))

    result = run_cli("score", str(source), str(tmp_path / "scored.jsonl"), "--store", store.uri, "--name",
                     "churn", "--id-column", "customer")
    cli_fails(result, ExitCode.ROWS_FAILED, "2 row(s) could not be scored")
    errors = read_lines((tmp_path / "scored.jsonl.errors.jsonl").read_text())
    assert [(e["row"], e["id"]) for e in errors] == [(4, "c3"), (7, "c6")]
    assert errors[0]["error"].startswith("column plan: expected one of") and '"gold"' in errors[0]["error"]
    assert errors[1]["error"].startswith("column active: expected true or false")

    lines = read_lines((tmp_path / "scored.jsonl").read_text())
    good = [row for i, row in enumerate(table) if i not in (3, 6)]
    loaded = load_model(store, "churn")
    columns = loaded.manifest["input_schema"]["columns"]
    typed = [[float(age), plan, active == "true", note] for age, plan, active, note in good]
    proba = loaded.estimator.predict_proba(to_input(columns, typed, frame=True))
    assert [line["id"] for line in lines] == [f"c{i}" for i in range(20) if i not in (3, 6)]
    for line, p in zip(lines, proba, strict=True):
        assert line["probabilities"] == pytest.approx(dict(zip(map(str, loaded.manifest["classes"]),
                                                                p.tolist(), strict=True)), abs=1e-9)


# -- the fast path: a chunk of numbers read and predicted as one matrix ------------------------------
@pytest.fixture(scope="module", params=["sklearn", "onnx"])
def digits_predictor(request, tmp_path_factory):
    """The service's Predictor of a published digits version: without model.onnx (scikit-learn) and
    with it (onnxruntime)."""
    from model.data import load_dataset
    from model.loader import load_model
    from model.scoring.batch_model import open_predictor
    from model.store import ModelStore
    from model.train import train

    candidate = train(load_dataset("digits"), name="digits", compile=request.param == "onnx")
    store = ModelStore(str(tmp_path_factory.mktemp("store")))
    artifact, manifest = candidate
    store.publish(artifact, manifest, onnx=candidate.onnx)
    predictor = open_predictor(load_model(store, "digits", version=manifest["version"]), max_batch=64)
    assert predictor.path == request.param
    return predictor


def per_row_outputs(predictor, path, id_column, chunk_rows: int) -> tuple[bytes, bytes]:
    """The output and errors of the per-row path (csv.reader, a Row per record, score_chunk, a line
    per row), as `python -m model score` wrote them before the fast path."""
    from model.scoring.batch import _line
    from model.scoring.batch_model import score_chunk
    from model.scoring.batch_rows import Layout, chunks, read_rows

    layout = Layout(predictor.manifest["input_schema"], id_column)
    head = {"model": "digits", "version": predictor.manifest["version"]}
    out, errors = [], []
    with open(path, encoding="utf-8", newline="") as fh:
        for chunk in chunks(read_rows(fh, "csv", layout, str(path)), chunk_rows):
            for row, prediction in score_chunk(predictor, chunk):
                record = {"row": row.number, "id": row.id} if id_column else {"row": row.number}
                if prediction is None:
                    errors.append(_line({**record, "error": row.error}) + b"\n")
                else:
                    out.append(_line({**record, **head, **prediction}) + b"\n")
    return b"".join(out), b"".join(errors)


def scored_outputs(predictor, path, id_column, chunk_rows: int, monkeypatch) -> tuple[bytes, bytes, int]:
    """The output and errors of score_file, and how many chunks went through the per-row path."""
    import model.scoring.batch_fast as fast
    from model.scoring.batch import Job, Settings, score_file
    from model.scoring.files import list_inputs

    per_row = []
    original = fast.score_chunk
    monkeypatch.setattr(fast, "score_chunk", lambda p, rows: per_row.append(rows) or original(p, rows))
    files, _ = list_inputs(str(path))
    target = path.with_suffix(".jsonl")
    outcome = score_file(predictor, Job(files[0], str(target)),
                         Settings("digits", predictor.manifest["version"], chunk_rows, id_column))
    errors = path.with_suffix(".jsonl.errors.jsonl")
    out, bad = target.read_bytes(), errors.read_bytes() if errors.exists() else b""
    assert outcome.rows == out.count(b"\n") and outcome.errors == bad.count(b"\n")
    return out, bad, len(per_row)


def digits_table(X, names, id_at: int | None, order=None) -> list[list[str]]:
    """A header and rows of cells: the features (in `order`, else the model's) with an id column at
    `id_at`, numbers written in several ways."""
    order = list(range(len(names))) if order is None else order
    forms = [repr, lambda v: f"{v:g}", lambda v: f"{v:.3e}", lambda v: f"+{v}" if v >= 0 else str(v)]
    table = [[names[j] for j in order]]
    for i, row in enumerate(X):
        table.append([forms[(i + j) % len(forms)](float(row[j])) for j in order])
    if id_at is not None:
        for i, cells in enumerate(table):
            cells.insert(id_at, "id" if i == 0 else f"r{i}")
    return table


def write_table(path, table, ends=("\n",)) -> None:
    path.write_text("".join(",".join(cells) + ends[i % len(ends)] for i, cells in enumerate(table)),
                    newline="")


@pytest.mark.parametrize("layout", ["id first", "id last, features reversed", "id in the middle", "no id",
                                    "blank lines and CRLF", "quoted"])
def test_the_fast_path_writes_the_per_row_paths_bytes_on_clean_data(tmp_path, digits, digits_predictor,
                                                                    monkeypatch, layout):
    X, names = digits
    rows = X[:300]
    id_column = None if layout == "no id" else "id"
    if layout == "id last, features reversed":
        table = digits_table(rows, names, len(names), order=list(range(len(names)))[::-1])
    elif layout == "id in the middle":
        table = digits_table(rows, names, 7)
    else:
        table = digits_table(rows, names, None if layout == "no id" else 0)
    path = tmp_path / "rows.csv"
    if layout == "blank lines and CRLF":
        for at in (5, 6, 64, 130, 200):  # blank lines, two in a row, one where a chunk would end
            table.insert(at, [])
        write_table(path, table, ends=("\r\n", "\n", "\r\n", "\r"))
    elif layout == "quoted":
        table[150][0] = '"r,150"'  # from here on the csv module reads the file
        table[151][0] = '"r\nline"'
        write_table(path, table)
    else:
        write_table(path, table)
    with open(path, "a") as fh:
        fh.write("\n")  # a trailing blank line
    out, errors, per_row = scored_outputs(digits_predictor, path, id_column, 64, monkeypatch)
    assert (out, errors) == per_row_outputs(digits_predictor, path, id_column, 64)
    assert errors == b"" and out.count(b"\n") == 300
    assert per_row == (3 if layout == "quoted" else 0)  # chunks 3, 4 and 5 after the quote
    lines = read_lines(out.decode())
    if layout == "blank lines and CRLF":
        assert [line["row"] for line in lines][:7] == [1, 2, 3, 4, 7, 8, 9]  # blank lines 5, 6 counted
    elif layout == "quoted":
        assert [line["id"] for line in lines][149:151] == ["r,150", "r\nline"]
    else:
        assert [line["row"] for line in lines] == list(range(1, 301))
        if id_column:
            assert [line["id"] for line in lines] == [f"r{i}" for i in range(1, 301)]


def test_bad_rows_among_good_ones_get_the_per_row_paths_messages_and_only_their_chunks_go_row_by_row(
        tmp_path, digits, digits_predictor, monkeypatch):
    X, names = digits
    table = digits_table(X[:400], names, 0)
    # Chunks of 64: 1-64, 65-128, 129-192, 193-256 (clean), 257-320, 321-384 (" 2.5": numpy.loadtxt
    # reads it, as float() does), 385-400.
    bad = {3: (5, "dark"), 70: (1, "nan"), 71: (2, "inf"), 140: (9, "1e308"), 141: (9, "-1e308"),
           190: (4, ""), 260: (3, "1_0"), 310: (64, "Infinity"), 340: (3, " 2.5"), 390: (2, "True")}
    for row, (j, value) in bad.items():
        table[row][j] = value
    table[100] = table[100][:10]  # too few values
    table[300] = [*table[300], "7"]  # too many
    path = tmp_path / "mixed.csv"
    write_table(path, table)
    out, errors, per_row = scored_outputs(digits_predictor, path, "id", 64, monkeypatch)
    assert (out, errors) == per_row_outputs(digits_predictor, path, "id", 64)
    assert per_row == 5  # the chunks with a bad cell; 193-256 and 321-384 are one matrix each
    failed = read_lines(errors.decode())
    scored = {line["row"] for line in read_lines(out.decode())}
    failed_rows = {e["row"] for e in failed}
    assert not scored & failed_rows and scored | failed_rows == set(range(1, 401))
    assert {3, 70, 71, 100, 190, 300, 310, 390} <= failed_rows
    assert {260, 340} <= scored  # float() reads "1_0" and " 2.5"
    by_row = {e["row"]: e for e in failed}
    assert by_row[3] == {"row": 3, "id": "r3",
                         "error": "column pixel_0_4 is a string ('dark'): feature values must be numbers"}
    assert by_row[100]["error"] == "the row has 10 values, the header has 65 columns"


def test_a_chunk_with_one_bad_row_reports_exactly_that_row(tmp_path, digits, digits_predictor, monkeypatch):
    X, names = digits
    table = digits_table(X[:128], names, 0)
    table[77][12] = "NaN"  # row 77: the 13th row of the second chunk of 64
    path = tmp_path / "one.csv"
    write_table(path, table)
    out, errors, per_row = scored_outputs(digits_predictor, path, "id", 64, monkeypatch)
    assert per_row == 1
    assert read_lines(errors.decode()) == [{
        "row": 77, "id": "r77",
        "error": "column pixel_1_3 is not a finite number: NaN, Infinity and values beyond ±1.8e308 are not "
                 "accepted"}]
    lines = read_lines(out.decode())
    assert [line["row"] for line in lines] == [n for n in range(1, 129) if n != 77]
    assert (out, errors) == per_row_outputs(digits_predictor, path, "id", 64)
