"""`python -m bench.profile`: where a worker's CPU goes per request, measured on the live service.

Starts the service under gunicorn (2 workers, access log on, as `make run`), loads it with wrk
(single-row requests, 8 connections), and:
1. measures the workers' CPU time per request from /proc over a run with no profiler attached;
2. samples the workers with py-spy (a sampling profiler attached to the running processes, so the
   gunicorn worker, the sockets and the app are all seen as they run, not through a test client);
3. sorts every sample into a part of the request path by the innermost frame that names one, and
   reports each part's share and its microseconds per request (share x CPU per request).

`--source DIR` profiles the service of another checkout (for example an older commit made with
`git worktree add`), with this checkout's model and load, for a before/after comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.models import prepare_models
from bench.run import BIN, ROOT, _wait_ready, stop, wrk
from standin.ports import free_port

# (part, file fragment, function names or None for any): checked from the innermost frame outwards;
# the first frame that matches decides the sample's part.
PARTS = [
    ("metrics (prometheus_client)", "prometheus_client/", None),
    ("metrics (prometheus_client)", "service/metrics.py", None),
    ("access log", "service/logs.py", None),
    ("access log", "logging/", None),
    ("model (onnxruntime, numpy path, scikit-learn)", "onnxruntime/", None),
    ("model (onnxruntime, numpy path, scikit-learn)", "service/compiled.py", None),
    ("model (onnxruntime, numpy path, scikit-learn)", "model/compiled.py", None),
    ("model (onnxruntime, numpy path, scikit-learn)", "service/fastpath.py", None),
    ("model (onnxruntime, numpy path, scikit-learn)", "sklearn/", None),
    ("input checks", "service/predict.py", ("check_batch", "to_matrix", "_check_finite", "_bad_value",
                                            "_non_finite")),
    ("model (onnxruntime, numpy path, scikit-learn)", "service/predict.py", None),
    ("input checks", "numpy/", None),
    ("response body (outputs, JSON)", "service/outputs.py", None),
    ("JSON body parse", "service/bodies.py", ("decode_json",)),
    ("JSON body parse", "service/app.py", ("_parse_body",)),
    ("request id", "service/bodies.py", ("request_id",)),
    ("request id", "uuid.py", None),
    ("request id", "service/app.py", ("_start",)),
    ("Flask and Werkzeug", "flask/", None),
    ("Flask and Werkzeug", "werkzeug/", None),
    ("Flask and Werkzeug", "blinker/", None),
    ("response body (outputs, JSON)", "service/hotpath.py", None),
    ("response body (outputs, JSON)", "service/app.py", None),
    ("gunicorn: parse the request", "gunicorn/http/message.py", None),
    ("gunicorn: parse the request", "gunicorn/http/parser.py", None),
    ("gunicorn: parse the request", "gunicorn/http/unreader.py", None),
    ("gunicorn: parse the request", "gunicorn/http/body.py", None),
    ("gunicorn: environ, headers, send", "gunicorn/http/wsgi.py", None),
    ("gunicorn: environ, headers, send", "gunicorn/glogging.py", None),
    ("connection: accept, read, close", "socket.py", None),
    ("connection: accept, read, close", "gunicorn/util.py", None),
    ("connection: accept, read, close", "service/worker.py", ("_close", "_receive", "_accept_ready",
                                                              "recv")),
    ("worker loop", "service/worker.py", None),
    ("worker loop", "gunicorn/", None),
]
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def part_of(stack: list[str]) -> str:
    """The part of the request path a sampled stack (outermost frame first) belongs to."""
    for frame in reversed(stack):
        match = _FRAME.match(frame)
        if not match:
            continue
        func, file = match.group("func").rsplit(".", 1)[-1], match.group("file")
        for part, fragment, funcs in PARTS:
            if fragment in file and (funcs is None or func in funcs):
                return part
    return "other"


def breakdown(raw_files: list[Path]) -> Counter:
    """Samples per part, from py-spy's raw (collapsed) output."""
    parts: Counter = Counter()
    for path in raw_files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                parts[part_of(stack.split(";"))] += int(count)
    return parts


def workers_of(master: int) -> list[int]:
    """The gunicorn master's child processes."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _requests(url: str, body: bytes, seconds: float, tmp: Path) -> int:
    load = wrk(url + "/predict", body, 8, seconds, tmp)
    return round(load.rps * seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="digits", help="one of bench/models.py's (default digits)")
    parser.add_argument("--seconds", type=int, default=6, help="length of each measured run")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--source", type=Path, default=ROOT, help="the checkout whose service to run")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    for tool in ("wrk", "py-spy"):
        if not shutil.which(tool) and not (BIN / tool).exists():
            print(f"error: {tool} is not installed", file=sys.stderr)
            return 2
    tmp = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    try:
        result = profile(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not result["samples"]:
        print("error: py-spy recorded no samples: it needs permission to read other processes "
              "(root, or CAP_SYS_PTRACE with kernel.yama.ptrace_scope 0)", file=sys.stderr)
        return 1
    print(f"{args.model}: {result['rps']:.0f} requests/s unprofiled, {result['cpu_us']:.0f} µs of worker CPU "
          f"per request ({args.source.name or args.source})")
    print("| part of the request path | share | µs per request |\n|---|---|---|")
    for part, share in result["shares"].items():
        print(f"| {part} | {share * 100:.0f} % | {share * result['cpu_us']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def profile(args, tmp: Path) -> dict:
    """Run the service, measure CPU per request, sample it; the numbers `main` prints."""
    setup = prepare_models(tmp, [args.model])
    spec = setup["models"][args.model]
    body = json.dumps({"instances": spec["rows"][:1]}).encode()
    port = free_port()
    (tmp / "prom").mkdir()
    env = {"MODEL_STORE": setup["store"], "MODEL_NAME": args.model, "PORT": str(port), "BIND": "127.0.0.1",
           "WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prom"), "LOG_LEVEL": "info"}

    argv = [str(BIN / "gunicorn"), "--config", "service/gunicorn.conf.py", "service.wsgi:app"]
    proc = subprocess.Popen(argv, cwd=args.source, env={**os.environ, **env, "PYTHONPATH": str(args.source)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url + "/ready", proc)
        workers = workers_of(proc.pid)
        _requests(url, body, 2, tmp)  # warm up
        before = cpu_seconds(workers)
        done = _requests(url, body, args.seconds, tmp)
        cpu_us = (cpu_seconds(workers) - before) / done * 1e6
        rps = done / args.seconds
        spy = shutil.which("py-spy") or str(BIN / "py-spy")
        load = subprocess.Popen(["wrk", "-t1", "-c8", f"-d{args.seconds + 2:g}s", "-s", str(tmp / "post.lua"),
                                 url + "/predict"], stdout=subprocess.DEVNULL)
        time.sleep(1)
        raws = [tmp / f"raw-{pid}.txt" for pid in workers]
        spies = [subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", f"{args.seconds:g}",
                                   "--rate", str(args.rate), "--format", "raw", "-o", str(raw)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for pid, raw in zip(workers, raws, strict=True)]
        for spied in spies:
            spied.wait(timeout=args.seconds + 60)
        load.wait(timeout=args.seconds + 60)
    finally:
        stop(proc)
    parts = breakdown([raw for raw in raws if raw.exists()])
    total = sum(parts.values())
    shares = {part: count / total for part, count in parts.most_common()} if total else {}
    return {"model": args.model, "rps": rps, "cpu_us": cpu_us, "samples": total, "shares": shares}


if __name__ == "__main__":
    raise SystemExit(main())
