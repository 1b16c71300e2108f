"""The Lambda Runtime API on 127.0.0.1: what a Lambda container image talks to, for tests.

In Lambda, the container's runtime interface client (`python -m awslambdaric HANDLER`, the `score`
image's entrypoint) imports the handler, then loops: GET /2018-06-01/runtime/invocation/next (held
open until there is an event), call the handler, POST the answer to .../invocation/<id>/response or
the exception to .../invocation/<id>/error; an import failure goes to /runtime/init/error. AWS's
emulator for that API (aws-lambda-rie) is a binary this machine cannot fetch, so this module serves
the same four routes, with the headers awslambdaric's native client reads (request id, deadline,
function ARN, trace id), from a threaded http.server; `invoke(event)` queues an event and waits
for its answer, as `aws lambda invoke` would. `AWS_LAMBDA_RUNTIME_API` is set to `address`.

What this proves: the image's entrypoint, handler name, imports and packages work under the real
runtime client, and an invocation's answer (or error) is what the handler returned (or raised); the
times it records (`first_next_at`, each invocation's `answered_at`) measure a local cold start.
What it does not prove: Lambda's sandbox (its own user on a read-only filesystem: the test runs the
image that way, but the memory and CPU sizing, the 10 s init limit and the 15 min timeout are not
enforced), pulling the image from ECR (the largest part of a real first cold start), the SQS event
source mapping that builds the batch and honours `batchItemFailures`, IAM, the Extensions and
Telemetry APIs, and SnapStart's /runtime/restore routes (not served).
"""

from __future__ import annotations

import http.server
import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field

PREFIX = "/2018-06-01/runtime"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
XRAY_CAUSE_HEADER = "Lambda-Runtime-Function-XRay-Error-Cause"


@dataclass
class Invocation:
    """One queued event and, once the runtime answers, its outcome."""

    request_id: str
    event: bytes
    queued_at: float
    deadline_ms: int
    delivered_at: float | None = None
    answered_at: float | None = None
    ok: bool | None = None
    payload: object = None
    error_type: str | None = None  # the error-type header, else the error document's errorType
    xray_cause: object = None  # the X-Ray error-cause header the client sends with an error
    done: threading.Event = field(default_factory=threading.Event)


class LambdaRuntime:
    """Serves the Runtime API on 127.0.0.1:<free port> (see the module docstring); start() then stop().

    `function_arn` and `timeout_s` fill the ARN and deadline headers of each invocation.
    """

    def __init__(self, function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:score",
                 timeout_s: float = 900.0):
        self.function_arn, self.timeout_s = function_arn, timeout_s
        self.first_next_at: float | None = None  # time.monotonic() of the runtime's first GET /next
        self.next_calls = 0
        self.init_error: dict | None = None
        self.invocations: dict[str, Invocation] = {}
        self.unknown: list[str] = []  # requests no route answers (a test can assert there are none)
        self._pending: queue.Queue[Invocation] = queue.Queue()
        self._lock = threading.Lock()
        self._init_failed = threading.Event()
        self._closing = threading.Event()
        self._server: http.server.ThreadingHTTPServer | None = None

    # -- the server -------------------------------------------------------------------------
    @property
    def address(self) -> str:
        """host:port, what AWS_LAMBDA_RUNTIME_API is set to."""
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> LambdaRuntime:
        runtime = self

        class Handler(http.server.BaseHTTPRequestHandler):
            # The native client keeps one connection open across calls (HTTP/1.1 keep-alive).
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                runtime._dispatch(self, "GET")

            def do_POST(self):
                runtime._dispatch(self, "POST")

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="lambda-runtime", daemon=True).start()
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> LambdaRuntime:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what a test calls ----------------------------------------------------------------------
    def invoke(self, event, timeout: float = 60.0) -> tuple[bool, object]:
        """Queue `event` (JSON-serialisable) and wait for the runtime's answer.

        Returns (True, the handler's answer, JSON-decoded when it is JSON) or (False, the error
        document the runtime posted: errorMessage, errorType, stackTrace), also when the runtime
        reported an init error. TimeoutError if no answer comes within `timeout` seconds.
        """
        deadline_ms = int((time.time() + self.timeout_s) * 1000)
        item = Invocation(str(uuid.uuid4()), json.dumps(event).encode(), time.monotonic(), deadline_ms)
        with self._lock:
            self.invocations[item.request_id] = item
        self._pending.put(item)
        end = time.monotonic() + timeout
        while not item.done.wait(0.05):
            if self._init_failed.is_set():
                return False, self.init_error
            if time.monotonic() > end:
                state = "delivered" if item.delivered_at else "never fetched by the runtime"
                raise TimeoutError(f"invocation {item.request_id} not answered in {timeout:g} s ({state})")
        return bool(item.ok), item.payload

    # -- the routes -----------------------------------------------------------------------------
    def _dispatch(self, request: http.server.BaseHTTPRequestHandler, method: str) -> None:
        try:
            self._route(request, method)
        except (BrokenPipeError, ConnectionResetError):
            request.close_connection = True  # the runtime went away (container stopped)

    def _route(self, request: http.server.BaseHTTPRequestHandler, method: str) -> None:
        path = request.path.split("?", 1)[0]
        body = _read_body(request) if method == "POST" else b""
        parts = path.removeprefix(PREFIX).strip("/").split("/")
        if method == "GET" and path == f"{PREFIX}/invocation/next":
            self._next(request)
        elif method == "POST" and path == f"{PREFIX}/init/error":
            self.init_error = _decode(body)
            self._init_failed.set()
            _answer(request, 202, {"status": "OK"})
        elif (method == "POST" and path.startswith(PREFIX + "/") and len(parts) == 3
              and parts[0] == "invocation" and parts[2] in ("response", "error")):
            self._result(request, parts[1], parts[2] == "response", body)
        else:
            self.unknown.append(f"{method} {request.path}")
            _answer(request, 404, {"errorMessage": f"no route {method} {path}", "errorType": "NotFound"})

    def _next(self, request) -> None:
        with self._lock:
            self.next_calls += 1
            if self.first_next_at is None:
                self.first_next_at = time.monotonic()
        while True:  # held open until an event is queued, as Lambda does
            try:
                item = self._pending.get(timeout=0.2)
                break
            except queue.Empty:
                if self._closing.is_set():
                    request.close_connection = True  # the client is usually gone by then: no answer
                    return
        item.delivered_at = time.monotonic()
        body = item.event
        request.send_response(200)
        for name, value in (("Content-Type", "application/json"),
                            ("Lambda-Runtime-Aws-Request-Id", item.request_id),
                            ("Lambda-Runtime-Deadline-Ms", str(item.deadline_ms)),
                            ("Lambda-Runtime-Invoked-Function-Arn", self.function_arn),
                            ("Lambda-Runtime-Trace-Id",
                             f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0"),
                            ("Content-Length", str(len(body)))):
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(body)

    def _result(self, request, request_id: str, ok: bool, body: bytes) -> None:
        item = self.invocations.get(request_id)
        if item is None or item.delivered_at is None:
            _answer(request, 400, {"errorMessage": f"unknown request id {request_id}",
                                   "errorType": "InvalidRequestID"})
            return
        if item.done.is_set():  # Lambda takes one answer per invocation
            _answer(request, 400, {"errorMessage": f"{request_id} already answered",
                                   "errorType": "InvalidStateTransition"})
            return
        item.ok, item.payload = ok, _decode(body)
        if not ok:
            item.error_type = request.headers.get(ERROR_TYPE_HEADER) or (
                item.payload.get("errorType") if isinstance(item.payload, dict) else None)
            cause = request.headers.get(XRAY_CAUSE_HEADER)
            item.xray_cause = _decode(cause.encode()) if cause else None
        item.answered_at = time.monotonic()
        item.done.set()
        _answer(request, 202, {"status": "OK"})


def _read_body(request) -> bytes:
    """The request body, sent with Content-Length or chunked (as libcurl may)."""
    if "chunked" in (request.headers.get("Transfer-Encoding") or "").lower():
        chunks = []
        while True:
            size = int(request.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while request.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(request.rfile.read(size))
            request.rfile.readline()
    return request.rfile.read(int(request.headers.get("Content-Length") or 0))


def _decode(body: bytes):
    """JSON-decoded body, or the text when it is not JSON."""
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


def _answer(request, status: int, document: dict) -> None:
    data = json.dumps(document).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)
