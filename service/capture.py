"""Capture: a sample of the requests and their predictions, written to the store off the request path.

The request path (`Capture.offer`, called by both prediction routes for answered requests only) does
a random draw against CAPTURE_RATE and a check of the per-minute cap (CAPTURE_MAX_PER_MINUTE
records). Under gunicorn it then sends the request id, time, model, instances and predictions to
the worker's writer process (service/capture_process.py; one non-blocking send, a full socket drops
and counts). In one process (tests, `flask run`) it checks the records held (CAPTURE_QUEUE) and
appends *references* to a deque that a writer thread drains. Either way no store call is made on
the request path, so a slow or unreachable store never slows or fails a prediction.

The writer (the child process's loop, or the thread; never in the master, never at import) drains
the deque a few times a second: it builds each record in the format of
model/capture_files.py (a table row as an object by column name, text as the string, the
prediction exactly as answered), applies CAPTURE_EXCLUDE and CAPTURE_HASH, feeds the live drift
window (service/drift_live.py) and keeps the serialised lines per (model, version, hour). It writes
one whole file per (version, hour) with capture_key() when the oldest held record has waited
CAPTURE_FLUSH_SECONDS, when it holds FLUSH_RECORDS records (or half of CAPTURE_QUEUE, if smaller),
and at worker exit within EXIT_SECONDS (gunicorn's worker_exit hook).

Bounds: records queued plus records built but not written never exceed CAPTURE_QUEUE; beyond it new
records are dropped (reason queue_full). When the store fails the write is retried with capped
exponential backoff; while it fails, the writer keeps only the newest half of CAPTURE_QUEUE and
drops older records (store_error), so the newest records keep arriving (and feeding the live gauges)
and capture resumes with them when the store returns. Every drop is counted by reason in
capture_records_dropped_total; failed writes in capture_write_errors_total.

The held count is `offered - taken`: `offered` is only ever written by the request thread and
`taken` only by the writer thread, so neither needs a lock (the service's worker classes serve
requests on one thread: buffered, sync, and gevent's cooperative greenlets).
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import random
import socket
import sys
import threading
import time
from datetime import UTC, datetime

import orjson

from model.capture_files import HASH_PREFIX, capture_key, format_time

log = logging.getLogger("service.capture")

FLUSH_RECORDS = 5000  # a file is written when a worker holds this many records
TICK_SECONDS = 0.2  # how often the writer drains the deque
EXIT_SECONDS = 5.0  # the most a worker's exit waits for its last write
BACKOFF_MAX = 30.0
YIELD_EVERY = 16  # requests drained between two yields of the GIL to the request thread
YIELD_SECONDS = 0.0002
GIL_SWITCH_SECONDS = 0.001
TOP_FIELDS = ("input", "prediction", "request_id")
REASONS = ("minute_cap", "queue_full", "store_error", "shutdown", "writer_down")


def s3_client():
    """An S3 client for capture writes: short timeouts and few retries, so a dead endpoint fails a
    write in seconds (the writer retries on its own schedule) and a worker's exit stays bounded."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(connect_timeout=2, read_timeout=5,
                                            retries={"max_attempts": 2, "mode": "standard"}))


def open_capture_backend(uri: str):
    """The backend captured files are written to (local folder or S3, model/backends.py)."""
    from model.backends import open_backend

    return open_backend(uri, s3_client=s3_client() if uri.startswith("s3://") else None)


def hashed(value) -> str:
    """"sha256:<hex>" of a value's canonical JSON (sorted keys, no spaces)."""
    return HASH_PREFIX + hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


class Privacy:
    """CAPTURE_EXCLUDE and CAPTURE_HASH applied to a record (top-level fields, or input columns)."""

    def __init__(self, exclude, hash_):
        self.exclude, self.hash = frozenset(exclude), frozenset(hash_)
        self.columns_excluded = self.exclude - set(TOP_FIELDS)
        self.columns_hashed = self.hash - set(TOP_FIELDS)
        self.active = bool(self.exclude or self.hash)

    def apply(self, record: dict) -> dict:
        """The record as it may be stored (modified in place and returned)."""
        for field in TOP_FIELDS:
            if field in self.exclude:
                record.pop(field, None)
            elif field in self.hash and field in record:
                record[field] = hashed(record[field])
        row = record.get("input")
        if isinstance(row, dict) and (self.columns_excluded or self.columns_hashed):
            record["input"] = {key: (hashed(value) if key in self.columns_hashed else value)
                               for key, value in row.items() if key not in self.columns_excluded}
        return record


def normalise(model, instance):
    """An instance as captured: text as the string; a table row as an object by column name."""
    if model.kind == "text" or isinstance(instance, dict):
        return instance
    return dict(zip(model.table.features, instance, strict=False))


class Capture:
    """One worker's capture: `offer` on the request path, a writer (process or thread) for the rest."""

    def __init__(self, settings, metrics, *, backend=None, random_draw=random.random, clock=time.time,
                 monotonic=time.monotonic):
        self.rate = settings.capture_rate
        self.enabled = self.rate > 0
        self.cap = settings.capture_max_per_minute
        self.limit = settings.capture_queue
        self.flush_seconds = settings.capture_flush_seconds
        self.flush_records = max(1, min(FLUSH_RECORDS, self.limit // 2))
        self.privacy = Privacy(settings.capture_exclude, settings.capture_hash)
        self.uri = settings.capture_uri
        self.metrics = metrics
        # Under gunicorn (metrics in files, so a child process's counters add up) the writer is a
        # child process of the worker (service/capture_process.py); elsewhere a thread.
        self.settings = settings
        self.child = None
        self.yields = True  # a writer thread lets waiting requests run; a child process need not
        self._backend = backend
        self._draw = random_draw
        self._clock = clock
        self._monotonic = monotonic
        self._queue: collections.deque = collections.deque()
        self._offered = 0  # records accepted by offer (written by the request thread only)
        self._taken = 0  # records written or dropped by the writer (written by the writer thread only)
        self._minute = -1
        self._minute_used = 0
        self._drops = {reason: metrics.capture_dropped.labels(reason) for reason in REASONS}
        self.live = None
        if self.enabled and settings.drift_window > 0:
            from service.drift_live import LiveWindow

            self.live = LiveWindow(settings.drift_window, metrics)
        # Writer state (writer thread only).
        self._pending: dict[tuple, list[bytes]] = {}
        self._pending_records = 0
        self._oldest = 0.0  # monotonic time the oldest pending record was built
        self._next_try = 0.0
        self._backoff = 0.0
        self._seq = 0
        self._second = -1
        self._second_text = ""
        self._hour: datetime | None = None
        self._writer = f"{socket.gethostname()}-{os.getpid()}"
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stop = threading.Event()
        self._closed = False
        self._shown_pending = -1

    @property
    def held(self) -> int:
        """Records queued or built but not yet written (never above CAPTURE_QUEUE)."""
        return self._offered - self._taken

    # -- the request path -------------------------------------------------------------------
    def offer(self, model, instances: list, predictions: list, request_id: str) -> None:
        """Maybe capture one answered request (all its instances, or none). Never raises."""
        try:
            if self.rate < 1 and self._draw() >= self.rate:
                return
            now = self._clock()
            n = len(predictions)
            minute = int(now // 60)
            if minute != self._minute:
                self._minute, self._minute_used = minute, 0
            if self._minute_used + n > self.cap:
                self._drops["minute_cap"].inc(n)
                return
            child = self.child
            if child is not None:
                self._minute_used += n
                if not child.send(now, request_id, model.info, instances, predictions):
                    self._drops[child.refusal].inc(n)
                return
            if self._offered + n - self._taken > self.limit:
                self._drops["queue_full"].inc(n)
                return
            self._minute_used += n
            self._offered += n
            self._queue.append((now, request_id, model, instances, predictions, 0))
        except Exception:  # capture must never cost a prediction
            log.exception("capture offer failed")

    # -- the writer thread ------------------------------------------------------------------
    def enqueue(self, when: float, request_id: str, model, instances: list, predictions: list,
                first: int) -> None:
        """Queue records for the writer (the child process's reader), bounded by CAPTURE_QUEUE;
        `first` is the index of the first instance in its request."""
        n = len(predictions)
        if self._offered + n - self._taken > self.limit:
            self._drops["queue_full"].inc(n)
            return
        self._offered += n
        self._queue.append((when, request_id, model, instances, predictions, first))

    def start(self, predictor=None) -> None:
        """Start this process's writer (once per process; a no-op when capture is off): a child
        process when metrics are multiprocess (gunicorn), else a thread. `predictor`, the model
        the worker serves now, spares the child a manifest read."""
        if not self.enabled or (self._thread is not None and self._pid == os.getpid()):
            return
        if self.settings.prometheus_multiproc_dir:
            from service.capture_process import ChildWriter

            if self.child is None or self.child.owner != os.getpid():
                self.child = ChildWriter(self, predictor)
                self.child.start()
            return
        self._pid = os.getpid()
        self._writer = f"{socket.gethostname()}-{self._pid}"
        # With a second busy thread in the worker, a request waiting for the GIL waits at most this
        # long (Python's default, 5 ms, showed in the p99 latency).
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_SECONDS))
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        self._thread.start()
        log.info("capture started", extra={"rate": self.rate, "store": self.uri,
                                           "drift_window": self.live.size if self.live else 0})

    def stop(self, timeout: float = EXIT_SECONDS) -> None:
        """Write what is held (one attempt, at most `timeout` seconds) and stop the writer; what
        could not be written is counted as dropped (shutdown)."""
        if self.child is not None:
            self.child.stop(timeout)
            return
        thread = self._thread
        if thread is None or self._pid != os.getpid():
            return
        self._stop.set()
        thread.join(timeout)
        if thread.is_alive():
            # Still blocked in a write: the process is exiting, so what it holds is lost.
            self._closed = True
            lost = self.held
            if lost > 0:
                self._drops["shutdown"].inc(lost)
            log.warning("capture writer did not finish in time", extra={"dropped": lost})
        self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            try:
                self.tick()
            except Exception:  # a bug here must not end capture for the worker's lifetime
                log.exception("capture writer error")
        try:
            self.tick(final=True)
        except Exception:
            log.exception("capture writer error at exit")

    def tick(self, final: bool = False) -> None:
        """One round of the writer: drain the queue, write if due, publish gauges."""
        if self._closed:
            return  # stop() gave up waiting: the process is exiting, what was held is counted
        now = self._monotonic()
        self._drain(now)
        if self._pending_records and (final or now >= self._next_try) and (
                final or self._backoff or self._pending_records >= self.flush_records
                or now - self._oldest >= self.flush_seconds):
            self._flush(now)
        if final and self._pending_records and not self._closed:
            self._drop_pending(self._pending_records, "shutdown")
        if self.live is not None:
            self.live.maybe_publish(force=final)
        if self.held != self._shown_pending:
            self._shown_pending = self.held
            self.metrics.capture_pending.set(self._shown_pending)

    def _drain(self, now: float) -> None:
        queue, privacy = self._queue, self.privacy
        drained = 0
        while queue:
            drained += 1
            if self.yields and drained % YIELD_EVERY == 0:
                # Let a request waiting for the GIL run now, not after the 5 ms switch interval (a
                # sleep(0) hands the GIL back to this thread before the waiting one wakes).
                time.sleep(YIELD_SECONDS)
            when, request_id, model, instances, predictions, first = queue.popleft()
            info = model.info
            inputs = [normalise(model, instance) for instance in instances]
            if self.live is not None:
                table = model.table
                if table is not None and table.matrix:
                    # A model of numbers: rows as sent (lists in feature order, or objects).
                    self.live.add(info, model.manifest.get("profile"), instances, predictions, table.features)
                else:
                    self.live.add(info, model.manifest.get("profile"), inputs, predictions)
            text, hour = self._time(when)
            lines = self._pending.setdefault((info["name"], info["version"], hour), [])
            if not self._pending_records:
                self._oldest = now
            for index, (row, prediction) in enumerate(zip(inputs, predictions, strict=False)):
                record = {"time": text, "request_id": request_id, "model": info["name"],
                          "version": info["version"], "index": first + index, "input": row,
                          "prediction": prediction}
                if privacy.active:
                    record = privacy.apply(record)
                lines.append(orjson.dumps(record))
            # A request's instances beyond its predictions (none in practice) are not records.
            self._taken += len(predictions) - min(len(predictions), len(inputs))
            self._pending_records += min(len(predictions), len(inputs))

    def _time(self, when: float) -> tuple[str, datetime]:
        """A record's `time` text (format_time's) and its hour, from a Unix time; the second's text
        and the hour are computed once per second (strftime cost more than the rest of a record)."""
        second = int(when)
        if second != self._second:
            stamp = datetime.fromtimestamp(second, UTC)
            self._second = second
            self._second_text = format_time(stamp)[:-8]  # without ".ffffffZ"
            self._hour = stamp.replace(minute=0, second=0, microsecond=0)
        micro = min(int((when - second) * 1_000_000), 999_999)
        return f"{self._second_text}.{micro:06d}Z", self._hour

    def _flush(self, now: float) -> None:
        if self._backend is None:
            try:
                self._backend = open_capture_backend(self.uri)
            except Exception as exc:
                self._failed(now, exc)
                return
        written = datetime.now(UTC)
        for group in list(self._pending):
            name, version, hour = group
            lines = self._pending[group]
            self._seq += 1
            key = capture_key(name, version, hour, written, self._writer, self._seq)
            try:
                self._backend.write(key, b"\n".join(lines) + b"\n")
            except Exception as exc:
                self._failed(now, exc)
                return
            if self._closed:
                return  # stop() gave up on this write and counted what was held as dropped
            del self._pending[group]
            self._pending_records -= len(lines)
            self._taken += len(lines)
            self.metrics.capture_written.inc(len(lines))
            self.metrics.capture_files.inc()
        if self._backoff:
            log.info("capture store answers again; writing resumed", extra={"store": self.uri})
        self._backoff = 0.0
        self._next_try = 0.0

    def _failed(self, now: float, exc: Exception) -> None:
        if self._closed:
            return  # stop() gave up on this write and counted what was held as dropped
        self.metrics.capture_errors.inc()
        if not self._backoff:
            log.warning("capture write failed; retrying with backoff",
                        extra={"store": self.uri, "error": str(exc)})
        self._backoff = min(max(self._backoff * 2, 1.0), min(BACKOFF_MAX, max(1.0, self.flush_seconds)))
        self._next_try = now + self._backoff
        # Keep the newest half of CAPTURE_QUEUE: new records keep coming in while the store is away.
        excess = self._pending_records - self.limit // 2
        if excess > 0:
            self._drop_pending(excess, "store_error")

    def _drop_pending(self, count: int, reason: str) -> None:
        """Drop the `count` oldest pending records, counted under `reason`."""
        left = count
        for group in list(self._pending):
            if left <= 0:
                break
            lines = self._pending[group]
            cut = min(left, len(lines))
            del lines[:cut]
            if not lines:
                del self._pending[group]
            left -= cut
        dropped = count - left
        self._pending_records -= dropped
        self._taken += dropped
        self._drops[reason].inc(dropped)
