"""Where captured predictions live in the store, and how one captured record looks.

The service (service/capture.py) writes them; `python -m model monitor` reads them. Layout, under
the store (local folder or S3 prefix), partitioned by model, version and hour (Hive-style names, so
Athena or Spark can read them as a table partitioned by `version`, `date` and `hour`)::

    <store>/<name>/capture/version=<version>/date=<YYYY-MM-DD>/hour=<HH>/<file>.jsonl

`<file>` is `<YYYYmmddTHHMMSSZ>-<writer>-<seq>`: when the file was written, which worker wrote it
(host and process id) and a counter, so writers never collide and every object is written whole,
once (files are never appended to). Times are UTC. A record's hour is the hour it was answered in.

A record, one JSON object per line and per instance (a batch of 32 instances makes 32 lines)::

    {"time": "2026-12-02T17:05:03.123456Z", "request_id": "9f1c...", "model": "digits",
     "version": "20261202T101500Z-3f9a1c2b", "index": 0,
     "input": {"pixel_0_0": 0.0, ...},      # a table: an object by column name; text: the string
     "prediction": {"label": "3", "probabilities": {...}}}     # exactly what /predict answered

A field named in CAPTURE_EXCLUDE is absent (a column of `input`, or `input`, `prediction`,
`request_id` as a whole); one named in CAPTURE_HASH holds "sha256:<hex>" instead of its value.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

CAPTURE_DIR = "capture"
HASH_PREFIX = "sha256:"
_KEY_RE = re.compile(
    r"^(?P<name>[^/]+)/capture/version=(?P<version>[^/]+)/date=(?P<date>\d{4}-\d{2}-\d{2})/"
    r"hour=(?P<hour>\d{2})/(?P<file>[^/]+\.jsonl)$"
)
_WRITER_RE = re.compile(r"[^A-Za-z0-9._-]+")


def version_prefix(name: str, version: str | None = None) -> str:
    """The key prefix of a model's captured records (of one version, when given)."""
    base = f"{name}/{CAPTURE_DIR}/"
    return base if version is None else f"{base}version={version}/"


def hour_prefix(name: str, version: str, hour: datetime) -> str:
    """The key prefix of one hour's records of a version."""
    hour = hour.astimezone(UTC)
    return f"{version_prefix(name, version)}date={hour:%Y-%m-%d}/hour={hour:%H}/"


def capture_key(name: str, version: str, hour: datetime, written: datetime, writer: str, seq: int) -> str:
    """The key of one captured file: records of `hour`, written at `written` by `writer`."""
    writer = _WRITER_RE.sub("-", writer).strip("-") or "writer"
    stamp = f"{written.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    return f"{hour_prefix(name, version, hour)}{stamp}-{writer}-{seq:06d}.jsonl"


def parse_key(key: str) -> dict | None:
    """{name, version, hour (an aware datetime), file} of a captured file's key, or None if `key`
    is not one."""
    match = _KEY_RE.match(key)
    if not match:
        return None
    hour = datetime.strptime(f"{match['date']} {match['hour']}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    return {"name": match["name"], "version": match["version"], "hour": hour, "file": match["file"]}


def in_window(hour: datetime, since: datetime, until: datetime | None = None) -> bool:
    """True if any of an hour partition's records may fall in [since, until)."""
    return hour + timedelta(hours=1) > since and (until is None or hour < until)


def record_time(text: str) -> datetime:
    """A record's `time` as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def format_time(when: datetime) -> str:
    """A record's `time` field: UTC, microseconds, a Z."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
