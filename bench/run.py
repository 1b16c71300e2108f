"""`python -m bench`: measure the service against in-process prediction and two peers.

In one sitting, on 127.0.0.1 only: train the models (bench/models.py) into a temporary store; time
them in-process (the faster of scikit-learn and, for a compiled model, onnxruntime: the baseline);
start the service under gunicorn and two peers with the same worker count and the same pickle (a
well-written FastAPI app calling predict_proba once, and one written as the seed articles do: Flask
calling predict and predict_proba); load each with wrk (single- and 32-instance requests); report
medians of several runs, the ratios to the best peer and to in-process, the path the service uses
(onnx, numpy or sklearn), cold start and memory per worker, and check that the service answers what
the model computes in-process.
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

from bench.models import MODELS, inprocess, prepare_models
from standin.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TARGETS = {
    # single-instance throughput against the best peer: 10x for a compiled forest, 2x for the
    # built-in models, 1.5x for any model whose compute is light, at least even otherwise
    "single_vs_peer": {"forest": 10.0, "digits": 2.0, "text": 2.0},
    "single_vs_light_peer": 1.5,
    "single_vs_peer_default": 1.0,
    # a light model: at most this much in-process compute per row (ms); its service must reach this
    # share of the floor's requests/s (a Flask app answering a constant), access log on
    "light_model_ms": 0.1,
    "light_vs_floor": 0.8,
    "p99_ms": {"forest": 5.0},
    "p99_ms_light": 5.0,
    "p99_ms_default": 20.0,  # at 8 connections
    "batch_vs_inprocess": 0.9,  # 32-instance requests vs the in-process rate of the same model
    "cold_start_s": 1.5,
}


Started = tuple[subprocess.Popen, str, float]  # a server's process, base URL and cold start


@dataclass
class Load:
    """One wrk run's numbers."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0  # completed in the run


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


def _spawn(argv: list[str], env: dict, port: int) -> Started:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url + "/ready", proc)
    return proc, url, time.perf_counter() - start


def start_service(store: str, name: str, workers: int, tmp: Path, worker_class: str | None = None,
                  model_format: str | None = None, access_log: bool = True,
                  env: dict | None = None) -> Started:
    """The service under gunicorn, as `make run` starts it; returns (process, base URL, cold start).

    `worker_class` sets WORKER_CLASS (unset: the service's default); `access_log` False sets
    LOG_LEVEL=warning (the default, INFO, writes one JSON line per request); `env` adds variables
    (e.g. CAPTURE_RATE)."""
    port = free_port()
    metrics_dir = tmp / f"prom-{port}"
    metrics_dir.mkdir()
    env = {
        "MODEL_STORE": store,
        "MODEL_NAME": name,
        "PORT": str(port),
        "BIND": "127.0.0.1",
        "WEB_CONCURRENCY": str(workers),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "LOG_LEVEL": "info" if access_log else "warning",
        **({"WORKER_CLASS": worker_class} if worker_class else {}),
        **({"MODEL_FORMAT": model_format} if model_format else {}),
        **(env or {}),
    }
    argv = [str(BIN / "gunicorn"), "--config", "service/gunicorn.conf.py", "service.wsgi:app"]
    return _spawn(argv, env, port)


def cold_starts(store: str, name: str, workers: int, tmp: Path, model_format: str,
                times: int = 3) -> float:
    """Median process start -> first 200 on /ready over `times` fresh starts (the first start after
    training also pays for a cold file cache)."""
    seconds = []
    for _ in range(times):
        proc, _, cold = start_service(store, name, workers, tmp, model_format=model_format)
        stop(proc)
        seconds.append(cold)
    return statistics.median(seconds)


def start_flask_app(module: str, workers: int, model_path: Path | None = None) -> Started:
    """A Flask app of bench/ under gunicorn's sync workers: the seed-style peer or the floor."""
    port = free_port()
    argv = [str(BIN / "gunicorn"), "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
            "--log-level", "warning", f"{module}:app"]
    return _spawn(argv, {"PEER_MODEL_PATH": str(model_path)} if model_path else {}, port)


def start_fastapi_app(module: str, model_path: Path, workers: int) -> Started:
    """A FastAPI peer of bench/ under uvicorn (with uvloop and httptools) and `workers` workers."""
    port = free_port()
    argv = [str(BIN / "uvicorn"), f"{module}:app", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    return _spawn(argv, {"PEER_MODEL_PATH": str(model_path)}, port)


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
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return Load(rps, latency(50), latency(99), errors, requests)


def check_predictions(url: str, spec: dict) -> str:
    """The service's labels and probabilities equal the in-process ones; return its serving path."""
    from bench.models import estimator_input

    rows, estimator = spec["rows"], spec["estimator"]
    response = requests.post(url + "/predict", json={"instances": rows}, timeout=10)
    response.raise_for_status()
    served = response.json()["predictions"]
    data = estimator_input(spec["manifest"], rows)
    expected = estimator.predict_proba(data)
    classes = [str(c) for c in estimator.classes_]
    for got, want in zip(served, expected, strict=True):
        probs = np.asarray([got["probabilities"][c] for c in classes])
        # onnxruntime computes in float32: equal to scikit-learn within the parity tolerance.
        if not np.allclose(probs, want, rtol=0, atol=1e-5):
            raise AssertionError("service probabilities differ from in-process predict_proba")
        if str(got["label"]) != classes[int(np.argmax(want))]:
            raise AssertionError("service label differs from in-process argmax")
    serving = requests.get(url + "/model", timeout=10).json().get("serving") or {}
    return serving.get("path", "?")


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
    parser.add_argument("--models", default=",".join(MODELS), help="some of %(default)s")
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


SERVICE, SERVICE_QUIET = "service", "service, access log off"
LEAN, FASTAPI, SEED = "peer (FastAPI async, lean)", "peer (FastAPI)", "peer (seed style)"
FLOOR = "floor (no model)"
PEERS = (LEAN, FASTAPI, SEED)


def _start_servers(args, setup: dict, name: str, tmp: Path) -> dict:
    """label -> (process, URL, cold start) for the service (access log on and off), the peers and
    the floor, all with the same worker count."""
    model_path = tmp / f"{name}.joblib"
    servers = {}
    try:
        servers[SERVICE] = start_service(setup["store"], name, args.workers, tmp)
        servers[SERVICE_QUIET] = start_service(setup["store"], name, args.workers, tmp, access_log=False)
        for worker_class in filter(None, args.compare_workers.split(",")):
            servers[f"service[{worker_class}]"] = start_service(setup["store"], name, args.workers, tmp,
                                                                 worker_class)
        servers[LEAN] = start_fastapi_app("bench.lean_peer_app", model_path, args.workers)
        servers[FASTAPI] = start_fastapi_app("bench.peer_app", model_path, args.workers)
        servers[SEED] = start_flask_app("bench.seed_peer_app", args.workers, model_path)
        servers[FLOOR] = start_flask_app("bench.floor_app", args.workers)
    except BaseException:
        for proc, _, _ in servers.values():
            stop(proc)
        raise
    return servers


def _run(args, tmp: Path) -> int:
    print(f"machine: {machine()}")
    names = args.models.split(",")
    setup = prepare_models(tmp, names)
    lines, raw, missed = [], {"machine": machine(), "targets": TARGETS, "models": {}}, []
    header = (
        "| model | batch | server | path | req/s | instances/s | p50 ms | p99 ms | errors | vs best peer "
        "| vs floor | vs in-process |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    for name in names:
        lines.append(header)
        spec = setup["models"][name]
        base = {b: inprocess(spec, b, 2.0) for b in (1, 32)}
        cold = {"auto": cold_starts(setup["store"], name, args.workers, tmp, "auto")}
        if spec.get("onnx"):
            cold["onnx"] = cold_starts(setup["store"], name, args.workers, tmp, "onnx")
        servers = _start_servers(args, setup, name, tmp)
        try:
            path = check_predictions(servers[SERVICE][1], spec)
            memory = worker_rss_mib(servers[SERVICE][0].pid)
            peer_memory = worker_rss_mib(servers[LEAN][0].pid)
            cells = {}
            for batch in (1, 32):
                body = json.dumps({"instances": spec["rows"][:batch]}).encode()
                cells[batch] = {label: Row(name, batch, label) for label in servers}
                for _ in range(args.runs):  # interleaved, so drift hits all alike
                    for label, (_, url, _) in servers.items():
                        cells[batch][label].runs.append(
                            wrk(url + "/predict", body, args.connections, args.seconds, tmp)
                        )
        finally:
            for proc, _, _ in servers.values():
                stop(proc)
        peer_cold = servers[LEAN][2]
        compute_ms = 1000 / base[1][0]
        result = {"path": path, "compute_ms_per_row": compute_ms,
                  "cold_start_s": {"service": cold["auto"], "service_pickle_free": cold.get("onnx"),
                                   "peer": peer_cold},
                  "rss_mib_per_worker": {"service": memory, "peer": peer_memory},
                  "inprocess_calls_per_s": {b: base[b][0] for b in base},
                  "inprocess_runtime": base[1][1], "cells": {}}
        for batch in (1, 32):
            rate, runtime = base[batch]
            lines.append(f"| {name} | {batch} | in-process ({runtime}) | | {rate:.0f} | {rate * batch:.0f} "
                         "| | | | | | 1.00 |")
            best_peer = max(cells[batch][p].median("rps") for p in PEERS)
            floor = cells[batch][FLOOR].median("rps")
            for label, row in cells[batch].items():
                rps, p50, p99 = row.median("rps"), row.median("p50_ms"), row.median("p99_ms")
                errors = sum(r.errors for r in row.runs)
                shown_path = path if label.startswith("service") else "" if label == FLOOR else "sklearn"
                lines.append(
                    f"| {name} | {batch} | {label} | {shown_path} | {rps:.0f} | {rps * batch:.0f} "
                    f"| {p50:.1f} | {p99:.1f} | {errors} | {rps / best_peer:.2f} | {rps / floor:.2f} "
                    f"| {rps / rate:.2f} |"
                )
                result["cells"][f"{batch}/{label}"] = {"rps": rps, "p50_ms": p50, "p99_ms": p99,
                                                       "errors": errors, "runs": [vars(r) for r in row.runs]}
            missed += _missed(name, batch, cells[batch][SERVICE], best_peer, floor, rate, compute_ms)
        if cold["auto"] > TARGETS["cold_start_s"] and name == "digits":
            missed.append(f"{name}: cold start {cold['auto']:.2f} s > {TARGETS['cold_start_s']} s")
        raw["models"][name] = result
        lines.append(
            f"\n{name}: served by the {path} path; in-process compute {compute_ms * 1000:.0f} µs per row; "
            f"cold start service {cold['auto']:.2f} s (median of 3; "
            + (f"pickle-free, MODEL_FORMAT=onnx: {cold['onnx']:.2f} s" if "onnx" in cold else "auto only")
            + "), lean peer "
            f"{peer_cold:.2f} s; memory per worker service {', '.join(f'{m:.0f}' for m in memory)} MiB, "
            f"lean peer {', '.join(f'{m:.0f}' for m in peer_memory)} MiB\n"
        )
    table = "\n".join(lines)
    print(table)
    print("targets:", "all met" if not missed else "MISSED: " + "; ".join(missed))
    raw["missed"] = missed
    if args.out:
        args.out.write_text(f"Machine: {machine()}\n\n{table}\n\ntargets: "
                            + ("all met" if not missed else "missed:\n- " + "\n- ".join(missed)) + "\n")
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2))
    return 0 if args.no_check or not missed else 1


def _missed(name: str, batch: int, row: Row, best_peer: float, floor: float, inprocess_rate: float,
            compute_ms: float) -> list[str]:
    """The targets this model's service row (access log on) misses."""
    missed = []
    rps, p99 = row.median("rps"), row.median("p99_ms")
    light = compute_ms <= TARGETS["light_model_ms"]
    if batch == 1:
        want = TARGETS["single_vs_peer"].get(name, TARGETS["single_vs_light_peer"] if light
                                             else TARGETS["single_vs_peer_default"])
        if rps / best_peer < want:
            missed.append(f"{name}: single-instance throughput {rps / best_peer:.2f}x the best peer's "
                          f"(target {want}x)")
        limit = TARGETS["p99_ms"].get(name, TARGETS["p99_ms_light"] if light else TARGETS["p99_ms_default"])
        if p99 > limit:
            missed.append(f"{name}: p99 {p99:.1f} ms > {limit} ms")
        if light and rps / floor < TARGETS["light_vs_floor"]:
            missed.append(f"{name}: {rps / floor:.2f} of the floor's requests/s (target "
                          f"{TARGETS['light_vs_floor']})")
    elif rps / inprocess_rate < TARGETS["batch_vs_inprocess"]:
        missed.append(f"{name}: 32-instance throughput {rps / inprocess_rate:.2f}x in-process")
    if sum(r.errors for r in row.runs):
        missed.append(f"{name}: service errors at batch {batch}")
    return missed
