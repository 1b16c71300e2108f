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
