"""`python -m model monitor`: captured records of real trained models against their training profile.

Records are written here in the layout of model/capture_files.py (a small writer of its own, not the
service's capture code), with predictions made by the stored model itself, the way /predict answers.
Held-out rows must not alarm (also over 20 random samples); scaled features and a new category must;
windows, excluded/hashed fields, malformed lines, no records, too few records and an S3 store too.
"""

from __future__ import annotations

import io
import json
import shutil
from datetime import UTC, datetime, timedelta

import joblib
import numpy as np
import orjson
import pytest
from helpers import cli_fails, cli_ok, run_cli, write_churn_csv

from model.capture_files import HASH_PREFIX, capture_key, format_time
from model.exit_codes import ExitCode
from model.store import ModelStore
from model.train import DEFAULT_SEED, DEFAULT_TEST_SIZE

NOW = datetime.now(UTC).replace(microsecond=0)


# -- a small writer of captured records (model/capture_files.py's layout and format) -------------------
def predictions_of(store_uri: str, name: str, inputs: list) -> list[dict]:
    """What /predict answers for each input (label and probabilities), from the stored model."""
    from model.tabular import to_input

    store = ModelStore(store_uri)
    version = store.resolve(name)
    manifest = store.manifest(name, version)
    estimator = joblib.load(io.BytesIO(store.read_artifact(name, version)))
    schema = manifest["input_schema"]
    if schema["type"] == "text":
        matrix = list(inputs)
    elif "columns" in schema:
        columns = schema["columns"]
        rows = [[row[c["name"]] for c in columns] for row in inputs]
        matrix = to_input(columns, rows, frame=bool(schema.get("frame")))
    else:
        matrix = np.asarray([[row[f] for f in schema["features"]] for row in inputs], dtype=float)
    if manifest.get("task") == "regression":
        return [{"value": float(v)} for v in estimator.predict(matrix)]
    proba = estimator.predict_proba(matrix)
    keys = [str(c) for c in manifest["classes"]]
    return [{"label": keys[int(np.argmax(p))], "probabilities": dict(zip(keys, p.tolist(), strict=True))}
            for p in proba]


def write_records(store_uri: str, name: str, inputs: list, predictions: list | None = None, *,
                  start: datetime | None = None, step: timedelta = timedelta(seconds=1),
                  per_file: int = 250, writer: str = "test-1", extra_lines: tuple = (),
                  version: str | None = None) -> str:
    """Write one captured record per input (time `start`, then every `step`), `per_file` per file,
    each file in its records' hour partition; `extra_lines` are appended raw to the first file.
    Returns the version written for."""
    store = ModelStore(store_uri)
    version = version or store.resolve(name)
    if predictions is None:
        predictions = predictions_of(store_uri, name, inputs)
    # By default five past the hour two hours ago: inside the default 24 h window, and one partition.
    start = start or (NOW - timedelta(hours=2)).replace(minute=5, second=0)
    records = [{"time": format_time(start + i * step), "request_id": f"r{i // 4}", "model": name,
                "version": version, "index": i % 4, "input": item, "prediction": predicted}
               for i, (item, predicted) in enumerate(zip(inputs, predictions, strict=True))]
    by_hour: dict[datetime, list] = {}
    for record in records:
        when = datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
        by_hour.setdefault(when.replace(minute=0, second=0, microsecond=0), []).append(record)
    seq, extra = 0, list(extra_lines)
    for hour, chunk in sorted(by_hour.items()):
        for i in range(0, len(chunk), per_file):
            lines = [orjson.dumps(r) for r in chunk[i:i + per_file]] + extra
            extra = []
            seq += 1
            key = capture_key(name, version, hour, hour + timedelta(minutes=59), writer, seq)
            store.backend.write(key, b"\n".join(lines) + b"\n")
    return version


def hashed(value) -> str:
    import hashlib

    return HASH_PREFIX + hashlib.sha256(orjson.dumps(value)).hexdigest()


# -- trained models ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_trained(tmp_path_factory):
    """A local store with digits trained by the CLI (production on it), and its held-out rows."""
    from sklearn.model_selection import train_test_split

    from model.data import load_dataset

    uri = str(tmp_path_factory.mktemp("digits") / "store")
    cli_ok(run_cli("train", "--store", uri, "--promote", "production", "--no-compile", "--no-report"))
    dataset = load_dataset("digits")
    _, X_test, _, _ = train_test_split(dataset.X, dataset.y, test_size=DEFAULT_TEST_SIZE,
                                       random_state=DEFAULT_SEED, stratify=dataset.y)
    names = ModelStore(uri).manifest("digits", ModelStore(uri).resolve("digits"))["input_schema"]["features"]
    held_out = [dict(zip(names, map(float, row), strict=True)) for row in X_test]
    return {"uri": uri, "held_out": held_out, "names": names}


@pytest.fixture
def digits(digits_trained, tmp_path):
    """A copy of the trained digits store for one test (its records are its own)."""
    uri = str(tmp_path / "store")
    shutil.copytree(digits_trained["uri"], uri)
    return {**digits_trained, "uri": uri}


def scaled(rows: list[dict], factor: float = 1.3) -> list[dict]:
    return [{k: v * factor for k, v in row.items()} for row in rows]


def monitor(uri: str, *args: str, env: dict | None = None):
    return run_cli("monitor", "--store", uri, *args, env=env)


# -- digits ----------------------------------------------------------------------------------------------
def test_held_out_rows_do_not_alarm(digits, tmp_path):
    write_records(digits["uri"], "digits", digits["held_out"])
    out = cli_ok(monitor(digits["uri"], "--json", str(tmp_path / "d.json"), "--report",
                         str(tmp_path / "r.html")))
    lines = out.strip().splitlines()
    assert lines[-1].startswith("no drift in 360 records"), out
    assert any(line.startswith("predictions: PSI 0.0") for line in lines), out
    result = json.loads((tmp_path / "d.json").read_text())
    assert result["verdict"] == "no drift" and result["exit_code"] == 0 and result["drifting"] == []
    assert result["records"] == 360 and result["skipped"] == 0 and result["files"] == 2
    assert len(result["results"]) == 64 + 1  # every pixel, and the predictions
    psis = [r["psi"] for r in result["results"]]
    assert max(psis) < 0.25 and psis[:-1] == sorted(psis[:-1], reverse=True)
    assert 'class="verdict ok">no drift' in (tmp_path / "r.html").read_text()


def test_no_false_alarm_over_random_held_out_samples(digits):
    """20 random samples of 200 held-out rows, each in its own hour: none alarms."""
    from model.drift import Thresholds
    from model.monitor.check import monitor as run_monitor
    from model.monitor.records import Window

    rng = np.random.default_rng(7)
    held_out, store = digits["held_out"], ModelStore(digits["uri"])
    hours = [NOW.replace(minute=0, second=0) - timedelta(hours=k + 2) for k in range(20)]
    samples = [[held_out[i] for i in rng.choice(len(held_out), 200, replace=False)] for _ in hours]
    for hour, sample in zip(hours, samples, strict=True):
        write_records(digits["uri"], "digits", sample, start=hour, step=timedelta(seconds=10))
    worst, predicted = [], []
    version = store.resolve("digits")
    for hour in hours:
        result = run_monitor(store, "digits", version, Window(hour, hour + timedelta(hours=1)), Thresholds())
        assert result.captured.records == 200
        assert result.verdict == "no drift", result.last_line()
        worst.append(result.features[0].psi)
        predicted.append(result.predictions.psi)
    print(f"\nheld-out samples of 200: max feature PSI per sample {sorted(round(p, 3) for p in worst)}; "
          f"max {max(worst):.3f}; predictions' PSI max {max(predicted):.3f}")
    assert max(worst) < 0.25 and max(predicted) < 0.25


def test_scaled_features_drift_and_are_named(digits, tmp_path):
    write_records(digits["uri"], "digits", scaled(digits["held_out"]))
    result = monitor(digits["uri"], "--json", str(tmp_path / "d.json"))
    error = cli_fails(result, ExitCode.DRIFT, "drift in digits")
    found = json.loads((tmp_path / "d.json").read_text())
    assert found["verdict"] == "drift" and found["exit_code"] == 20
    drifting = found["drifting"]
    assert len(drifting) > 20 and "pixel_0_3" in drifting and drifting[0] in error
    by_name = {r["name"]: r for r in found["results"]}
    assert by_name["pixel_0_3"]["out_of_range"] > 0.3 and by_name["pixel_0_3"]["psi"] > 0.5
    assert "pixel_0_0" not in drifting  # always 0: scaling changes nothing
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith(f"drift: {len(drifting)} crossed a threshold in 360 records: pixel_")
    table = [line for line in lines if line.startswith("pixel_")]
    assert len(table) == max(20, sum(1 for name in drifting if name != "predictions"))
    assert "outside the training range" in result.stdout


def test_too_few_records_are_said_and_pass(digits):
    write_records(digits["uri"], "digits", scaled(digits["held_out"][:50]))
    out = cli_ok(monitor(digits["uri"]))
    assert out.strip().splitlines()[-1].startswith("too few records to judge: 50 < 200 (--min-records)")
    # With a lower bar the same records are judged, and they drift.
    cli_fails(monitor(digits["uri"], "--min-records", "40"), ExitCode.DRIFT, "drift in digits")


def test_no_records_exits_4_and_names_capture_rate(digits, tmp_path):
    line = cli_fails(monitor(digits["uri"], "--json", str(tmp_path / "d.json")), ExitCode.NOT_FOUND,
                     "CAPTURE_RATE")
    assert "no captured records of digits" in line
    assert json.loads((tmp_path / "d.json").read_text())["verdict"] == "no records"


def test_records_outside_the_window_are_ignored(digits):
    held_out, shifted = digits["held_out"], scaled(digits["held_out"])
    # Drifted traffic three days ago, normal traffic in the last hour.
    write_records(digits["uri"], "digits", shifted, start=NOW - timedelta(days=3), writer="old")
    write_records(digits["uri"], "digits", held_out, start=NOW - timedelta(minutes=30), writer="new")
    assert cli_ok(monitor(digits["uri"])).strip().splitlines()[-1].startswith("no drift in 360 records")
    cli_fails(monitor(digits["uri"], "--since", "7d"), ExitCode.DRIFT, "drift in digits")
    until = format_time(NOW - timedelta(days=1))
    out = monitor(digits["uri"], "--since", "7d", "--until", until)
    cli_fails(out, ExitCode.DRIFT, "drift in digits")
    assert "crossed a threshold in 360 records" in out.stdout
    # Within one hour partition, the records' own times decide: half of them are before --since.
    hour = (NOW - timedelta(days=5)).replace(minute=0, second=0)
    write_records(digits["uri"], "digits", shifted[:180] + held_out[:180], start=hour,
                  step=timedelta(seconds=10), writer="mixed")
    since, until = format_time(hour + timedelta(minutes=30)), format_time(hour + timedelta(hours=1))
    out = cli_ok(monitor(digits["uri"], "--since", since, "--until", until, "--min-records", "150"))
    assert out.strip().splitlines()[-1].startswith("no drift in 180 records"), out


def test_excluded_and_hashed_fields_are_skipped(digits, tmp_path):
    names = digits["names"]
    excluded, hidden = names[:8], names[8:16]
    rows = []
    for row in scaled(digits["held_out"], 2.0):  # every feature drifts, but those hidden are not seen
        kept = {k: v for k, v in row.items() if k not in excluded}
        rows.append({k: (hashed(v) if k in hidden else v) for k, v in kept.items()})
    predictions = [hashed(p) for p in predictions_of(digits["uri"], "digits", digits["held_out"])]
    write_records(digits["uri"], "digits", rows, predictions)
    result = monitor(digits["uri"], "--json", str(tmp_path / "d.json"))
    cli_fails(result, ExitCode.DRIFT, "drift in digits")
    found = json.loads((tmp_path / "d.json").read_text())
    compared = {r["name"] for r in found["results"]}
    assert compared == set(names[16:])  # no predictions: they were hashed
    assert set(found["not_compared"]) == set(names[:16])
    assert "CAPTURE_EXCLUDE" in found["not_compared"][names[0]]
    assert "CAPTURE_HASH" in found["not_compared"][names[8]]
    assert f"not compared: {names[8]}: hashed at capture" in result.stdout
    assert "predictions: not compared" in result.stdout
    # The whole input hashed: nothing to compare but the predictions, which are fine.
    whole = [hashed(row) for row in digits["held_out"]]
    write_records(digits["uri"], "digits", whole, predictions_of(digits["uri"], "digits", digits["held_out"]),
                  start=NOW - timedelta(days=2))
    out = cli_ok(monitor(digits["uri"], "--since", "3d", "--until", format_time(NOW - timedelta(days=1))))
    assert "no input captured" in out and out.strip().splitlines()[-1].startswith("no drift in 360")


def test_malformed_lines_and_files_are_skipped_and_counted(digits, tmp_path):
    version = ModelStore(digits["uri"]).resolve("digits")
    bad = (b"{not json", b"[1, 2, 3]", b'{"input": {}, "prediction": {"label": "1"}}',
           orjson.dumps({"time": "yesterday", "input": {}}),
           orjson.dumps({"time": format_time(NOW - timedelta(minutes=50)),
                         "version": "20200101T000000Z-aaaaaaaa", "input": {}}))
    write_records(digits["uri"], "digits", digits["held_out"], extra_lines=bad)
    # A file of bytes that are not text at all, in the window's partition.
    store = ModelStore(digits["uri"])
    store.backend.write(capture_key("digits", version, NOW - timedelta(minutes=20), NOW, "junk", 1),
                        b"\x00\xff\xfe garbage\n")
    out = cli_ok(monitor(digits["uri"], "--json", str(tmp_path / "d.json")))
    assert "skipped: 6 (" in out and "2 line is not JSON" in out
    found = json.loads((tmp_path / "d.json").read_text())
    assert found["records"] == 360 and found["skipped"] == 6 and found["files"] == 3
    assert found["skipped_reasons"] == {"another model's or version's record": 1, "line is not JSON": 2,
                                        "line is not a JSON object": 1, "no valid time": 2}


def test_options_are_checked(digits):
    cli_fails(monitor(digits["uri"], "--since", "yesterday"), ExitCode.USAGE, "--since takes 30m, 24h, 7d")
    cli_fails(monitor(digits["uri"], "--since", "0h"), ExitCode.USAGE, "positive duration")
    cli_fails(monitor(digits["uri"], "--since", "2026-12-02T10:00:00Z", "--until", "2026-12-01T10:00:00Z"),
              ExitCode.USAGE, "must be before --until")
    cli_fails(monitor(digits["uri"], "--psi", "0"), ExitCode.USAGE, "--psi must be a positive number")
    cli_fails(monitor(digits["uri"], "--unseen", "5"), ExitCode.USAGE, "share between 0 and 1")
    cli_fails(monitor(digits["uri"], "--min-records", "0"), ExitCode.USAGE, "--min-records")
    cli_fails(monitor(digits["uri"], "--alias", "staging"), ExitCode.NOT_FOUND, "staging")
    cli_fails(monitor(digits["uri"], "--version", "20200101T000000Z-aaaaaaaa"), ExitCode.NOT_FOUND, "")


# -- a table with categories -----------------------------------------------------------------------------
def churn_rows(path, rows: int, seed: int) -> list[dict]:
    import csv

    with open(write_churn_csv(path, rows=rows, seed=seed), newline="") as fh:
        return [{"age": float(r["age"]), "plan": r["plan"], "active": r["active"] == "true",
                 "note": r["note"]} for r in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("churn")
    data = write_churn_csv(folder / "churn.csv", rows=600, seed=1)
    uri = str(folder / "store")
    # unknown=ignore: the service accepts a plan never seen in training, so it can be captured.
    cli_ok(run_cli("train", "--store", uri, "--name", "churn", "--dataset", str(data), "--label-column",
                   "churned", "--param", "unknown=ignore", "--promote", "production", "--no-compile",
                   "--no-report"))
    return uri


def test_a_new_category_drifts_with_its_unseen_share(churn, tmp_path):
    uri = str(tmp_path / "store")
    shutil.copytree(churn, uri)
    fresh = churn_rows(tmp_path / "fresh.csv", 400, seed=5)  # the same population, new rows
    write_records(uri, "churn", fresh, start=NOW - timedelta(days=1, hours=1))
    until = format_time(NOW - timedelta(hours=12))
    out = cli_ok(monitor(uri, "--name", "churn", "--since", "2d", "--until", until))
    assert out.strip().splitlines()[-1].startswith("no drift in 400 records"), out

    shifted = [dict(row, plan="enterprise") if i % 5 == 0 else row for i, row in enumerate(fresh)]
    write_records(uri, "churn", shifted)
    result = monitor(uri, "--name", "churn", "--json", str(tmp_path / "d.json"))
    assert cli_fails(result, ExitCode.DRIFT, "drift in churn ").endswith(": plan")
    found = json.loads((tmp_path / "d.json").read_text())
    plan = next(r for r in found["results"] if r["name"] == "plan")
    assert plan["unseen"] == pytest.approx(0.2) and plan["kind"] == "category"
    assert found["drifting"][0] == "plan" and "20.0% unseen values (>= 5%)" in result.stdout
    assert {r["name"] for r in found["results"]} == {"age", "plan", "active", "note", "predictions"}


# -- S3 ----------------------------------------------------------------------------------------------------
def test_an_s3_store_on_moto(aws_env, s3_bucket, digits_trained):
    uri = f"s3://{s3_bucket}/team/models"
    cli_ok(run_cli("train", "--store", uri, "--promote", "production", "--no-compile", "--no-report",
                   env=aws_env))
    write_records(uri, "digits", digits_trained["held_out"], start=NOW - timedelta(days=2))
    write_records(uri, "digits", scaled(digits_trained["held_out"]), writer="s3-2")
    out = cli_ok(monitor(uri, "--since", "3d", "--until", format_time(NOW - timedelta(days=1)), env=aws_env))
    assert out.strip().splitlines()[-1].startswith("no drift in 360 records")
    cli_fails(monitor(uri, env=aws_env), ExitCode.DRIFT, "drift in digits")
    cli_fails(monitor(f"s3://{s3_bucket}-missing/m", env=aws_env), ExitCode.NOT_FOUND, "does not exist")


def test_window_parsing_and_long_windows(digits):
    from model.errors import UsageError
    from model.monitor.records import _listing_prefixes, window

    now = datetime(2026, 12, 2, 17, 0, tzinfo=UTC)
    assert window("30m", None, now).since == now - timedelta(minutes=30)
    assert window("7d", "2026-12-01T00:00:00", now).since == datetime(2026, 11, 24, tzinfo=UTC)
    assert window("2026-12-02T10:00:00+02:00", None, now).since == datetime(2026, 12, 2, 8, tzinfo=UTC)
    with pytest.raises(UsageError):
        window("24h", "tomorrow", now)
    # Up to 45 days: one listing per day; beyond, the version's whole prefix.
    assert len(_listing_prefixes("digits", "v", window("2d", None, now))) == 3
    assert _listing_prefixes("digits", "v", window("90d", None, now)) == ["digits/capture/version=v/"]
    # Records 60 days old are found through the long window's listing.
    write_records(digits["uri"], "digits", scaled(digits["held_out"]), start=NOW - timedelta(days=60))
    cli_fails(monitor(digits["uri"], "--since", "90d"), ExitCode.DRIFT, "drift in digits")
    assert monitor(digits["uri"], "--since", "45d").returncode == ExitCode.NOT_FOUND
