"""Live drift gauges (service/drift_live.py): the same numbers as model/drift.py over the same records,
a sliding window, and under gunicorn a service-wide window that shifted traffic pushes over 0.25.
"""

from __future__ import annotations

import csv
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from helpers import ROOT, GunicornServer
from prometheus_client.parser import text_string_to_metric_families
from test_train import write_text_csv

from model import drift
from model.data import load_dataset
from model.train import DEFAULT_SEED, DEFAULT_TEST_SIZE, train
from service.drift_live import LiveWindow
from service.metrics import Metrics

DRIFT_GAUGES = ("model_drift_psi", "model_prediction_psi", "model_input_out_of_range_ratio",
                "model_input_unseen_ratio", "model_drift_window_records", "model_text_token_coverage",
                "model_text_token_coverage_training")


def parse(text: str) -> dict:
    """{(name, feature or None): value} of the drift gauges in an exposition text."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert not sample.name.startswith("model_drift_window_bin") and "window_totals" not in sample.name
            if sample.name in DRIFT_GAUGES:
                found[(sample.name, sample.labels.get("feature"))] = sample.value
    return found


def live_gauges(manifest: dict, inputs: list, predictions: list, size: int | None = None,
                version: str | None = None, order: list[str] | None = None) -> dict:
    """The gauges /metrics shows for one worker's window holding these records."""
    metrics = Metrics(None)
    window = LiveWindow(size or len(inputs), metrics)
    info = {"name": manifest["name"], "version": version or manifest["version"]}
    window.add(info, manifest["profile"], inputs, predictions, order)
    assert window.maybe_publish(force=True)
    served = {"info": {"name": manifest["name"], "version": manifest["version"]},
              "profile": manifest["profile"]}
    return parse(metrics.render(served, drift=True).decode())


def held_out(dataset):
    from sklearn.model_selection import train_test_split

    return train_test_split(dataset.X, dataset.y, test_size=DEFAULT_TEST_SIZE, random_state=DEFAULT_SEED,
                            stratify=dataset.y)[1]


def test_digits_gauges_equal_model_drift_over_the_same_records(trained_digits):
    _, manifest = trained_digits
    features = manifest["input_schema"]["features"]
    rows = np.asarray(held_out(load_dataset("digits"))) * 1.5
    inputs = [dict(zip(features, row, strict=True)) for row in rows.tolist()]
    labels = [str(i % 10) for i in range(len(inputs))]
    labels[:40] = ["3"] * 40
    predictions = [{"label": label, "probabilities": {}} for label in labels]
    gauges = live_gauges(manifest, inputs, predictions)
    expected = {d.name: d for d in drift.compare(manifest["profile"], inputs, predictions)}
    for name in features:
        assert gauges[("model_drift_psi", name)] == pytest.approx(expected[name].psi, abs=1e-9)
    assert gauges[("model_prediction_psi", None)] == pytest.approx(expected["predictions"].psi, abs=1e-9)
    assert max(gauges[("model_drift_psi", name)] for name in features) > 0.25
    assert gauges[("model_drift_window_records", None)] == len(inputs)
    profile = manifest["profile"]["features"]
    outside = sum(any(row[f] < profile[f]["min"] or row[f] > profile[f]["max"] for f in features)
                  for row in inputs)
    assert outside > 0
    assert gauges[("model_input_out_of_range_ratio", None)] == pytest.approx(outside / len(inputs))
    assert gauges[("model_input_unseen_ratio", None)] == 0
    # A model of numbers keeps rows as sent (lists in feature order, or objects): the same gauges.
    mixed = [list(row.values()) if i % 2 else row for i, row in enumerate(inputs)]
    assert live_gauges(manifest, mixed, predictions, order=features) == pytest.approx(gauges, abs=1e-12)


def test_the_window_slides_and_another_versions_records_are_not_shown(trained_digits):
    _, manifest = trained_digits
    features = manifest["input_schema"]["features"]
    matrix = np.asarray(held_out(load_dataset("digits")))
    rows = [dict(zip(features, row, strict=True)) for row in matrix.tolist()]
    predictions = [{"label": "1"}] * len(rows)
    gauges = live_gauges(manifest, rows, predictions, size=100)
    assert gauges[("model_drift_window_records", None)] == 100
    last = {d.name: d.psi for d in drift.compare(manifest["profile"], rows[-100:], predictions[-100:])}
    assert gauges[("model_drift_psi", "pixel_3_3")] == pytest.approx(last["pixel_3_3"], abs=1e-9)
    # Records of a version this worker does not serve give no gauges (its profile may differ).
    assert live_gauges(manifest, rows, predictions, version="20990101T000000Z-00000000") == {}


def test_a_table_of_categories_counts_unseen_values(tmp_path):
    dataset = load_dataset(str(ROOT / "examples/churn.csv"), label_column="churned")
    _, manifest = train(dataset, name="churn", recipe="examples.churn_recipe:build", compile=False)
    with open(ROOT / "examples/churn.csv") as fh:
        rows = [{"age": int(r["age"]), "plan": r["plan"], "active": r["active"] == "true", "note": r["note"]}
                for r in csv.DictReader(fh)][:200]
    for row in rows[:30]:
        row["plan"] = "enterprise"  # never seen in training
    predictions = [{"label": "1" if i % 3 else "0"} for i in range(len(rows))]
    gauges = live_gauges(manifest, rows, predictions)
    assert gauges[("model_input_unseen_ratio", None)] == pytest.approx(30 / 200)
    expected = {d.name: d.psi for d in drift.compare(manifest["profile"], rows, predictions)}
    for name in ("age", "plan", "active", "note"):
        assert gauges[("model_drift_psi", name)] == pytest.approx(expected[name], abs=1e-9)


def test_a_text_model_shows_length_psi_and_token_coverage(tmp_path):
    dataset = load_dataset(str(write_text_csv(tmp_path / "t.csv")), label_column="topic", text_column="text")
    _, manifest = train(dataset, name="topics", compile=False)
    texts = ["zebra quantum " * 5 + "unknownword" for _ in range(50)]
    gauges = live_gauges(manifest, texts, [{"label": "a"}] * 50)
    expected = drift.text_drift("text", manifest["profile"]["text"], texts)
    assert gauges[("model_drift_psi", "text")] == pytest.approx(expected.psi, abs=1e-9)
    assert gauges[("model_text_token_coverage", None)] == pytest.approx(expected.coverage)
    assert gauges[("model_text_token_coverage_training", None)] == pytest.approx(expected.baseline_coverage)


# ---- under gunicorn ------------------------------------------------------------------------------
def scrape(url: str) -> dict:
    return parse(requests.get(url + "/metrics", timeout=10).text)


def test_live_gauges_across_workers_flag_shifted_traffic_and_not_held_out_rows(local_store, tmp_path):
    server = GunicornServer(tmp_path / "g", {
        "MODEL_STORE": local_store, "MODEL_NAME": "digits", "CAPTURE_RATE": "1",
        "CAPTURE_STORE": str(tmp_path / "capture"), "CAPTURE_MAX_PER_MINUTE": "100000",
        "DRIFT_WINDOW": "400"})
    try:
        rows = np.asarray(held_out(load_dataset("digits")))

        def send(matrix, batch: int = 10) -> None:
            batches = [matrix[i:i + batch].tolist() for i in range(0, len(matrix), batch)]
            def one(instances) -> int:
                return requests.post(server.url + "/predict", json={"instances": instances},
                                     timeout=10).status_code

            with ThreadPoolExecutor(4) as pool:
                statuses = list(pool.map(one, batches))
            assert statuses == [200] * len(batches)

        def window_of(records: int) -> dict:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                gauges = scrape(server.url)
                if gauges.get(("model_drift_window_records", None)) == records:
                    return gauges
                time.sleep(0.3)
            pytest.fail(f"the window never held {records} records: {gauges}")

        send(rows)  # the 360 held-out rows, spread over both workers
        # Whichever worker answers /metrics sees both workers' windows summed.
        for _ in range(4):
            gauges = window_of(len(rows))
        psi = [value for (name, _), value in gauges.items() if name == "model_drift_psi"]
        assert len(psi) == 64 and max(psi) < 0.25
        assert gauges[("model_prediction_psi", None)] < 0.25

        # Shifted traffic (x1.5): enough for both workers' windows (400 each) to hold only it.
        send(np.vstack([rows * 1.5] * 8), batch=20)
        deadline = time.monotonic() + 30
        while True:
            gauges = scrape(server.url)
            psi = [value for (name, _), value in gauges.items() if name == "model_drift_psi"]
            if max(psi) > 0.25 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert max(psi) > 0.25, gauges
        assert gauges[("model_input_out_of_range_ratio", None)] > 0.05
        assert 400 <= gauges[("model_drift_window_records", None)] <= 800
    finally:
        server.stop()


def test_a_worker_that_switches_version_zeroes_the_old_versions_counts(trained_digits):
    _, manifest = trained_digits
    features = manifest["input_schema"]["features"]
    matrix = np.asarray(held_out(load_dataset("digits")))[:50]
    rows = [dict(zip(features, row, strict=True)) for row in matrix.tolist()]
    metrics = Metrics(None)
    window = LiveWindow(1000, metrics)
    old = {"name": "digits", "version": "20200101T000000Z-00000000"}
    window.add(old, manifest["profile"], rows, [{"label": "1"}] * 50)
    assert window.maybe_publish(force=True)
    new = {"name": "digits", "version": manifest["version"]}
    window.add(new, manifest["profile"], rows[:20], [{"label": "1"}] * 20)
    assert window.maybe_publish(force=True)
    for info, records in ((old, None), (new, 20)):
        gauges = parse(metrics.render({"info": info, "profile": manifest["profile"]}, drift=True).decode())
        assert gauges.get(("model_drift_window_records", None)) == records
