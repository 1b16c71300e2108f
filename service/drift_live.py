"""Live drift gauges on /metrics: the sampled records of a sliding window against the training profile.

Each worker keeps the last DRIFT_WINDOW records it captured (service/capture.py feeds them, on its
writer thread, from the same sampled records it writes to the store). PSI is not additive, so the
workers cannot each publish a PSI and let /metrics sum or average them. What *is* additive is the
count of window records per profile bin; so:

1. each worker publishes its window's **counts** (records per bin of every feature and of the
   predictions, records outside the training range, records with an unseen category, text tokens)
   as prometheus_client gauges in `livesum` multiprocess mode, at most once a second and only when
   the window changed (never per request). `livesum` sums the live workers' values and forgets a
   worker once gunicorn's child_exit marks it dead;
2. whichever worker renders /metrics reads the summed counts, computes PSI and the shares from them
   with model/drift.py (the functions `python -m model monitor` uses, so a number means the same in
   both) against the profile of the version it serves, and replaces the internal count families
   with the gauges below. The service-wide window is thus the union of the workers' windows (up to
   WEB_CONCURRENCY x DRIFT_WINDOW records).

Gauges (labels `name`, `version`; only for the version the rendering worker serves, once the window
holds records; a version mid-reload appears once the new workers serve it):

- model_drift_psi{feature}: PSI of each input feature (a text model: "text", its character length);
- model_prediction_psi: PSI of the predicted classes (a regressor: its values' bins);
- model_input_out_of_range_ratio: share of window records with a number outside the training range;
- model_input_unseen_ratio: share of window records with a category value never seen in training;
- model_drift_window_records: records in the service-wide window;
- model_text_token_coverage, model_text_token_coverage_training: text models' token coverage now
  and in training (an alert compares the two).
"""

from __future__ import annotations

import collections
import time

import numpy as np
from prometheus_client.core import GaugeMetricFamily

from model import drift
from model.profile import tokens
from service.metrics import BINS_FAMILY, TOTALS_FAMILY

PREDICTIONS = "__predictions__"  # the predictions' bins, beside the features' (no column has this name)
TOTALS = ("records", "out_of_range", "unseen", "tokens", "known_tokens")
PUBLISH_SECONDS = 1.0
CHUNK_ROWS = 128  # rows converted to floats between two yields of the GIL
YIELD_SECONDS = 0.0002


def _yield() -> None:
    """Let a request waiting for the GIL run (a sleep(0) would hand it back to this thread); the
    writer process, which shares no GIL with requests, sets YIELD_SECONDS to 0: no sleep at all."""
    if YIELD_SECONDS:
        time.sleep(YIELD_SECONDS)


def window_counts(profile: dict, inputs: list, predictions: list,
                  order: list[str] | None = None) -> tuple[dict, dict]:
    """({feature or PREDICTIONS: counts per profile bin}, {total: count}) of a window's records.

    `inputs` are normalised as captured (a table row: an object by column name; text: a string),
    or, when `order` names the columns, rows of numbers as lists in that order (a matrix model's
    rows as they were sent: they become one float array in C, not 64 lookups per row).
    """
    bins: dict[str, list[int]] = {}
    n = len(inputs)
    unseen = np.zeros(n, dtype=bool)
    totals = dict.fromkeys(TOTALS, 0)
    totals["records"] = n
    if "text" in profile:
        texts = ["" if t is None else str(t) for t in inputs]
        counts, _, _ = drift.number_bins(profile["text"]["length"], [len(t) for t in texts])
        bins["text"] = counts.tolist()
        known = set(profile["text"].get("tokens") or [])
        for text in texts:
            found = tokens(text)
            totals["tokens"] += len(found)
            totals["known_tokens"] += sum(1 for t in found if t in known)
    features = profile.get("features") or {}
    numbers = [name for name, entry in features.items() if entry["kind"] == "number"]
    if numbers:
        matrix = _number_matrix(inputs, numbers, order)
        outside = np.zeros(n, dtype=bool)
        for j, name in enumerate(numbers):
            counts, out = _number_counts(features[name], matrix[:, j])
            bins[name] = counts
            outside |= out
        totals["out_of_range"] = int(outside.sum())
    for name, entry in features.items():
        kind = entry["kind"]
        if kind == "number":
            continue
        _yield()  # on the capture writer thread: a waiting request runs between features
        values = [row.get(name) if isinstance(row, dict) else None for row in inputs]
        if kind == "text":
            lengths = [len("" if v is None else str(v)) for v in values]
            counts, _, _ = drift.number_bins(entry["length"], lengths)
        else:
            _, counts, _, _ = drift.category_bins(entry, values)
            shares = entry.get("shares") or {}
            if kind != "boolean" and not entry.get("other"):
                # Every training value is listed: anything else was never seen (drift.category_bins' rule).
                unseen |= np.asarray([v is not None and str(v) not in shares for v in values], dtype=bool)
        bins[name] = np.asarray(counts).tolist()
    expected = profile.get("predictions") or {}
    if "classes" in expected:
        tally = collections.Counter(str(p.get("label")) for p in predictions if isinstance(p, dict))
        counts = [tally[c] for c in expected["classes"]]
        bins[PREDICTIONS] = [*counts, sum(tally.values()) - sum(counts)]
    elif expected.get("edges"):
        values = [p.get("value") if isinstance(p, dict) else None for p in predictions]
        bins[PREDICTIONS] = drift.number_bins(expected, values)[0].tolist()
    totals["unseen"] = int(unseen.sum())
    return bins, totals


def _number_matrix(inputs: list, names: list[str], order: list[str] | None) -> np.ndarray:
    """The number features' values, one column each (NaN: missing or not a number)."""
    if order is not None and inputs:
        try:
            # In chunks: one conversion of a whole window holds the GIL for milliseconds.
            chunks = []
            for start in range(0, len(inputs), CHUNK_ROWS):
                chunks.append(np.asarray(inputs[start:start + CHUNK_ROWS], dtype=np.float64))
                _yield()
            full = np.concatenate(chunks)
        except (TypeError, ValueError):
            full = None
        if full is not None and full.ndim == 2 and full.shape[1] == len(order):
            position = {name: j for j, name in enumerate(order)}
            return full[:, [position[name] for name in names]]
        inputs = [dict(zip(order, row, strict=False)) if isinstance(row, list) else row for row in inputs]
    rows = [[_number(row.get(name)) for name in names] if isinstance(row, dict) else [np.nan] * len(names)
            for row in inputs]
    return np.asarray(rows, dtype=np.float64).reshape(len(inputs), len(names))


def _number_counts(entry: dict, values: np.ndarray) -> tuple[list[int], np.ndarray]:
    """drift.number_bins' counts over a float column (NaN: missing), and which values are outside
    the training range; tests/test_drift_live.py checks both against model/drift.py."""
    edges = entry.get("edges") or []
    present = values[~np.isnan(values)]
    if len(edges) < 2:
        return [], np.zeros(len(values), dtype=bool)
    index = np.searchsorted(np.asarray(edges[1:-1], dtype=np.float64), present, side="right")
    counts = np.bincount(index, minlength=len(edges) - 1).tolist()
    lo, hi = entry.get("min", edges[0]), entry.get("max", edges[-1])
    with np.errstate(invalid="ignore"):
        return counts, (values < lo) | (values > hi)


def _number(value) -> float:
    return float(value) if type(value) in (int, float) else np.nan


def expected_shares(profile: dict, feature: str) -> list[float] | None:
    """The training shares of a feature's bins (or the predictions'), in window_counts' order."""
    if feature == PREDICTIONS:
        entry = profile.get("predictions") or {}
        if "classes" in entry:
            return [*entry["classes"].values(), 0.0]
        return list(entry.get("shares") or []) or None
    if feature == "text" and "text" in profile:
        return list(profile["text"]["length"].get("shares") or [])
    entry = (profile.get("features") or {}).get(feature)
    if entry is None:
        return None
    if entry["kind"] == "number":
        return list(entry.get("shares") or [])
    if entry["kind"] == "text":
        return list(entry["length"].get("shares") or [])
    return drift.category_expected(entry)


class LiveWindow:
    """One worker's window of captured records, published as count gauges (see the module docstring).

    Used from the capture writer thread only.
    """

    def __init__(self, size: int, metrics, clock=time.monotonic):
        self.size = size
        self._bins = metrics.drift_bins
        self._totals = metrics.drift_totals
        self._clock = clock
        self._key: tuple[str, str] | None = None
        self._profile: dict | None = None
        self._order: list[str] | None = None
        self._inputs: collections.deque = collections.deque(maxlen=size)
        self._predictions: collections.deque = collections.deque(maxlen=size)
        self._changed = False
        self._published_at = float("-inf")
        self._published: dict[tuple, float] = {}  # (gauge, labels) -> the value last set

    def add(self, info: dict, profile: dict | None, inputs: list, predictions: list,
            order: list[str] | None = None) -> None:
        """Add one request's records: its model's info and profile, the inputs (normalised as
        captured; for a model of numbers only, `order` names its columns and rows may be the lists
        as sent, which window_counts turns into an array in one go) and the predictions."""
        key = (info["name"], info["version"])
        if key != self._key:
            # A new version (the worker switched from its cached last good one): a new window.
            self._key, self._profile, self._order = key, profile, order
            self._inputs.clear()
            self._predictions.clear()
            self._changed = True  # the previous version's series must be zeroed
        if not profile:
            return
        if order is not None:
            inputs = [row if type(row) is list else [row.get(name) for name in order] for row in inputs]
        self._inputs.extend(inputs)
        self._predictions.extend(predictions)
        self._changed = True

    def maybe_publish(self, force: bool = False) -> bool:
        """Publish the window's counts if it changed and the last publication is a second old."""
        now = self._clock()
        if not self._changed or (not force and now - self._published_at < PUBLISH_SECONDS):
            return False
        self._published_at, self._changed = now, False
        name, version = self._key
        bins, totals = {}, {}
        if self._profile:  # a version published without a profile has no gauges
            bins, totals = window_counts(self._profile, list(self._inputs), list(self._predictions),
                                         self._order)
        values = {}
        for feature, counts in bins.items():
            for i, count in enumerate(counts):
                values[(self._bins, (name, version, feature, str(i)))] = count
        for total, count in totals.items():
            values[(self._totals, (name, version, total))] = count
        # Another version's series stay in this worker's file: zero them so they add nothing.
        for key in self._published.keys() - values.keys():
            values[key] = 0
        for n, ((gauge, labels), count) in enumerate(values.items()):
            # Only what changed: each set is a write to the worker's metrics file.
            if self._published.get((gauge, labels)) != count:
                gauge.labels(*labels).set(count)
            if n % 64 == 63:
                _yield()
        # The zeroed series of other versions need no further writes.
        self._published = {key: count for key, count in values.items() if key[1][:2] == (name, version)}
        return True


def derived_families(internal: list, served: dict | None) -> list:
    """The drift gauges computed from the summed internal count families (`internal`, as collected),
    for the version `served` ({"info", "profile"}) only; [] when there is nothing to show."""
    if not served or not served.get("profile"):
        return []
    name, version = served["info"]["name"], served["info"]["version"]
    profile = served["profile"]
    counts: dict[str, dict[int, float]] = collections.defaultdict(dict)
    totals: dict[str, float] = {}
    for family in internal:
        for sample in family.samples:
            labels = sample.labels
            if labels.get("name") != name or labels.get("version") != version:
                continue
            if family.name == BINS_FAMILY:
                bins = counts[labels["feature"]]
                bins[int(labels["bin"])] = bins.get(int(labels["bin"]), 0.0) + sample.value
            elif family.name == TOTALS_FAMILY:
                totals[labels["total"]] = totals.get(labels["total"], 0.0) + sample.value
    records = totals.get("records", 0.0)
    if records <= 0:
        return []
    keys = ["name", "version"]
    psi = GaugeMetricFamily("model_drift_psi", "PSI of each input feature over the live window "
                            "against the training profile (0.25 and above: a significant shift)",
                            labels=[*keys, "feature"])
    result = [psi]
    for feature, bins in counts.items():
        expected = expected_shares(profile, feature)
        if not expected:
            continue
        observed = [bins.get(i, 0.0) for i in range(len(expected))]
        value = drift.psi(expected, observed)
        if feature == PREDICTIONS:
            family = GaugeMetricFamily("model_prediction_psi", "PSI of the predictions over the live "
                                       "window against the held-out predictions", labels=keys)
            family.add_metric([name, version], value)
            result.append(family)
        else:
            psi.add_metric([name, version, feature], value)

    def gauge(metric: str, text: str, value: float) -> None:
        family = GaugeMetricFamily(metric, text, labels=keys)
        family.add_metric([name, version], value)
        result.append(family)

    gauge("model_drift_window_records", "Records in the live drift window (all workers)", records)
    if "features" in profile:
        gauge("model_input_out_of_range_ratio", "Share of window records with a number outside the "
              "training range", totals.get("out_of_range", 0.0) / records)
        gauge("model_input_unseen_ratio", "Share of window records with a category value never seen "
              "in training", totals.get("unseen", 0.0) / records)
    if "text" in profile:
        seen = totals.get("tokens", 0.0)
        gauge("model_text_token_coverage", "Share of the window's tokens among the training profile's "
              "frequent tokens", totals.get("known_tokens", 0.0) / seen if seen else 0.0)
        gauge("model_text_token_coverage_training", "The same share over the training text",
              float(profile["text"].get("coverage") or 0.0))
    return result
