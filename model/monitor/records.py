"""Reading captured records (model/capture_files.py) of one model version within a time window.

Only the version's partitions are listed (one listing per day of the window, or the whole version's
prefix for a window of more than MAX_DAY_LISTINGS days), hour partitions outside the window are
skipped without being read, and each record's own `time` is then checked against [since, until).

A file or line that cannot be used (not JSON, not an object, no valid time, another version's
record, a file that vanished between listing and reading) is skipped and counted by reason, never
fatal: a monitor must still report on the good records when one writer misbehaved. An unreachable
store is fatal (StoreError, exit 3), since then nothing can be said.

At most MAX_SAMPLE records are kept, a uniform random sample of the window (reservoir sampling with
a fixed seed, so a run is repeatable): PSI over 10 bins needs thousands of records, not millions
(its sampling noise is about 9 / records: 0.0002 at 50,000), and a day of a busy service would not
fit in memory as Python objects. Measured: 100,000 digits records (64 numbers each, 142 MB of
files) took 5 s and 640 MB when all were kept; 50,000 keeps a 64-feature model near 350 MB.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

from model.capture_files import HASH_PREFIX, in_window, parse_key, record_time, version_prefix
from model.errors import NotFoundError, UsageError

MAX_SAMPLE = 50_000
MAX_DAY_LISTINGS = 45
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhd])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_MISSING = object()


@dataclass(frozen=True)
class Window:
    """The time window [since, until) of the records compared (aware UTC datetimes)."""

    since: datetime
    until: datetime

    def to_json(self) -> dict:
        return {"since": _iso(self.since), "until": _iso(self.until)}

    def __str__(self) -> str:
        return f"{_iso(self.since)} to {_iso(self.until)}"


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, option: str) -> datetime:
    """An ISO 8601 time (a time without a zone is UTC) as an aware datetime; UsageError otherwise."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{option} takes 30m, 24h, 7d or an ISO time such as 2026-12-02T08:00:00Z, "
                         f"got {text!r}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def window(since: str | None, until: str | None, now: datetime | None = None) -> Window:
    """The window `--since` (a duration before `--until`, e.g. 30m, 24h, 7d, or an ISO time) and
    `--until` (an ISO time, default now) name."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    end = parse_time(until, "--until") if until else now
    since = since or "24h"
    match = _DURATION.match(since)
    if match:
        amount = float(match[1])
        if amount <= 0:
            raise UsageError(f"--since must be a positive duration, got {since!r}")
        start = end - timedelta(**{_UNITS[match[2]]: amount})
    else:
        start = parse_time(since, "--since")
    if start >= end:
        raise UsageError(f"--since ({_iso(start)}) must be before --until ({_iso(end)})")
    return Window(start, end)


@dataclass
class Captured:
    """What was read: the sampled records' inputs and predictions, and counts for the report."""

    records: int = 0  # records in the window (all of them, sampled or not)
    files: int = 0  # files read
    inputs: list = field(default_factory=list)  # the sample's inputs (absent/hashed ones left out)
    predictions: list = field(default_factory=list)  # the sample's predictions that are objects
    sampled: int = 0  # records in the sample
    skipped: Counter = field(default_factory=Counter)  # reason -> lines (or files) skipped
    first: datetime | None = None
    last: datetime | None = None

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def to_json(self) -> dict:
        return {"records": self.records, "sampled": self.sampled, "files": self.files,
                "skipped": self.skipped_total, "skipped_reasons": dict(sorted(self.skipped.items())),
                "first": _iso(self.first) if self.first else None,
                "last": _iso(self.last) if self.last else None}


def _listing_prefixes(name: str, version: str, span: Window) -> list[str]:
    """One prefix per day of the window (a listing per day costs less than the whole history of a
    long-lived version), or the version's prefix for a long window."""
    base = version_prefix(name, version)
    first, last = span.since.date(), (span.until - timedelta(microseconds=1)).date()
    days = (last - first).days + 1
    if days > MAX_DAY_LISTINGS:
        return [base]
    return [f"{base}date={first + timedelta(days=i):%Y-%m-%d}/" for i in range(days)]


def capture_files(backend, name: str, version: str, span: Window) -> list[str]:
    """The keys of the version's captured files whose hour partition overlaps the window, sorted."""
    keys = []
    for prefix in _listing_prefixes(name, version, span):
        for key in backend.list_keys(prefix):
            parsed = parse_key(key)
            if parsed and parsed["version"] == version and parsed["name"] == name \
                    and in_window(parsed["hour"], span.since, span.until):
                keys.append(key)
    return sorted(keys)


def read_captured(backend, name: str, version: str, span: Window, *, max_sample: int = MAX_SAMPLE,
                  seed: int = 0) -> Captured:
    """Read the version's records within the window from a store backend (model.backends)."""
    found = Captured()
    sample: list[tuple] = []
    rng = random.Random(seed)  # noqa: S311 - a repeatable sample, not a secret
    for key in capture_files(backend, name, version, span):
        try:
            data, _ = backend.read(key)
        except NotFoundError:  # removed (a lifecycle rule, a clean-up) after it was listed
            found.skipped["file vanished before it was read"] += 1
            continue
        found.files += 1
        for line in data.splitlines():
            if not line.strip():
                continue
            record = _record(line, name, version, found.skipped)
            if record is None:
                continue
            when, pair = record
            if not span.since <= when < span.until:
                continue
            found.records += 1
            found.first = when if found.first is None or when < found.first else found.first
            found.last = when if found.last is None or when > found.last else found.last
            # Reservoir sampling (Algorithm R): every record of the window is kept with equal chance.
            if len(sample) < max_sample:
                sample.append(pair)
            else:
                slot = rng.randrange(found.records)
                if slot < max_sample:
                    sample[slot] = pair
    found.sampled = len(sample)
    found.inputs = [item for item, _ in sample if _usable_input(item)]
    found.predictions = [p for _, p in sample if isinstance(p, dict)]
    return found


def _usable_input(value) -> bool:
    # Absent (CAPTURE_EXCLUDE=input) or hashed as a whole (CAPTURE_HASH=input): nothing to compare.
    return value is not _MISSING and not (isinstance(value, str) and value.startswith(HASH_PREFIX))


def _record(line: bytes, name: str, version: str, skipped: Counter) -> tuple[datetime, tuple] | None:
    """(time, (input, prediction)) of one line, or None (the reason counted in `skipped`)."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        skipped["line is not JSON"] += 1
        return None
    if not isinstance(record, dict):
        skipped["line is not a JSON object"] += 1
        return None
    try:
        when = record_time(record["time"])
        if when.tzinfo is None:
            raise ValueError("no time zone")
    except (KeyError, TypeError, ValueError, AttributeError):
        skipped["no valid time"] += 1
        return None
    if record.get("version", version) != version or record.get("model", name) != name:
        skipped["another model's or version's record"] += 1
        return None
    predicted = record.get("prediction", _MISSING)
    if isinstance(predicted, dict):  # only what drift.prediction_drift reads: not the probabilities
        predicted = {key: predicted[key] for key in ("label", "value") if key in predicted}
    return when.astimezone(UTC), (record.get("input", _MISSING), predicted)
