"""`python -m bench`: measure the service against in-process predict_proba and a FastAPI peer.

In one sitting, on 127.0.0.1 only: train the default (digits) model and a tf-idf text model into a
temporary store; time `predict_proba` in-process (the baseline); start the service under gunicorn
and the peer (FastAPI + uvicorn, the seed article's stack) with the same worker count; load each
with wrk (single- and 32-instance requests); report the median of several runs, the ratios, cold
start, memory per worker, and check that the service answers what the model computes in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests

from standin.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TARGETS = {
    "single_vs_peer": 1.0,  # single-instance throughput at least the peer's (aim 1.3x)
    "p99_ms": 20.0,  # at 8 connections
    "batch_vs_inprocess": 0.8,  # 32-instance requests vs in-process batch throughput
    "cold_start_s": 2.5,
}


@dataclass
class Load:
    """One wrk run's numbers."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class Row:
    """Medians over runs for one (model, batch, server) cell."""

    model: str
    batch: int
    server: str
    runs: list[Load] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs)


# -- set-up -------------------------------------------------------------------------------------
def prepare_models(workdir: Path) -> dict:
    """Train both models into a store under workdir; return per-model payloads and estimators."""
    from bench.textdata import make_corpus, write_csv
    from model.data import load_dataset
    from model.loader import load_model
    from model.store import ModelStore
    from model.train import train

    store_uri = str(workdir / "store")
    store = ModelStore(store_uri)
    texts, labels = make_corpus()
    write_csv(workdir / "text.csv", texts, labels)
    specs = {
        "digits": load_dataset("digits"),
        "text": load_dataset(str(workdir / "text.csv"), text_column="text"),
    }
    models = {}
    for name, dataset in specs.items():
        candidate = train(dataset, name=name)
        artifact, manifest = candidate
        store.publish(artifact, manifest, onnx=candidate.onnx)
        store.move_alias(name, "production", manifest["version"])
        (workdir / f"{name}.joblib").write_bytes(artifact)
        estimator = load_model(store, name).estimator
        if name == "digits":
            rows = np.asarray(dataset.X[:32]).tolist()
        else:
            rows = make_corpus(classes=20, docs_per_class=2, seed=1)[0][:32]
        models[name] = {"estimator": estimator, "rows": rows, "version": manifest["version"]}
    return {"store": store_uri, "models": models}


def inprocess(estimator, rows: list, batch: int, seconds: float) -> float:
    """predict_proba calls per second on `batch` rows, one core, no HTTP."""
    data = rows[:batch] if isinstance(rows[0], str) else np.asarray(rows[:batch], dtype=np.float64)
    estimator.predict_proba(data)  # warm up
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        estimator.predict_proba(data)
        calls += 1
    return calls / (time.perf_counter() - start)


# -- servers ------------------------------------------------------------------------------------
def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return time.perf_counter() - start
        except requests.RequestException:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def start_service(store: str, name: str, workers: int, tmp: Path,
                  worker_class: str | None = None) -> tuple[subprocess.Popen, str, float]:
    """The service under gunicorn, as `make run` starts it; returns (process, base URL, cold start).

    `worker_class` sets WORKER_CLASS (unset: the service's default)."""
    port = free_port()
    metrics_dir = tmp / f"prom-{port}"
    metrics_dir.mkdir()
    env = {
        **os.environ,
        "MODEL_STORE": store,
        "MODEL_NAME": name,
        "PORT": str(port),
        "BIND": "127.0.0.1",
        "WEB_CONCURRENCY": str(workers),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "LOG_LEVEL": "warning",
        **({"WORKER_CLASS": worker_class} if worker_class else {}),
    }
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(BIN / "gunicorn"), "--config", "service/gunicorn.conf.py", "service.wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url + "/ready", proc)
    return proc, url, time.perf_counter() - start


def start_peer(model_path: Path, workers: int) -> tuple[subprocess.Popen, str, float]:
    """The FastAPI peer under uvicorn with the same worker count."""
    port = free_port()
    env = {**os.environ, "PEER_MODEL_PATH": str(model_path)}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(BIN / "uvicorn"), "bench.peer_app:app", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url + "/ready", proc)
    return proc, url, time.perf_counter() - start


def stop(proc: subprocess.Popen) -> None:
    """Stop a server and wait for it."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def worker_rss_mib(master_pid: int) -> list[float]:
    """Resident memory of each child process of a server's master, in MiB."""
    sizes = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        ppid = re.search(r"^PPid:\s+(\d+)", text, re.M)
        rss = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
        if ppid and rss and int(ppid.group(1)) == master_pid:
            sizes.append(int(rss.group(1)) / 1024)
    return sizes


# -- load ---------------------------------------------------------------------------------------
def wrk(url: str, body: bytes, connections: int, seconds: float, tmp: Path) -> Load:
    """POST `body` to `url` with wrk (one thread, keep-alive where the server allows it)."""
    body_file = tmp / "body.json"
    body_file.write_bytes(body)
    script = tmp / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body_file}", "rb")\n'
        "wrk.body = f:read(\"*a\")\nf:close()\n"
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", out))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        # gunicorn's sync workers close each connection after the response; wrk counts the
        # resulting reads of a closed socket as "read" errors although every request succeeded.
        errors += int(socket_errors.group(1)) + int(socket_errors.group(4))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return Load(rps, latency(50), latency(99), errors)


def check_predictions(url: str, estimator, rows: list) -> None:
    """The service's probabilities and labels equal the in-process ones."""
    response = requests.post(url + "/predict", json={"instances": rows}, timeout=10)
    response.raise_for_status()
    served = response.json()["predictions"]
    data = rows if isinstance(rows[0], str) else np.asarray(rows, dtype=np.float64)
    expected = estimator.predict_proba(data)
    classes = [str(c) for c in estimator.classes_]
    for got, want in zip(served, expected, strict=True):
        probs = np.asarray([got["probabilities"][c] for c in classes])
        if not np.allclose(probs, want, rtol=0, atol=1e-9):
            raise AssertionError("service probabilities differ from in-process predict_proba")
        if str(got["label"]) != classes[int(np.argmax(want))]:
            raise AssertionError("service label differs from in-process argmax")


# -- report -------------------------------------------------------------------------------------
def machine() -> str:
    """A one-line description of this machine."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 if a target is missed (unless --no-check)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per cell; the median is reported")
    parser.add_argument("--seconds", type=int, default=8, help="length of one wrk run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--models", default="digits,text")
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    parser.add_argument("--json", type=Path, help="also write raw numbers here")
    parser.add_argument("--compare-workers", default="",
                        help="also run the service with these WORKER_CLASS values (e.g. sync,gevent), "
                             "interleaved with the default")
    parser.add_argument("--no-check", action="store_true", help="report only, never fail on targets")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        print("error: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        return _run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args, tmp: Path) -> int:
    print(f"machine: {machine()}")
    setup = prepare_models(tmp)
    lines, raw, missed = [], {"machine": machine(), "models": {}}, []
    header = (
        "| model | batch | server | req/s | instances/s | p50 ms | p99 ms | errors | vs peer "
        "| vs in-process |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    lines.append(header)
    for name in args.models.split(","):
        spec = setup["models"][name]
        estimator, rows = spec["estimator"], spec["rows"]
        base = {b: inprocess(estimator, rows, b, 2.0) for b in (1, 32)}
        service, service_url, service_cold = start_service(setup["store"], name, args.workers, tmp)
        peer, peer_url, peer_cold = start_peer(tmp / f"{name}.joblib", args.workers)
        variants = {}
        try:
            for worker_class in filter(None, args.compare_workers.split(",")):
                variants[f"service[{worker_class}]"] = start_service(
                    setup["store"], name, args.workers, tmp, worker_class)
            servers = [("service", service_url), *((label, v[1]) for label, v in variants.items()),
                       ("peer", peer_url)]
            check_predictions(service_url, estimator, rows)
            memory = worker_rss_mib(service.pid)
            peer_memory = worker_rss_mib(peer.pid)
            cells = {}
            for batch in (1, 32):
                body = json.dumps({"instances": rows[:batch]}).encode()
                cells[batch] = {s: Row(name, batch, s) for s, _ in servers}
                for _ in range(args.runs):  # interleaved, so drift hits all alike
                    for server, url in servers:
                        cells[batch][server].runs.append(
                            wrk(url + "/predict", body, args.connections, args.seconds, tmp)
                        )
        finally:
            stop(service)
            stop(peer)
            for proc, _, _ in variants.values():
                stop(proc)
        result = {"cold_start_s": {"service": service_cold, "peer": peer_cold},
                  "rss_mib_per_worker": {"service": memory, "peer": peer_memory},
                  "inprocess_calls_per_s": base, "cells": {}}
        for batch in (1, 32):
            lines.append(f"| {name} | {batch} | in-process predict_proba | {base[batch]:.0f} | "
                         f"{base[batch] * batch:.0f} | | | | | 1.00 |")
            peer_rps = cells[batch]["peer"].median("rps")
            for server in cells[batch]:
                row = cells[batch][server]
                rps, p50, p99 = row.median("rps"), row.median("p50_ms"), row.median("p99_ms")
                errors = sum(r.errors for r in row.runs)
                lines.append(
                    f"| {name} | {batch} | {server} | {rps:.0f} | {rps * batch:.0f} | {p50:.1f} | "
                    f"{p99:.1f} | {errors} | {rps / peer_rps:.2f} | {rps / base[batch]:.2f} |"
                )
                result["cells"][f"{batch}/{server}"] = {"rps": rps, "p50_ms": p50, "p99_ms": p99,
                                                        "errors": errors,
                                                        "runs": [vars(r) for r in row.runs]}
            service_row = cells[batch]["service"]
            if batch == 1:
                ratio = service_row.median("rps") / peer_rps
                if ratio < TARGETS["single_vs_peer"]:
                    missed.append(f"{name}: single-instance throughput {ratio:.2f}x the peer's")
                if service_row.median("p99_ms") > TARGETS["p99_ms"]:
                    missed.append(f"{name}: p99 {service_row.median('p99_ms'):.1f} ms > 20 ms")
            else:
                ratio = service_row.median("rps") / base[32]
                if ratio < TARGETS["batch_vs_inprocess"]:
                    missed.append(f"{name}: 32-instance throughput {ratio:.2f}x in-process")
            if sum(r.errors for r in service_row.runs):
                missed.append(f"{name}: service errors at batch {batch}")
        if service_cold > TARGETS["cold_start_s"]:
            missed.append(f"{name}: cold start {service_cold:.2f} s > 2.5 s")
        raw["models"][name] = result
        lines.append(
            f"\n{name}: cold start service {service_cold:.2f} s, peer {peer_cold:.2f} s; memory per "
            f"worker service {', '.join(f'{m:.0f}' for m in memory)} MiB, peer "
            f"{', '.join(f'{m:.0f}' for m in peer_memory)} MiB\n"
        )
        if name != args.models.split(",")[-1]:
            lines.append(header)
    table = "\n".join(lines)
    print(table)
    print("targets:", "all met" if not missed else "MISSED: " + "; ".join(missed))
    if args.out:
        args.out.write_text(f"Machine: {machine()}\n\n{table}\n")
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2))
    return 0 if args.no_check or not missed else 1
