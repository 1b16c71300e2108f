"""The benchmark command runs end to end (numbers are not asserted: they belong in the README)."""

import json
import subprocess

from helpers import PYTHON, ROOT, require_tool


def test_benchmark_runs_and_checks_predictions(tmp_path):
    require_tool("wrk", "the benchmark's load generator")
    out = tmp_path / "raw.json"
    result = subprocess.run(
        [PYTHON, "-m", "bench", "--runs", "1", "--seconds", "1", "--models", "digits", "--no-check",
         "--compare-workers", "sync", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| digits | 1 | service |" in result.stdout
    raw = json.loads(out.read_text())["models"]["digits"]
    # Every request answered: the service made no errors under load.
    assert raw["cells"]["1/service"]["errors"] == 0
    assert raw["cells"]["32/service"]["rps"] > 0
    # --compare-workers: the same service under gunicorn's sync worker, interleaved with the default.
    assert "| digits | 1 | service[sync] |" in result.stdout
    assert raw["cells"]["1/service[sync]"]["errors"] == 0
    # The references of the request path: the floor (no model) and the lean FastAPI peer, and the
    # service with its access log off; every row has its ratio to the floor.
    for label in ("floor (no model)", "peer (FastAPI async, lean)", "service, access log off"):
        assert f"| digits | 1 | {label} |" in result.stdout
        assert raw["cells"][f"1/{label}"]["errors"] == 0
    assert "| vs floor |" in result.stdout
    assert raw["compute_ms_per_row"] > 0


def test_profile_sorts_the_live_workers_samples_into_parts_of_the_request_path(tmp_path):
    """`make profile`: CPU per request from /proc, py-spy samples of the running workers, a breakdown."""
    require_tool("wrk", "the profile's load generator")
    out = tmp_path / "profile.json"
    result = subprocess.run(
        [PYTHON, "-m", "bench.profile", "--model", "digits", "--seconds", "2", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    profile = json.loads(out.read_text())
    assert profile["rps"] > 0 and profile["cpu_us"] > 0 and profile["samples"] > 50
    assert abs(sum(profile["shares"].values()) - 1) < 1e-9
    # The prediction is seen where it runs: the model, the checks and the HTTP layer all show up.
    seen = ("model (onnxruntime, numpy path, scikit-learn)", "input checks", "gunicorn: parse the request")
    for part in seen:
        assert profile["shares"].get(part, 0) > 0, (part, profile["shares"])
    assert "| part of the request path | share | µs per request |" in result.stdout


def test_a_sampled_stack_belongs_to_its_innermost_known_part():
    from bench.profile import part_of

    stack = ["<module> (gunicorn)", "BufferedWorker._loop (service/worker.py:170)",
             "PredictRoute._predict (service/hotpath.py:60)", "Predictor.predict (service/predict.py:256)",
             "Session.run (onnxruntime/capi/onnxruntime_inference_collection.py:406)"]
    assert part_of(stack) == "model (onnxruntime, numpy path, scikit-learn)"
    assert part_of(stack[:3]) == "response body (outputs, JSON)"  # the hot path's own lines
    assert part_of(stack[:2]) == "worker loop"
    assert part_of(["Predictor.to_matrix (service/predict.py:174)"]) == "input checks"
    assert part_of(["uuid4 (uuid.py:723)"]) == "request id"
    assert part_of(["something (elsewhere.py:1)"]) == "other"


def test_the_scoring_benchmark_runs_and_reports_the_ratio_to_in_process(tmp_path):
    """`make bench-score` on a small file: it really scores, and prints the issue's ratio."""
    import subprocess
    import sys

    from helpers import ROOT

    result = subprocess.run([sys.executable, "-m", "bench.scoring", "--rows", "3000", "--runs", "1"],
                            capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    import re

    ratio = re.search(r"^ratio model score / in-process predict: +([\d.]+)%", result.stdout, re.M)
    rate = re.search(r"^model score \(the file's own rate\): +([\d,]+) rows/s", result.stdout, re.M)
    assert ratio and rate, result.stdout
    assert float(ratio[1]) > 0 and int(rate[1].replace(",", "")) > 0


def test_capture_benchmark_compares_capture_off_and_on(tmp_path):
    """`make bench-capture`: the same service with capture off and at 100 %, every request answered,
    every captured record written to the store."""
    require_tool("wrk", "the benchmark's load generator")
    out = tmp_path / "capture.json"
    result = subprocess.run(
        [PYTHON, "-m", "bench.capture", "--runs", "1", "--seconds", "1", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "p99 on/off:" in result.stdout
    raw = json.loads(out.read_text())
    assert raw["cells"]["off"]["errors"] == 0 and raw["cells"]["on"]["errors"] == 0
    assert raw["cells"]["off"]["rps"] > 0 and raw["cells"]["on"]["rps"] > 0
    # Capture at 100 % without a cap: each answered instance is one record in the store, and the
    # service itself counts nothing dropped. (wrk counts a request answered after its deadline as
    # not completed, so the store may hold a few more records than wrk saw answered.)
    assert raw["captured_records"] >= raw["instances_answered"] > 0
    assert raw["captured_records"] <= raw["instances_answered"] + 100
    dropped = {k: v for k, v in raw["metrics"].items() if k.startswith("capture_records_dropped_total")}
    assert dropped and not any(dropped.values()), dropped
