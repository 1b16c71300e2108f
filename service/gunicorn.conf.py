"""gunicorn settings for the service: `gunicorn --config service/gunicorn.conf.py 'service.wsgi:app'`.

Values come from service.config.Settings (the environment); command-line flags such as `--bind`,
`--workers` or `--pid` still win. The model is loaded in each worker after it forks (never in the
master, never at import), so SIGHUP makes fresh workers load the alias's *current* target while the
old workers finish their in-flight requests.
"""

import gc
import os
import sys
import tempfile

# gunicorn execs this file by path, so the project root may not be importable yet.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# One compute thread per worker, set before any numerical library loads: gunicorn already runs a
# worker per core, and OpenMP's threads (HistGradientBoosting, forests) spinning in every worker
# starved the others: a gradient-boosted table served 28 requests/s with timeouts, 335 with this.
# A value set by the operator wins.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from service.config import GUNICORN_WORKERS, Settings  # noqa: E402 (after the thread settings)
from service.logs import gunicorn_logconfig  # noqa: E402
from service.preload import preload  # noqa: E402

_settings = Settings.from_env(os.environ)

bind = _settings.address
workers = _settings.workers
# WORKER_CLASS (service.config): buffered by default (service/worker.py), so slow clients cost
# sockets, not workers. A prediction runs to completion in its worker either way.
worker_class = GUNICORN_WORKERS[_settings.worker_class]
worker_connections = 1000
# gevent with keep-alive lets one connection's back-to-back requests starve the others in a worker
# (p99 44 ms against 3.4 ms measured): each response closes its connection, as sync workers do.
# The buffered worker keeps connections alive on its own terms (KEEPALIVE, service/worker.py): a
# kept connection waits in its selector between requests, served in turn with the others.
keepalive = 0
# Below the ECS container stopTimeout (30 s): in-flight requests finish before SIGKILL.
graceful_timeout = _settings.graceful_timeout
timeout = _settings.timeout
preload_app = False
pidfile = _settings.pidfile
# The app writes its own JSON access log (with request id and latency); gunicorn's is off.
accesslog = None
logger_class = "service.logs.GunicornLogger"
logconfig_dict = gunicorn_logconfig(_settings.log_level)
loglevel = _settings.log_level.lower()
proc_name = "model-service"
# gunicorn's control socket is one fixed per-user path: two servers on a host would fight over it.
control_socket_disable = True
def on_starting(server):
    """Give the workers a shared, empty metrics folder (prometheus_client multiprocess mode)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        path = tempfile.mkdtemp(prefix="prometheus-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    os.makedirs(path, exist_ok=True)
    # Samples left by a previous server would be summed into this one's counters.
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))
    server.log.info("metrics folder %s", path)
    # Import the heavy libraries (not the app, not the model) once in the master: forked workers
    # share them, so a worker started by SIGHUP only has to fetch and verify the model.
    # scikit-learn only when a worker will unpickle (service/preload.py).
    server.log.info("preloaded %s", ", ".join(preload(_settings)))


def on_reload(server):
    """Before SIGHUP's new workers fork: import what the version they will load needs (an alias
    moved from a compiled version to one that is unpickled needs scikit-learn)."""
    server.log.info("preloaded %s", ", ".join(preload(_settings)))


def post_worker_init(worker):
    """Load and verify the model in this worker before it accepts requests (bounded wait)."""
    from service import protocol_errors
    from service.app import start_capture, start_model

    protocol_errors.install()
    ready = start_model(worker.wsgi)
    # What the worker holds now (the libraries, the app, usually the model) lives as long as the
    # worker: take it out of the cyclic garbage collector's full collections. Without this, objects
    # kept alive for a moment (capture's queued requests) reach the oldest generation and make full
    # collections of the whole heap frequent: p99 at full capture went from 4 ms to 17-26 ms.
    gc.freeze()
    # The capture writer belongs to this worker (service/capture_process.py): forked now, after the
    # model is loaded and frozen, so the two share its memory and the writer knows its schema.
    start_capture(worker.wsgi)
    if ready:
        worker.log.info("worker %s ready", worker.pid)
    else:
        worker.log.warning("worker %s started without a model; retrying in the background", worker.pid)


def worker_exit(server, worker):
    """Write this worker's held capture records before it exits (bounded: service.capture.EXIT_SECONDS,
    below the graceful timeout). gunicorn also calls this hook in the master for a worker it found
    gone; only the worker itself has records to write."""
    app = getattr(worker, "wsgi", None)
    if worker.pid != os.getpid() or app is None:
        return
    from service.app import stop_capture

    stop_capture(app, timeout=min(5.0, _settings.graceful_timeout / 2))


def child_exit(server, worker):
    """Drop the exited worker's live gauges so /metrics shows only running workers' models."""
    from service.metrics import mark_worker_dead

    mark_worker_dead(worker.pid, os.environ["PROMETHEUS_MULTIPROC_DIR"])
