"""Slow clients cannot starve a service run with WORKER_CLASS=gevent.

Reproduced first as the issue measured it: 20 sockets that send a header line every second. With
sync workers (the default, for behind a buffering load balancer) each connection holds a worker
until gunicorn's timeout: /health and /predict waited 29 s. gevent workers read requests
asynchronously: a slow client costs a socket, not a worker.
"""

from __future__ import annotations

import contextlib
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


@pytest.fixture(scope="module")
def gevent_server(served_store, tmp_path_factory):
    server = GunicornServer(tmp_path_factory.mktemp("gevent"), {"MODEL_STORE": served_store,
                                                                "WORKER_CLASS": "gevent"})
    yield server
    server.stop()


def test_twenty_slow_clients_do_not_hold_up_health_or_predict(gevent_server, trained_digits):
    _, manifest = trained_digits
    with SlowClients(gevent_server.port):
        health = [timed(requests.get, gevent_server.url + "/health") for _ in range(5)]
        predict = [timed(requests.post, gevent_server.url + "/predict",
                         json={"instances": [manifest["example"]]}) for _ in range(5)]
    assert all(answer.status_code == 200 for _, answer in health + predict)
    slowest = max(seconds for seconds, _ in health + predict)
    # The target is 100 ms (README); a shared CI machine gets headroom, a blocked worker takes 29 s.
    assert slowest < 1.0, f"a request waited {slowest:.2f} s behind slow clients"
