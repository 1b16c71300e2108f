"""The capture writer as a child process of each gunicorn worker.

Why a process: a writer *thread* shares the worker's GIL. Under load its work (records, JSON, the
live window; about 15-20 µs a record) was not the cost that showed: every hand-over of the GIL
between the request thread and the writer waits for the other thread to be scheduled on a busy
core, and at full capture that cost a fifth of the throughput and 50-75 % of p99 (`make
bench-capture`). A process has its own interpreter: the worker only serialises what it answered and
sends it, and the kernel schedules the rest.

- The worker forks the child in post_worker_init, after loading (the model's memory is shared
  copy-on-write and never touched by the child). They share a Unix datagram socket pair: one
  `send` per request (or per MESSAGE_INSTANCES instances of a large batch), non-blocking. When the
  socket's buffer is full (the child is behind) the send fails at once and the records are
  dropped and counted (queue_full); a dead child's are counted as writer_down, and the worker forks
  a new one (at most every RESTART_SECONDS).
- The child runs the same writer as the thread (service/capture.Capture: records, privacy, files,
  retries, the live window), fed by its socket instead of the worker's deque. It knows the model the
  worker served when it forked; another version's manifest it reads from the model store (its input
  schema and profile only: nothing is unpickled).
- Its metrics go to the same multiprocess files under its own pid, so /metrics sums them with the
  workers'; the worker marks it dead when it exits (its live-window gauges then stop counting).
- It ends on SIGTERM (the worker's exit: worker_exit hook) after reading what is queued and writing
  what it holds, or when the worker is gone (its parent changed).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time

import orjson

log = logging.getLogger("service.capture")

MESSAGE_INSTANCES = 64  # instances per message: a large batch is sent in parts (datagrams are bounded)
RECEIVE_BYTES = 4 * 1024 * 1024
SEND_BUFFER_BYTES = 4 * 1024 * 1024
RESTART_SECONDS = 10.0
WAKE_SECONDS = 0.02  # how often the writer reads its socket
# The signals a gunicorn worker handles: the child must not run the worker's handlers.
_WORKER_SIGNALS = ("SIGHUP", "SIGQUIT", "SIGINT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCHLD", "SIGTTIN",
                   "SIGTTOU", "SIGABRT")


class ModelView:
    """What the writer needs of a model (info, manifest, kind, table) without the model itself."""

    def __init__(self, manifest: dict):
        from service.tables import Table

        self.manifest = manifest
        self.info = {"name": manifest["name"], "version": manifest["version"]}
        schema = manifest["input_schema"]
        self.kind = schema["type"]
        # Without an estimator the table knows its columns and their order, which is all a record needs.
        self.table = Table(schema, None) if self.kind == "tabular" else None


class ChildWriter:
    """The worker's side: fork the child, send it what was answered, stop it at exit."""

    def __init__(self, capture, predictor=None):
        self.capture = capture
        self.owner = os.getpid()
        self.pid = 0
        self.refusal = "queue_full"
        self._sock: socket.socket | None = None
        self._seed = predictor
        self._restart_after = 0.0

    def start(self) -> None:
        """Fork the child (in the worker, after it loaded its model)."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        pid = os.fork()
        if pid == 0:  # the child: never returns
            parent.close()
            code = 1
            try:
                code = _child_main(self.capture, child, self.owner, self._seed)
            except BaseException:
                log.exception("capture writer process failed")
            finally:
                os._exit(code)
        child.close()
        parent.setblocking(False)
        # What may wait in the socket for the child (the kernel caps it at net.core.wmem_max; the
        # default 208 KiB holds about 90 digits requests, 4 MiB about 2,500).
        with contextlib.suppress(OSError):
            parent.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        self._sock, self.pid = parent, pid
        log.info("capture started", extra={"rate": self.capture.rate, "store": self.capture.uri,
                                           "writer_pid": pid})

    def send(self, when: float, request_id: str, info: dict, instances: list, predictions: list) -> bool:
        """Hand one answered request to the child; False (and `refusal` says why) if it cannot take
        it now. Never blocks, never raises."""
        head = (when, request_id, info["name"], info["version"])
        try:
            for first in range(0, len(predictions), MESSAGE_INSTANCES):
                last = first + MESSAGE_INSTANCES
                self._sock.send(orjson.dumps((*head, first, instances[first:last], predictions[first:last])))
            return True
        except BlockingIOError:
            self.refusal = "queue_full"
        except OSError:
            self.refusal = "writer_down"
            self._restart()
        except Exception:
            log.exception("capture send failed")
            self.refusal = "queue_full"
        return False

    def _restart(self) -> None:
        """A child that died is reaped, forgotten by /metrics and replaced (not more often than
        every RESTART_SECONDS)."""
        now = time.monotonic()
        if now < self._restart_after:
            return
        self._restart_after = now + RESTART_SECONDS
        self._reap(wait=0)
        log.error("capture writer process %s is gone; starting another", self.pid)
        with contextlib.suppress(OSError):
            self._sock.close()
        self.start()

    def _reap(self, wait: float) -> bool:
        """Wait up to `wait` seconds for the child to exit; True once it has (and is marked dead)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                done, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                done = self.pid
            if done:
                self._forget()
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def _forget(self) -> None:
        directory = self.capture.settings.prometheus_multiproc_dir
        if directory:
            from service.metrics import mark_worker_dead

            mark_worker_dead(self.pid, directory)

    def stop(self, timeout: float) -> None:
        """Stop the child: it reads what was sent, writes what it holds, and exits; after `timeout`
        it is killed (what it held is lost; its own counters say what it had written)."""
        if self.owner != os.getpid() or not self.pid:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        if not self._reap(timeout):
            log.warning("capture writer process did not finish in time", extra={"writer_pid": self.pid})
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._reap(1.0)
        with contextlib.suppress(OSError):
            self._sock.close()
        self.pid = 0


def _child_main(capture, sock: socket.socket, parent: int, seed) -> int:
    """The child's loop: receive, hand to the writer, tick; returns the exit code."""
    for name in _WORKER_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the worker, which stops us
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    from service import drift_live

    drift_live.YIELD_SECONDS = 0.0  # no request thread to yield to here
    capture.yields = False
    capture.child = None
    capture.enabled = True
    capture._pid = os.getpid()
    capture._writer = f"{socket.gethostname()}-{capture._pid}"
    views = _Views(capture.settings.model_store, seed)
    sock.setblocking(False)
    while not stopping and os.getppid() == parent:
        # Wake on a clock, not on each message: waking per request cost a context switch per
        # request on the worker's cores. The socket holds what arrives meanwhile (a default
        # net.core.wmem_max of 208 KiB is about 90 digits requests: 45 ms at 2,000 a second).
        time.sleep(WAKE_SECONDS)
        _receive(capture, sock, views)
        try:
            capture.tick()
        except Exception:  # a bug here must not end capture for the worker's lifetime
            log.exception("capture writer error")
    _receive(capture, sock, views)  # what the worker sent before it stopped us
    capture.tick(final=True)
    return 0


def _receive(capture, sock: socket.socket, views) -> None:
    """Everything queued on the socket, into the writer's queue."""
    while True:
        try:
            data = sock.recv(RECEIVE_BYTES)
        except BlockingIOError:
            return
        except OSError:
            return
        if not data:
            return
        try:
            when, request_id, name, version, first, instances, predictions = orjson.loads(data)
            view = views.get(name, version)
        except Exception as exc:  # a message this writer cannot use: counted, never fatal
            log.warning("capture message dropped", extra={"error": str(exc)})
            capture._drops["store_error"].inc(1)
            continue
        if view is None:
            capture._drops["store_error"].inc(len(predictions))
            continue
        capture.enqueue(when, request_id, view, instances, predictions, first)


class _Views:
    """ModelView per (name, version): the worker's model, else the version's manifest from the store
    (a failed read is retried after RESTART_SECONDS)."""

    def __init__(self, store_uri: str, seed):
        self.store_uri = store_uri
        self.views: dict[tuple[str, str], ModelView | None] = {}
        self.failed_at: dict[tuple[str, str], float] = {}
        if seed is not None:
            self.views[(seed.info["name"], seed.info["version"])] = seed

    def get(self, name: str, version: str):
        key = (name, version)
        if key in self.views:
            return self.views[key]
        if time.monotonic() - self.failed_at.get(key, -RESTART_SECONDS) < RESTART_SECONDS:
            return None
        try:
            from model.store import ModelStore

            self.views[key] = ModelView(ModelStore(self.store_uri).manifest(name, version))
        except Exception as exc:
            self.failed_at[key] = time.monotonic()
            log.warning("capture: cannot read the manifest of %s %s: %s", name, version, exc)
            return None
        return self.views[key]
