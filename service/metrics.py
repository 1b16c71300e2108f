"""Prometheus metrics, correct across gunicorn workers (prometheus_client multiprocess mode).

In multiprocess mode every worker writes its samples to files in PROMETHEUS_MULTIPROC_DIR and a
scrape aggregates all of them, so counts sum over workers whichever worker answers /metrics.
Without that variable (Flask test client, one process) the app's own registry is used.
"""

from __future__ import annotations

import os
from collections import Counter as Tally

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# The live drift window's internal count families (service/drift_live.py); named here so that
# building the metrics does not import the drift statistics (numpy, scipy) when drift is off.
BINS_FAMILY = "model_drift_window_bin_records"
TOTALS_FAMILY = "model_drift_window_totals"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The service's metrics; one instance per app."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, multiproc_dir: str | None):
        self.multiproc_dir = multiproc_dir
        if multiproc_dir:
            os.makedirs(multiproc_dir, exist_ok=True)
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by endpoint, method and status",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Request latency in seconds by endpoint and status",
            ["endpoint", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "predictions_total", "Predicted instances by predicted class (regressors: label \"value\")",
            ["label"], registry=r
        )
        self.errors = Counter("errors_total", "Error responses by error code", ["code"], registry=r)
        # An info-style gauge (Info is not supported in multiprocess mode); livemax drops workers
        # that exited, so after a reload only the versions being served remain.
        self.model_info = Gauge(
            "model_info",
            "The model loaded by the serving workers (value 1)",
            ["name", "version"],
            multiprocess_mode="livemax",
            registry=r,
        )
        # Which code predicts for each served version (onnx, numpy or sklearn): at most three series
        # per version, and livemax drops the workers that exited.
        self.serving_path = Gauge(
            "model_serving_path",
            "How the serving workers predict: onnx (onnxruntime), numpy or sklearn (value 1)",
            ["name", "version", "path"],
            multiprocess_mode="livemax",
            registry=r,
        )

        # Capture (service/capture.py): what was written, what was dropped and why, store failures.
        self.capture_written = Counter(
            "capture_records_written_total", "Captured records written to the capture store", registry=r)
        self.capture_files = Counter(
            "capture_files_written_total", "Captured files (JSON lines) written to the capture store",
            registry=r)
        self.capture_dropped = Counter(
            "capture_records_dropped_total",
            "Sampled records not captured, by reason: minute_cap (CAPTURE_MAX_PER_MINUTE reached), "
            "queue_full (the writer cannot take more), store_error (the store kept failing), shutdown, "
            "writer_down (the writer process had died)",
            ["reason"], registry=r)
        self.capture_errors = Counter(
            "capture_write_errors_total", "Failed writes of a captured file (retried with backoff)",
            registry=r)
        self.capture_pending = Gauge(
            "capture_records_pending", "Captured records held by the workers, not written yet",
            multiprocess_mode="livesum", registry=r)
        # Live drift (service/drift_live.py): each worker's window counts, summed over live workers;
        # /metrics replaces them with the PSI and share gauges computed from the sums.
        self.drift_bins = Gauge(BINS_FAMILY, "Live drift window: records per profile bin (internal)",
                                ["name", "version", "feature", "bin"], multiprocess_mode="livesum",
                                registry=r)
        self.drift_totals = Gauge(TOTALS_FAMILY, "Live drift window: totals (internal)",
                                  ["name", "version", "total"], multiprocess_mode="livesum", registry=r)

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        code = str(status)
        self.requests.labels(endpoint, method, code).inc()
        self.latency.labels(endpoint, code).observe(seconds)

    def count_predictions(self, labels: list) -> None:
        """Count predicted instances by class (one increment per distinct class).

        Labels are a model's classes, a bounded set; a regressor's instances all come as the one
        label "value" (service.outputs.VALUE_LABEL), never one label per predicted number.
        """
        if len(labels) == 1:
            self.predictions.labels(str(labels[0])).inc()
            return
        for label, n in Tally(labels).items():
            self.predictions.labels(str(label)).inc(n)

    def model_loaded(self, info: dict, path: str | None = None) -> None:
        """Record which model this worker serves, and through which path."""
        self.model_info.labels(info["name"], info["version"]).set(1)
        if path is not None:
            self.serving_path.labels(info["name"], info["version"], path).set(1)

    def render(self, served: dict | None = None, drift: bool = False) -> bytes:
        """The exposition text of all workers' metrics; with `drift`, the live drift gauges of the
        version `served` ({"info", "profile"}) computed from the workers' summed window counts."""
        registry = self.registry
        if self.multiproc_dir:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiproc_dir)
        if not drift and self.multiproc_dir:
            # Drift off: no worker writes the internal families, so there is nothing to filter.
            return generate_latest(registry)
        from service.drift_live import derived_families

        families = list(registry.collect())
        internal = [f for f in families if f.name in (BINS_FAMILY, TOTALS_FAMILY)]
        shown = [f for f in families if f.name not in (BINS_FAMILY, TOTALS_FAMILY)]
        return generate_latest(_Families(shown + derived_families(internal, served if drift else None)))


class _Families:
    """What generate_latest needs: an object whose collect() gives the families to expose."""

    def __init__(self, families: list):
        self._families = families

    def collect(self):
        return self._families


def mark_worker_dead(pid: int, multiproc_dir: str) -> None:
    """Drop a dead worker's live gauges (called by the gunicorn master when a worker exits)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, multiproc_dir)
