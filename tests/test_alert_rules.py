"""examples/monitoring/drift-alerts.yml: valid Prometheus rules that fire on the series the service
exposes, and only then (`promtool check rules`, `promtool test rules`)."""

from __future__ import annotations

import subprocess

import yaml
from helpers import ROOT, require_tool

RULES = ROOT / "examples/monitoring/drift-alerts.yml"
SERIES = 'name="digits",version="v1"'


def promtool(*args: str) -> subprocess.CompletedProcess:
    require_tool("promtool", "Prometheus' rule checker (apt-get install prometheus)")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120)


def test_the_rules_are_valid():
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout


def _test_file(tmp_path, series: list[dict], alerts: list[dict]) -> str:
    spec = {"rule_files": [str(RULES)], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": alerts}]}
    path = tmp_path / "rules-test.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


def _alert(name: str, at: str, fired: list[dict]) -> dict:
    return {"eval_time": at, "alertname": name, "exp_alerts": fired}


def test_each_alert_fires_on_drifted_series_after_its_hold_and_not_before(tmp_path):
    series = [
        {"series": f'model_drift_psi{{{SERIES},feature="pixel_3_4"}}', "values": "0.05x10 0.6x40"},
        {"series": f'model_drift_psi{{{SERIES},feature="pixel_0_0"}}', "values": "0.01x50"},
        {"series": f"model_prediction_psi{{{SERIES}}}", "values": "0.4x50"},
        {"series": f"model_input_out_of_range_ratio{{{SERIES}}}", "values": "0.2x50"},
        {"series": f"model_input_unseen_ratio{{{SERIES}}}", "values": "0x50"},
        {"series": f"model_drift_window_records{{{SERIES}}}", "values": "2000x50"},
        {"series": 'capture_records_dropped_total{reason="store_error"}', "values": "0+10x50"},
        {"series": 'capture_records_dropped_total{reason="minute_cap"}', "values": "0+10x50"},
    ]
    labels = {"name": "digits", "version": "v1", "severity": "warning"}
    input_drift = {"exp_labels": labels, "exp_annotations": {
        "summary": "digits v1: an input feature drifted (PSI 0.60 >= 0.25)",
        "description": "Run `python -m model monitor --since 24h --report drift.html` for the features "
                       "and their plots; `make monitor-check` requests a retrain when the batch check "
                       "agrees."}}
    alerts = [
        _alert("ModelInputDrift", "35m", []),  # drifted since minute 11: not yet 30 minutes
        _alert("ModelInputDrift", "45m", [input_drift]),
        _alert("ModelPredictionDrift", "45m", [{"exp_labels": labels, "exp_annotations": {
            "summary": "digits v1: the predicted classes moved (PSI 0.40 >= 0.25)"}}]),
        _alert("ModelInputsOutsideTraining", "45m", [{"exp_labels": labels, "exp_annotations": {
            "summary": "digits v1: 20% of recent inputs are outside what the model was trained on"}}]),
        # The per-minute cap is a chosen sample size, not a fault: only the other reasons alert.
        _alert("PredictionCaptureDropping", "45m", [{
            "exp_labels": {"reason": "store_error", "severity": "info"},
            "exp_annotations": {"summary": "Captured predictions are being dropped (store_error): drift "
                                           "checks see fewer records"}}]),
    ]
    result = promtool("test", "rules", _test_file(tmp_path, series, alerts))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_small_or_quiet_window_alerts_nothing(tmp_path):
    series = [
        # A high PSI over 150 records is noise: the rules want 200 (MIN_RECORDS in model/drift.py).
        {"series": f'model_drift_psi{{{SERIES},feature="pixel_3_4"}}', "values": "0.9x50"},
        {"series": f"model_prediction_psi{{{SERIES}}}", "values": "0.9x50"},
        {"series": f"model_input_out_of_range_ratio{{{SERIES}}}", "values": "0.5x50"},
        {"series": f"model_drift_window_records{{{SERIES}}}", "values": "150x50"},
        {"series": 'capture_records_dropped_total{reason="store_error"}', "values": "5x50"},
    ]
    alerts = [_alert(name, "50m", []) for name in (
        "ModelInputDrift", "ModelPredictionDrift", "ModelInputsOutsideTraining", "PredictionCaptureDropping")]
    result = promtool("test", "rules", _test_file(tmp_path, series, alerts))
    assert result.returncode == 0, result.stdout + result.stderr
