"""Slow clients cannot starve the service (buffered workers, the default; or gevent).

Reproduced first as the issue measured it: 20 sockets that send a header line every second. With
gunicorn's sync workers each connection holds a worker until gunicorn's timeout: /health and
/predict waited 29 s. The buffered worker (service/worker.py) serves only requests that have fully
arrived; gevent reads them asynchronously: either way a slow client costs a socket, not a worker.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time

import pytest
import requests
from helpers import GunicornServer

SLOW_CLIENTS = 20


class SlowClients:
    """Sockets that start a request and then send one header line a second (bounded in time)."""

    def __init__(self, port: int, count: int = SLOW_CLIENTS, seconds: float = 20.0):
        self.port, self.count, self.seconds = port, count, seconds
        self.sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)

    def __enter__(self):
        for _ in range(self.count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            self.sockets.append(sock)
        self._thread.start()
        time.sleep(1.0)  # let every worker pick the slow connections up
        return self

    def _drip(self):
        deadline = time.monotonic() + self.seconds
        while not self._stop.wait(1.0) and time.monotonic() < deadline:
            for sock in self.sockets:
                with contextlib.suppress(OSError):  # the server may have given up on it: fine
                    sock.sendall(b"X-a: b\r\n")

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        for sock in self.sockets:
            sock.close()


def timed(method, url, **kwargs) -> tuple[float, requests.Response]:
    started = time.monotonic()
    answer = method(url, timeout=30, **kwargs)
    return time.monotonic() - started, answer


@pytest.fixture(scope="module", params=["buffered", "gevent"])
def patient_server(request, served_store, tmp_path_factory):
    env = {"MODEL_STORE": served_store}
    if request.param != "buffered":  # buffered is the default: no setting needed
        env["WORKER_CLASS"] = request.param
    server = GunicornServer(tmp_path_factory.mktemp(request.param), env)
    yield server
    server.stop()


def test_sync_workers_are_held_by_slow_clients(served_store, tmp_path):
    """The fault itself, so the test below is known to be able to fail."""
    server = GunicornServer(tmp_path, {"MODEL_STORE": served_store, "WORKER_CLASS": "sync"})
    try:
        with SlowClients(server.port, seconds=8), pytest.raises(requests.Timeout):
            requests.get(server.url + "/health", timeout=3)
    finally:
        server.stop()


def test_twenty_slow_clients_do_not_hold_up_health_or_predict(patient_server, trained_digits):
    _, manifest = trained_digits
    with SlowClients(patient_server.port):
        health = [timed(requests.get, patient_server.url + "/health") for _ in range(5)]
        predict = [timed(requests.post, patient_server.url + "/predict",
                         json={"instances": [manifest["example"]]}) for _ in range(5)]
    assert all(answer.status_code == 200 for _, answer in health + predict)
    slowest = max(seconds for seconds, _ in health + predict)
    # The target is 100 ms (README); a shared CI machine gets headroom, a blocked worker takes 29 s.
    assert slowest < 1.0, f"a request waited {slowest:.2f} s behind slow clients"


@pytest.fixture(scope="module")
def buffered_server(served_store, tmp_path_factory):
    server = GunicornServer(tmp_path_factory.mktemp("buffered"),
                            {"MODEL_STORE": served_store, "READ_TIMEOUT": "1.5"})
    yield server
    server.stop()


def raw_exchange(port: int, *parts: bytes, pause: float = 0.0, timeout: float = 10) -> bytes:
    """Send `parts` (pausing between them) on one connection and return the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for i, part in enumerate(parts):
            if i and pause:
                time.sleep(pause)
            sock.sendall(part)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_request_that_never_completes_gets_a_json_408(buffered_server):
    started = time.monotonic()
    answer = raw_exchange(buffered_server.port, b"POST /predict HTTP/1.1\r\nHost: x\r\n")
    waited = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:200]
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert 1.0 < waited < 5.0


def test_a_request_sent_in_pieces_is_served(buffered_server, trained_digits):
    _, manifest = trained_digits
    body = json.dumps({"instances": [manifest["example"]]}).encode()
    # Connection: close, so the answer ends with the connection (it would be kept alive otherwise).
    head = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    answer = raw_exchange(buffered_server.port, head[:20], head[20:], body[:10], body[10:], pause=0.2)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["predictions"][0]["label"] is not None


def test_a_chunked_request_is_served(buffered_server, trained_digits):
    _, manifest = trained_digits
    body = json.dumps({"instances": [manifest["example"]]}).encode()
    pieces = (body[:7], body[7:])
    answer = requests.post(buffered_server.url + "/predict", data=iter(pieces),
                           headers={"Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 200, answer.text


def test_an_oversized_body_gets_the_413_not_a_reset(buffered_server):
    """The body is drained before the answer: a client still sending sees the 413, not EPIPE."""
    body = b"[" + b"1," * (4 * 1024 * 1024) + b"1]"  # 8 MB against the 1 MB default
    answer = requests.post(buffered_server.url + "/predict", data=body,
                           headers={"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "too_large"


def test_a_huge_header_still_gets_the_json_431(buffered_server):
    answer = requests.get(buffered_server.url + "/health", headers={"X-Big": "a" * 100_000}, timeout=10)
    assert answer.status_code == 431
    assert answer.json()["error"]["code"] == "header_too_large"


def test_a_reload_finishes_requests_that_are_still_arriving(buffered_server, trained_digits):
    """SIGHUP retires the workers; one holding a half-sent request still answers it (found under load:
    the client got a closed connection)."""
    import os
    import signal

    _, manifest = trained_digits
    body = json.dumps({"instances": [manifest["example"]]}).encode()
    head = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    with socket.create_connection(("127.0.0.1", buffered_server.port), timeout=10) as sock:
        sock.sendall(head + body[:5])
        time.sleep(0.3)  # the worker holds it, waiting for the rest
        os.kill(int(buffered_server.pidfile.read_text()), signal.SIGHUP)
        time.sleep(0.5)
        sock.sendall(body[5:])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    buffered_server.wait_until("/ready")
