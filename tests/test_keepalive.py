"""Kept-alive connections (buffered workers): a client, or the load balancer in front, sends request
after request on one connection, as HTTP/1.1 intends, instead of opening one per request.

Between requests such a connection waits in the worker's selector, costing a socket, not the
worker; it is closed quietly after KEEPALIVE seconds of silence (no 408: no request was started),
after a short grace when the worker retires on a reload (a request arriving in it is answered,
with `Connection: close`), and never when KEEPALIVE=0.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import time

import pytest
import requests
from helpers import GunicornServer


@pytest.fixture(scope="module")
def server(served_store, tmp_path_factory):
    server = GunicornServer(tmp_path_factory.mktemp("keepalive"), {"MODEL_STORE": served_store})
    yield server
    server.stop()


def predict_body(manifest) -> bytes:
    return json.dumps({"instances": [manifest["example"]]}).encode()


def request_bytes(body: bytes, close: bool = False) -> bytes:
    return (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + (b"Connection: close\r\n" if close else b"")
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def read_to_end(sock: socket.socket) -> bytes:
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def retire_workers(server: GunicornServer) -> None:
    """SIGHUP the master and return once it has started the new workers: it signals the old ones to
    retire right after that (gunicorn's reload), so they are retiring a moment later."""
    booted = server.log().count("Booting worker")
    os.kill(int(server.pidfile.read_text()), signal.SIGHUP)
    deadline = time.monotonic() + 30
    while server.log().count("Booting worker") < booted + server.workers:
        assert time.monotonic() < deadline, server.log()[-3000:]
        time.sleep(0.02)
    time.sleep(0.3)


def test_requests_after_requests_on_one_connection(server, trained_digits):
    _, manifest = trained_digits
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    answers, sockets = [], []
    try:
        for _ in range(5):
            conn.request("POST", "/predict", body=predict_body(manifest),
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            answers.append((response.status, response.getheader("Connection"), json.loads(response.read())))
            sockets.append(conn.sock)
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200
        sockets.append(conn.sock)
    finally:
        conn.close()
    assert all(sock is sockets[0] for sock in sockets), "a request opened a new connection"
    assert [(status, connection) for status, connection, _ in answers] == [(200, "keep-alive")] * 5
    assert len({json.dumps(body["predictions"]) for _, _, body in answers}) == 1


def test_pipelined_requests_are_answered_in_order(server, trained_digits):
    _, manifest = trained_digits
    body = predict_body(manifest)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        # Two requests in one write: the second arrives with the first's bytes.
        sock.sendall(request_bytes(body) + request_bytes(body, close=True))
        answer = read_to_end(sock)
    assert answer.count(b"HTTP/1.1 200 OK") == 2, answer[:500]
    assert answer.index(b"Connection: keep-alive") < answer.index(b"Connection: close")


def test_idle_kept_connections_do_not_hold_the_workers(server, trained_digits):
    _, manifest = trained_digits
    body = predict_body(manifest)
    idle = []
    try:
        for _ in range(20):  # 20 connections that asked once and stay open, silent (2 workers)
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
            assert conn.getresponse().read()
            idle.append(conn)
        slowest = 0.0
        for _ in range(5):
            started = time.monotonic()
            assert requests.get(server.url + "/health", timeout=10).status_code == 200
            slowest = max(slowest, time.monotonic() - started)
        # A worker blocked on an idle connection would make this wait for KEEPALIVE (75 s).
        assert slowest < 1.0, f"a request waited {slowest:.2f} s behind idle connections"
        for conn in idle:  # and the idle connections still work
            conn.request("GET", "/health")
            assert conn.getresponse().status == 200
    finally:
        for conn in idle:
            conn.close()


def test_a_silent_connection_is_closed_quietly_after_keepalive(served_store, tmp_path, trained_digits):
    _, manifest = trained_digits
    quick = GunicornServer(tmp_path, {"MODEL_STORE": served_store, "KEEPALIVE": "1"})
    try:
        with socket.create_connection(("127.0.0.1", quick.port), timeout=10) as sock:
            sock.sendall(request_bytes(predict_body(manifest)))
            started = time.monotonic()
            answer = read_to_end(sock)  # the answer, then the close a second later
            waited = time.monotonic() - started
        assert answer.count(b"HTTP/1.1 ") == 1 and answer.startswith(b"HTTP/1.1 200"), answer[:300]
        assert b"408" not in answer.split(b"\r\n", 1)[0]
        assert 0.8 < waited < 5.0
    finally:
        quick.stop()


def test_keepalive_0_closes_after_every_response(served_store, tmp_path):
    closing = GunicornServer(tmp_path, {"MODEL_STORE": served_store, "KEEPALIVE": "0"})
    try:
        conn = http.client.HTTPConnection("127.0.0.1", closing.port, timeout=10)
        conn.request("GET", "/health")
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Connection") == "close"
        conn.close()
    finally:
        closing.stop()


def test_a_reload_does_not_wait_for_idle_connections(server, trained_digits):
    """SIGHUP retires the workers at once: an idle kept connection is closed, not waited for (75 s),
    and its next request goes to a fresh worker on a new connection."""
    _, manifest = trained_digits
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request_bytes(predict_body(manifest)))
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first[:200]
        started = time.monotonic()
        os.kill(int(server.pidfile.read_text()), signal.SIGHUP)
        rest = read_to_end(sock)  # EOF once the old worker retires
        closed_after = time.monotonic() - started
    assert b"HTTP/1.1" not in rest
    assert closed_after < 10, f"the retiring worker kept an idle connection {closed_after:.1f} s"
    server.wait_until("/ready")


def test_a_request_sent_just_after_a_reload_on_a_kept_connection_is_answered(server, trained_digits):
    """The keep-alive race that failed a request in a rollout under load: the client reused its kept
    connection just as SIGHUP retired the worker holding it, and the worker closed the connection
    under the request (a reset). A retiring worker now gives idle connections a short grace
    (service.worker.RETIRE_GRACE) and answers a request arriving in it, with `Connection: close`."""
    _, manifest = trained_digits
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request_bytes(predict_body(manifest)))
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first[:200]
        retire_workers(server)  # the old worker has been told to retire; the client has not
        sock.sendall(request_bytes(predict_body(manifest)))
        second = read_to_end(sock)
    head = second.split(b"\r\n\r\n", 1)[0].lower()
    assert second.startswith(b"HTTP/1.1 200"), second[:200]
    assert b"connection: close" in head
    server.wait_until("/ready")


def test_the_load_balancer_gives_up_on_idle_connections_before_the_service():
    """AWS's advice for targets behind an ALB: keep idle connections open longer than the ALB's idle
    timeout, or the ALB may send a request on a connection the target is closing (a 502)."""
    from deploy.stack.template import load, render
    from service.config import Settings

    resources = render(load())["Resources"].values()
    balancers = [r for r in resources if r["Type"] == "AWS::ElasticLoadBalancingV2::LoadBalancer"]
    assert len(balancers) == 1
    attributes = {a["Key"]: a["Value"] for a in balancers[0]["Properties"]["LoadBalancerAttributes"]}
    assert float(attributes["idle_timeout.timeout_seconds"]) < Settings.from_env({}).keepalive
