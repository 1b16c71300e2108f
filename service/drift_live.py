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


def window_counts(profile: dict, inputs: list, predictions: list) -> tuple[dict, dict]:
    """({feature or PREDICTIONS: counts per profile bin}, {total: count}) of a window's records.

    `inputs` are normalised as captured (a table row: an object by column name; text: a string).
    """
    bins: dict[str, list[int]] = {}
    n = len(inputs)
    outside = np.zeros(n, dtype=bool)
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
    for name, entry in (profile.get("features") or {}).items():
        # On the capture writer thread: let a waiting request have the GIL between features.
        time.sleep(0)
        values = [row.get(name) if isinstance(row, dict) else None for row in inputs]
        kind = entry["kind"]
        if kind == "number":
            counts, _, _ = drift.number_bins(entry, values)
            if len(counts) and "min" in entry:
                array = np.asarray([np.nan if not _is_number(v) else v for v in values], dtype=np.float64)
                with np.errstate(invalid="ignore"):
                    outside |= (array < entry["min"]) | (array > entry["max"])
        elif kind == "text":
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
    totals["out_of_range"] = int(outside.sum())
    totals["unseen"] = int(unseen.sum())
    return bins, totals


def _is_number(value) -> bool:
    return type(value) in (int, float)


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
        self._inputs: collections.deque = collections.deque(maxlen=size)
        self._predictions: collections.deque = collections.deque(maxlen=size)
        self._changed = False
        self._published_at = float("-inf")
        self._published: set[tuple] = set()

    def add(self, info: dict, profile: dict | None, inputs: list, predictions: list) -> None:
        """Add one request's records (its model's info and profile, normalised inputs, predictions)."""
        key = (info["name"], info["version"])
        if key != self._key:
            # A new version (the worker switched from its cached last good one): a new window.
            self._key, self._profile = key, profile
            self._inputs.clear()
            self._predictions.clear()
            self._changed = True  # the previous version's series must be zeroed
        if not profile:
            return
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
        now_published = set()
        bins, totals = {}, {}
        if self._profile:  # a version published without a profile has no gauges
            bins, totals = window_counts(self._profile, list(self._inputs), list(self._predictions))
        for feature, counts in bins.items():
            for i, count in enumerate(counts):
                labels = (name, version, feature, str(i))
                self._bins.labels(*labels).set(count)
                now_published.add((self._bins, labels))
        for total, count in totals.items():
            labels = (name, version, total)
            self._totals.labels(*labels).set(count)
            now_published.add((self._totals, labels))
        # Another version's series stay in this worker's file: zero them so they add nothing.
        for gauge, labels in self._published - now_published:
            gauge.labels(*labels).set(0)
        self._published = now_published
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
