"""Capture under gunicorn (2 workers) into S3 on the moto server: the documented layout, privacy,
the flush at exit, and a store that stops mid-run and comes back.

The outage is a TCP proxy in front of the moto server that the test closes (connections refused,
open ones cut) and reopens on the same port: the service's capture client only knows the proxy.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from helpers import GunicornServer, free_port
from prometheus_client.parser import text_string_to_metric_families

from model.backends import open_backend
from model.capture_files import parse_key, record_time, version_prefix


def scrape(url: str) -> dict:
    samples = {}
    text = requests.get(url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def metric(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for(condition, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"{what} not met in {timeout} s")


def read_captured(uri: str) -> dict[str, list[dict]]:
    """{key: records} of every captured file of digits under `uri`."""
    backend = open_backend(uri)
    return {key: [json.loads(line) for line in backend.read(key)[0].decode().splitlines()]
            for key in backend.list_keys(version_prefix("digits"))}


@pytest.fixture(scope="module")
def rows():
    from sklearn.datasets import load_digits

    return load_digits().data.tolist()


def predict(url: str, batch: list, rid: str) -> tuple[int, float, list]:
    started = time.perf_counter()
    response = requests.post(url + "/predict", json={"instances": batch}, headers={"X-Request-ID": rid},
                             timeout=10)
    elapsed = time.perf_counter() - started
    return response.status_code, elapsed, response.json().get("predictions", [])


def test_captured_files_on_moto_s3_have_the_layout_parse_back_and_keep_excluded_fields_out(
        aws_env, s3_bucket, served_store, tmp_path, rows):
    uri = f"s3://{s3_bucket}/team/models"
    server = GunicornServer(tmp_path / "g", {
        **aws_env, "MODEL_STORE": served_store, "MODEL_NAME": "digits", "CAPTURE_STORE": uri,
        "CAPTURE_RATE": "1", "CAPTURE_FLUSH_SECONDS": "1", "CAPTURE_EXCLUDE": "pixel_0_0,pixel_7_7",
        "CAPTURE_HASH": "request_id"})
    try:
        version = requests.get(server.url + "/ready", timeout=5).json()["model"]["version"]
        sent = {}
        with ThreadPoolExecutor(4) as pool:
            jobs = {f"req-{i}": pool.submit(predict, server.url, rows[i * 3:i * 3 + 1 + i % 3], f"req-{i}")
                    for i in range(40)}
            for rid, job in jobs.items():
                status, _, predictions = job.result()
                assert status == 200
                sent[rid] = predictions
        total = sum(len(p) for p in sent.values())
        # Written by the writer threads within CAPTURE_FLUSH_SECONDS, while the server runs.
        wait_for(lambda: metric(scrape(server.url), "capture_records_written_total") == total,
                 what=f"{total} records written")
        # And what a worker holds at exit is written by gunicorn's worker_exit hook.
        for i in range(40, 45):
            status, _, predictions = predict(server.url, rows[i:i + 2], f"req-{i}")
            assert status == 200
            sent[f"req-{i}"] = predictions
    finally:
        assert server.stop() == 0
    files = read_captured(uri)
    records = [record for found in files.values() for record in found]
    assert len(records) == total + 10
    hashed_ids = {}
    for key, found in files.items():
        parsed = parse_key(key)
        assert parsed is not None and (parsed["name"], parsed["version"]) == ("digits", version)
        assert key.startswith(f"digits/capture/version={version}/date={parsed['hour']:%Y-%m-%d}/"
                              f"hour={parsed['hour']:%H}/")
        for record in found:
            assert record_time(record["time"]).replace(minute=0, second=0, microsecond=0) == parsed["hour"]
            assert set(record) == {"time", "request_id", "model", "version", "index", "input", "prediction"}
            assert "pixel_0_0" not in record["input"] and "pixel_7_7" not in record["input"]
            assert len(record["input"]) == 62 and record["request_id"].startswith("sha256:")
            hashed_ids.setdefault(record["request_id"], []).append(record)
    raw = b"".join(open_backend(uri).read(key)[0] for key in files)
    assert b"pixel_0_0" not in raw and b"pixel_7_7" not in raw and b"req-" not in raw
    # Each request's instances share one hashed id; their predictions are exactly the answers.
    from service.capture import hashed

    for rid, predictions in sent.items():
        found = sorted(hashed_ids[hashed(rid)], key=lambda r: r["index"])
        assert [r["prediction"] for r in found] == predictions


class Proxy:
    """A TCP proxy on 127.0.0.1 to `target`; `stop` refuses new connections and cuts open ones."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = free_port()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._running = threading.Event()

    def start(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.1)
        self._running.set()
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def stop(self) -> None:
        self._running.clear()
        time.sleep(0.3)  # the accept loop sees the flag and closes the listener
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._running.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                except OSError:
                    client.close()
                    continue
                client.settimeout(None)
                upstream.settimeout(None)
                with self._lock:
                    self._open.update((client, upstream))
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def test_a_store_stopped_mid_run_costs_no_prediction_drops_are_counted_and_capture_resumes(
        aws_env, moto_endpoint, s3_bucket, served_store, tmp_path, rows):
    host, port = moto_endpoint.removeprefix("http://").split(":")
    proxy = Proxy((host, int(port)))
    proxy.start()
    uri = f"s3://{s3_bucket}/capture"
    server = GunicornServer(tmp_path / "g", {
        **aws_env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}", "MODEL_STORE": served_store,
        "MODEL_NAME": "digits", "CAPTURE_STORE": uri, "CAPTURE_RATE": "1", "CAPTURE_FLUSH_SECONDS": "1",
        "CAPTURE_QUEUE": "40"})
    try:
        def traffic(prefix: str, n: int) -> list[tuple[int, float, list]]:
            with ThreadPoolExecutor(3) as pool:
                return list(pool.map(lambda i: predict(server.url, rows[i:i + 2], f"{prefix}-{i}"), range(n)))

        assert all(status == 200 for status, _, _ in traffic("before", 20))
        wait_for(lambda: metric(scrape(server.url), "capture_records_written_total") == 40,
                 what="the first records written")
        keys_before = set(read_captured(uri))

        proxy.stop()
        during = traffic("during", 150)
        assert [status for status, _, _ in during] == [200] * 150  # every prediction still succeeds
        assert max(elapsed for _, elapsed, _ in during) < 2.0

        def outage_seen():
            samples = scrape(server.url)
            lost = sum(metric(samples, "capture_records_dropped_total", reason=reason)
                       for reason in ("store_error", "queue_full"))
            return metric(samples, "capture_write_errors_total") >= 1 and lost > 0 and samples

        samples = wait_for(outage_seen, what="write errors and drops counted")
        assert metric(samples, "capture_records_written_total") == 40
        # Never more than CAPTURE_QUEUE held per worker (2 workers).
        assert metric(samples, "capture_records_pending") <= 80

        proxy.start()  # the store returns, on the same address
        # The records held through the outage (the newest ones) are written at the next retry ...
        def drained():
            samples = scrape(server.url)
            return (metric(samples, "capture_records_written_total") > 40
                    and metric(samples, "capture_records_pending") == 0)

        wait_for(drained, timeout=60, what="held records written once the store returns")
        # ... and new traffic is captured again, in new files.
        assert all(status == 200 for status, _, _ in traffic("after", 20))

        def resumed():
            found = read_captured(uri)
            ids = {r["request_id"] for key in set(found) - keys_before for r in found[key]}
            return {f"after-{i}" for i in range(20)} <= ids and ids

        ids = wait_for(resumed, timeout=60, what="capture resumed with new files")
        assert any(rid.startswith("during-") for rid in ids)

        def accounted():
            samples = scrape(server.url)
            lost = sum(metric(samples, "capture_records_dropped_total", reason=reason)
                       for reason in ("store_error", "queue_full", "shutdown", "minute_cap"))
            return metric(samples, "capture_records_written_total") + lost + metric(
                samples, "capture_records_pending") == 40 + 300 + 40

        # Every sampled record is written, dropped (counted) or still held: none vanishes.
        wait_for(accounted, timeout=30, what="every record written, dropped or held")
    finally:
        server.stop()
        proxy.stop()


def _writer_pids(master_pid: int) -> list[int]:
    """The capture writer processes: the children of the gunicorn workers."""
    import subprocess

    workers = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True, text=True).stdout.split()
    return [int(pid) for worker in workers
            for pid in subprocess.run(["pgrep", "-P", worker], capture_output=True, text=True).stdout.split()]


def test_a_killed_writer_process_costs_no_prediction_is_counted_and_replaced(local_store, tmp_path, rows):
    """The writer is a child process of each worker: killed, the records sent to it meanwhile are
    counted as writer_down, predictions stay 200, a new writer takes over, and a batch larger than
    one message (64 instances) is captured whole, in order."""
    import os
    import signal

    capture = tmp_path / "capture"
    server = GunicornServer(tmp_path / "g", {
        "MODEL_STORE": local_store, "MODEL_NAME": "digits", "CAPTURE_STORE": str(capture),
        "CAPTURE_RATE": "1", "CAPTURE_FLUSH_SECONDS": "1"})
    try:
        master = int(server.pidfile.read_text())
        writers = wait_for(lambda: len(_writer_pids(master)) == 2 and _writer_pids(master),
                           what="a writer process per worker")
        for pid in writers:
            os.kill(pid, signal.SIGKILL)
        statuses = [predict(server.url, rows[i:i + 1], f"after-kill-{i}")[0] for i in range(40)]
        assert statuses == [200] * 40
        # Each worker noticed its writer gone (the records it could not hand over are counted) and
        # started another, which captures what follows.
        wait_for(lambda: metric(scrape(server.url), "capture_records_dropped_total",
                                reason="writer_down") > 0, what="writer_down drops counted")
        wait_for(lambda: set(_writer_pids(master)).isdisjoint(writers) and len(_writer_pids(master)) == 2,
                 timeout=30, what="two new writer processes")
        status, _, big = predict(server.url, rows[:150], "big-batch")
        assert status == 200
        wait_for(lambda: any(r["request_id"] == "big-batch"
                             for found in read_captured(str(capture)).values() for r in found),
                 what="the large batch captured")
    finally:
        assert server.stop() == 0
    records = sorted((r for found in read_captured(str(capture)).values() for r in found
                      if r["request_id"] == "big-batch"), key=lambda r: r["index"])
    assert [r["index"] for r in records] == list(range(150))
    assert [r["prediction"] for r in records] == big
