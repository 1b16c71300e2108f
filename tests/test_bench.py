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
