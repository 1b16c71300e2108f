"""Capture (service/capture.py) through the real app: settings, sampling, the per-minute cap, the
queue bound with a store that blocks, store failures, privacy, and the documented layout.

The writer's rounds are run by the test (`Capture.tick`) where determinism matters, and by the real
writer thread where the point is that the request path does not wait for the store.
"""

from __future__ import annotations

import json
import random
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from model.backends import open_backend
from model.capture_files import parse_key, record_time, version_prefix
from model.errors import StoreError
from service.app import create_app, start_model
from service.capture import Capture, hashed
from service.config import ConfigError, Settings


# ---- settings ------------------------------------------------------------------------------------
def test_capture_settings_defaults():
    s = Settings.from_env({"MODEL_STORE": "s3://b/models"})
    assert (s.capture_rate, s.capture_max_per_minute, s.capture_queue, s.capture_flush_seconds) == (
        0.0, 1000, 10000, 60.0)
    assert (s.capture_exclude, s.capture_hash, s.drift_window) == ((), (), 1000)
    assert s.capture_uri == "s3://b/models"  # CAPTURE_STORE defaults to MODEL_STORE


def test_capture_settings_are_read():
    s = Settings.from_env({"CAPTURE_RATE": "0.25", "CAPTURE_MAX_PER_MINUTE": "50", "CAPTURE_QUEUE": "70",
                           "CAPTURE_FLUSH_SECONDS": "2.5", "CAPTURE_EXCLUDE": " email, input ,email",
                           "CAPTURE_HASH": "request_id,plan", "CAPTURE_STORE": "s3://captured/preds",
                           "DRIFT_WINDOW": "0"})
    assert (s.capture_rate, s.capture_max_per_minute, s.capture_queue, s.capture_flush_seconds) == (
        0.25, 50, 70, 2.5)
    assert s.capture_exclude == ("email", "input") and s.capture_hash == ("request_id", "plan")
    assert (s.capture_uri, s.drift_window) == ("s3://captured/preds", 0)


@pytest.mark.parametrize("env, message", [
    ({"CAPTURE_RATE": "1.5"}, "CAPTURE_RATE must be between 0 and 1"),
    ({"CAPTURE_RATE": "-0.1"}, "CAPTURE_RATE must be between 0 and 1"),
    ({"CAPTURE_RATE": "half"}, "CAPTURE_RATE must be a number between 0 and 1, got 'half'"),
    ({"CAPTURE_MAX_PER_MINUTE": "0"}, "CAPTURE_MAX_PER_MINUTE must be at least 1"),
    ({"CAPTURE_QUEUE": "lots"}, "CAPTURE_QUEUE must be an integer"),
    ({"CAPTURE_FLUSH_SECONDS": "0"}, "CAPTURE_FLUSH_SECONDS must be above 0"),
    ({"CAPTURE_FLUSH_SECONDS": "7200"}, "CAPTURE_FLUSH_SECONDS must be between 0 and 3600"),
    ({"CAPTURE_EXCLUDE": "pixel_0_0,time"}, "CAPTURE_EXCLUDE cannot name time"),
    ({"CAPTURE_HASH": "version"}, "CAPTURE_HASH cannot name version"),
    ({"CAPTURE_EXCLUDE": "email", "CAPTURE_HASH": "email"}, "CAPTURE_HASH names email"),
    ({"DRIFT_WINDOW": "-1"}, "DRIFT_WINDOW must be at least 0"),
    ({"CAPTURE_STORE": "s3://Not_A_Bucket/capture"}, "CAPTURE_STORE: malformed store URI"),
    ({"CAPTURE_STORE": "ftp://host/capture"}, "CAPTURE_STORE: malformed store URI"),
])
def test_capture_settings_errors_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


# ---- the app -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_rows():
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data.tolist(), list(data.feature_names)


def make_app(store: str, capture_dir, **extra):
    app = create_app({"MODEL_STORE": store, "MODEL_NAME": "digits", "LOG_LEVEL": "WARNING",
                      "CAPTURE_STORE": str(capture_dir), "CAPTURE_RATE": "1", **extra})
    assert start_model(app, wait=60), app.extensions["service"].holder.error
    return app


def capture_of(app) -> Capture:
    return app.extensions["service"].capture


def post(client, rows, rid: str | None = None):
    headers = {"X-Request-ID": rid} if rid else {}
    response = client.post("/predict", data=json.dumps({"instances": rows}), content_type="application/json",
                           headers=headers)
    return response


def scrape(client) -> dict:
    samples = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def dropped(client, reason: str) -> float:
    return scrape(client).get(("capture_records_dropped_total", (("reason", reason),)), 0.0)


def captured(uri) -> list[tuple[str, dict, list[dict]]]:
    """(key, parsed key, records) of every captured file under `uri`."""
    backend = open_backend(str(uri))
    files = []
    for key in sorted(backend.list_keys(version_prefix("digits"))):
        data, _ = backend.read(key)
        files.append((key, parse_key(key), [json.loads(line) for line in data.decode().splitlines()]))
    return files


def records_of(uri) -> list[dict]:
    return [record for _, _, records in captured(uri) for record in records]


class GatedStore:
    """A real local store whose writes wait on a gate (a store that hangs) or fail while `down`."""

    def __init__(self, uri):
        self.inner = open_backend(str(uri))
        self.gate = threading.Event()
        self.gate.set()
        self.down = False
        self.attempts = 0

    def write(self, key: str, data: bytes) -> None:
        self.attempts += 1
        self.gate.wait(30)
        if self.down:
            raise StoreError("cannot reach the S3 endpoint (test outage)")
        self.inner.write(key, data)


def test_capture_off_by_default_captures_nothing(served_store, tmp_path, digits_rows):
    app = create_app({"MODEL_STORE": served_store, "CAPTURE_STORE": str(tmp_path / "cap"),
                      "LOG_LEVEL": "WARNING"})
    assert start_model(app, wait=60)
    capture = capture_of(app)
    assert not capture.enabled and capture.live is None
    assert post(app.test_client(), digits_rows[0][:2]).status_code == 200
    capture.start()
    assert capture.held == 0 and capture._thread is None
    text = app.test_client().get("/metrics").text
    assert "model_drift_psi" not in text and "model_drift_window_bin_records" not in text


def test_sampling_follows_the_rate_per_request(served_store, tmp_path, digits_rows):
    rows, _ = digits_rows
    app = make_app(served_store, tmp_path / "cap", CAPTURE_RATE="0.3")
    capture = capture_of(app)
    capture._draw = random.Random(5).random
    client = app.test_client()
    for i in range(200):
        assert post(client, rows[i:i + 2], rid=f"req-{i}").status_code == 200
    draws = random.Random(5)
    expected = {f"req-{i}" for i in range(200) if draws.random() < 0.3}
    assert 40 < len(expected) < 80
    assert capture.held == 2 * len(expected)
    capture.tick(final=True)
    records = records_of(tmp_path / "cap")
    # Decided per request: both instances of a sampled request, none of the others.
    assert {r["request_id"] for r in records} == expected
    assert sorted(r["index"] for r in records) == sorted([0, 1] * len(expected))
    assert scrape(client)[("capture_records_written_total", ())] == 2 * len(expected)


def test_the_minute_cap_drops_the_rest_of_the_minute(served_store, tmp_path, digits_rows):
    rows, _ = digits_rows
    app = make_app(served_store, tmp_path / "cap", CAPTURE_MAX_PER_MINUTE="10")
    capture = capture_of(app)
    now = [1_800_000_000.0]  # the start of a minute
    capture._clock = lambda: now[0]
    client = app.test_client()
    for i in range(5):
        assert post(client, rows[:3], rid=f"a{i}").status_code == 200
    assert capture.held == 9  # three requests of 3; the fourth would make 12 > 10
    assert dropped(client, "minute_cap") == 6
    now[0] += 60  # the next minute: captured again
    assert post(client, rows[:3], rid="b0").status_code == 200
    assert capture.held == 12 and dropped(client, "minute_cap") == 6


def test_failed_requests_are_not_captured(served_store, tmp_path, digits_rows):
    app = make_app(served_store, tmp_path / "cap")
    client = app.test_client()
    assert post(client, [[1, 2, 3]]).status_code == 400
    assert post(client, []).status_code == 400
    assert capture_of(app).held == 0


def test_a_hanging_store_never_slows_predictions_and_the_queue_stays_bounded(served_store, tmp_path,
                                                                          digits_rows):
    rows, _ = digits_rows
    app = make_app(served_store, tmp_path / "cap", CAPTURE_QUEUE="30", CAPTURE_FLUSH_SECONDS="0.1")
    capture = capture_of(app)
    store = GatedStore(tmp_path / "cap")
    store.gate.clear()  # every write hangs until the gate opens
    capture._backend = store
    capture.start()
    client = app.test_client()
    try:
        assert post(client, rows[:2], rid="first").status_code == 200
        deadline = time.monotonic() + 10
        while store.attempts == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.attempts == 1  # the writer is stuck in the store
        slowest = 0.0
        for i in range(40):
            started = time.perf_counter()
            assert post(client, rows[i:i + 2], rid=f"r{i}").status_code == 200
            slowest = max(slowest, time.perf_counter() - started)
        assert slowest < 0.5
        assert capture.held == 30  # never more than CAPTURE_QUEUE held
        assert dropped(client, "queue_full") == 2 * 41 - 30
    finally:
        store.gate.set()
    deadline = time.monotonic() + 10
    while capture.held and time.monotonic() < deadline:
        time.sleep(0.05)
    assert capture.held == 0 and len(records_of(tmp_path / "cap")) == 30
    assert post(client, rows[:2], rid="after").status_code == 200  # room again
    capture.stop()
    assert "after" in {r["request_id"] for r in records_of(tmp_path / "cap")}


def test_a_failing_store_keeps_the_newest_records_and_capture_resumes(served_store, tmp_path, digits_rows):
    rows, _ = digits_rows
    app = make_app(served_store, tmp_path / "cap", CAPTURE_QUEUE="20", CAPTURE_FLUSH_SECONDS="1")
    capture = capture_of(app)
    clock = [100.0]
    capture._monotonic = lambda: clock[0]
    store = GatedStore(tmp_path / "cap")
    store.down = True
    capture._backend = store
    client = app.test_client()
    for i in range(14):
        assert post(client, rows[i:i + 1], rid=f"r{i:02d}").status_code == 200
    clock[0] += 1
    capture.tick()  # the write fails: the newest 10 (half of CAPTURE_QUEUE) are kept
    metrics = scrape(client)
    assert metrics[("capture_write_errors_total", ())] == 1
    assert dropped(client, "store_error") == 4 and capture.held == 10
    for i in range(14, 24):
        assert post(client, rows[i:i + 1], rid=f"r{i:02d}").status_code == 200
    assert capture.held == 20  # the other 10 fit; the store is retried after its backoff
    capture.tick()
    assert store.attempts == 1
    store.down = False
    clock[0] += 1
    capture.tick()
    assert capture.held == 0
    kept = sorted(r["request_id"] for r in records_of(tmp_path / "cap"))
    assert kept == [f"r{i:02d}" for i in range(4, 24)]
    assert scrape(client)[("capture_records_written_total", ())] == 20


def test_excluded_fields_never_appear_and_hashed_ones_are_sha256(served_store, tmp_path, digits_rows):
    rows, _ = digits_rows
    app = make_app(served_store, tmp_path / "cap", CAPTURE_EXCLUDE="pixel_0_0,request_id",
                   CAPTURE_HASH="pixel_0_1,prediction")
    client = app.test_client()
    answers = {}
    for i in range(5):
        response = post(client, rows[i * 2:i * 2 + 2], rid=f"secret-request-{i}")
        answers[i] = response.json["predictions"]
    capture_of(app).tick(final=True)
    files = captured(tmp_path / "cap")
    raw = b"".join(open_backend(str(tmp_path / "cap")).read(key)[0] for key, _, _ in files)
    assert b"pixel_0_0" not in raw and b"request_id" not in raw and b"secret-request" not in raw
    records = [r for _, _, recs in files for r in recs]
    assert len(records) == 10
    expected_predictions = [hashed(p) for i in range(5) for p in answers[i]]
    assert sorted(r["prediction"] for r in records) == sorted(expected_predictions)
    for record in records:
        assert set(record) == {"time", "model", "version", "index", "input", "prediction"}
        assert record["input"]["pixel_0_1"].startswith("sha256:") and len(record["input"]) == 63
    assert {r["input"]["pixel_0_1"] for r in records} == {hashed(row[1]) for row in rows[:10]}


def test_captured_files_have_the_documented_layout_and_parse_back(served_store, tmp_path, digits_rows):
    rows, features = digits_rows
    app = make_app(served_store, tmp_path / "cap")
    version = app.extensions["service"].holder.predictor.info["version"]
    client = app.test_client()
    answers = {}
    for i in range(6):
        # Rows as lists and as objects by column name: both are captured as objects.
        sent = rows[i * 3:i * 3 + 3]
        batch = sent if i % 2 else [dict(zip(features, row, strict=True)) for row in sent]
        answers[f"req-{i}"] = (sent, post(client, batch, rid=f"req-{i}").json["predictions"])
    capture_of(app).tick(final=True)
    files = captured(tmp_path / "cap")
    assert len(files) == 1  # one flush, one (version, hour): one file
    key, parsed, records = files[0]
    assert parsed["name"] == "digits" and parsed["version"] == version
    assert key.startswith(f"digits/capture/version={version}/date=")
    assert len(records) == 18
    for record in records:
        assert record_time(record["time"]).replace(minute=0, second=0, microsecond=0) == parsed["hour"]
        sent, predictions = answers[record["request_id"]]
        assert (record["model"], record["version"]) == ("digits", version)
        assert record["input"] == dict(zip(features, sent[record["index"]], strict=True))
        assert record["prediction"] == predictions[record["index"]]  # exactly as answered


def test_the_flask_route_captures_too(served_store, tmp_path, digits_rows):
    rows, _ = digits_rows
    app = make_app(served_store, tmp_path / "cap")
    app.wsgi_app = app.wsgi_app.flask_wsgi  # bypass service/hotpath.py: Flask's own /predict route
    client = app.test_client()
    answer = post(client, rows[:2], rid="via-flask").json["predictions"]
    assert post(client, [[1]]).status_code == 400
    capture_of(app).tick(final=True)
    records = records_of(tmp_path / "cap")
    assert [r["request_id"] for r in records] == ["via-flask"] * 2
    assert [r["prediction"] for r in records] == answer


def test_stop_writes_what_is_held_or_counts_it(served_store, tmp_path, digits_rows):
    rows, _ = digits_rows
    app = make_app(served_store, tmp_path / "cap", CAPTURE_FLUSH_SECONDS="3000")
    capture = capture_of(app)
    capture.start()
    client = app.test_client()
    for i in range(4):
        post(client, rows[i:i + 2], rid=f"s{i}")
    capture.stop(timeout=10)  # the worker exits: one file with everything held
    assert len(records_of(tmp_path / "cap")) == 8 and capture.held == 0

    failing = make_app(served_store, tmp_path / "cap2", CAPTURE_FLUSH_SECONDS="3000")
    capture = capture_of(failing)
    store = GatedStore(tmp_path / "cap2")
    store.down = True
    capture._backend = store
    capture.start()
    post(failing.test_client(), rows[:3])
    capture.stop(timeout=10)
    assert dropped(failing.test_client(), "shutdown") == 3 and capture.held == 0
    assert records_of(tmp_path / "cap2") == []


def test_a_text_models_input_is_the_string_and_can_be_hashed_whole(tmp_path):
    from test_train import write_text_csv

    from model.data import load_dataset
    from model.store import ModelStore
    from model.train import train

    dataset = load_dataset(str(write_text_csv(tmp_path / "t.csv")), label_column="topic", text_column="text")
    artifact, manifest = train(dataset, name="digits", compile=False)  # the name the helpers read
    store = ModelStore(str(tmp_path / "store"))
    store.publish(artifact, manifest)
    store.move_alias("digits", "production", manifest["version"])
    texts = ["the cat sat on the mat", "a rocket reached orbit"]
    plain = make_app(str(tmp_path / "store"), tmp_path / "plain", MODEL_CACHE_DIR=str(tmp_path / "c1"))
    answer = post(plain.test_client(), texts, rid="t1").json["predictions"]
    capture_of(plain).tick(final=True)
    assert [(r["input"], r["prediction"]) for r in records_of(tmp_path / "plain")] == list(
        zip(texts, answer, strict=True))

    private = make_app(str(tmp_path / "store"), tmp_path / "private", CAPTURE_HASH="input",
                       MODEL_CACHE_DIR=str(tmp_path / "c2"))
    post(private.test_client(), texts, rid="t2")
    capture_of(private).tick(final=True)
    assert [r["input"] for r in records_of(tmp_path / "private")] == [hashed(t) for t in texts]
    assert b"rocket" not in b"".join(p.read_bytes() for p in (tmp_path / "private").rglob("*.jsonl"))


def test_exit_is_bounded_when_the_store_hangs(served_store, tmp_path, digits_rows):
    rows, _ = digits_rows
    app = make_app(served_store, tmp_path / "cap", CAPTURE_FLUSH_SECONDS="0.1")
    capture = capture_of(app)
    store = GatedStore(tmp_path / "cap")
    store.gate.clear()
    capture._backend = store
    capture.start()
    client = app.test_client()
    post(client, rows[:2])
    deadline = time.monotonic() + 10
    while store.attempts == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    post(client, rows[:3])
    started = time.monotonic()
    capture.stop(timeout=0.5)  # the write in progress never returns in time
    assert time.monotonic() - started < 2
    assert dropped(client, "shutdown") == 5
    store.gate.set()  # the stuck write finishes after all: nothing is counted twice
    time.sleep(0.5)
    samples = scrape(client)
    assert samples[("capture_records_written_total", ())] == 0 and dropped(client, "shutdown") == 5
    assert len(records_of(tmp_path / "cap")) <= 5  # the one write that was under way, never again
