"""A gunicorn sync worker that reads each request in full before it gives the request its time.

gunicorn's sync worker blocks on one connection until that request has arrived, so twenty clients
that send a header line a second hold every worker (the issue measured 29 s for `/health`). A load
balancer that buffers requests (the ALB) prevents that in front of the service; this worker does the
same inside it, for a service reached directly (`make run`, the image run by hand, a task reached
from inside the VPC):

- connections are accepted one at a time, as the sync worker does, so the workers share the load;
- a request that has fully arrived (the usual case: the kernel holds the connection back until its
  first bytes arrive, TCP_DEFER_ACCEPT) is served at once, by gunicorn's own parser and response code;
- one that has not waits in a selector, costing a socket, not the worker, until it is complete,
  with a deadline (`READ_TIMEOUT`; past it the client gets a 408 JSON error);
- a body over `MAX_BODY_BYTES` is read and thrown away (up to a cap) before the 413 is sent, so the
  client sees the 413 instead of a connection reset while it is still sending.

Whether a request is complete is only decided to avoid waiting: a misjudgement (an odd chunked body,
say) falls back to gunicorn's blocking read, which is always correct, never to a wrong parse.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import selectors
import socket
import time

from gunicorn import util
from gunicorn.workers.sync import SyncWorker

# Headers larger than this are handed to gunicorn's parser as they are: it answers 431 (JSON).
_MAX_HEAD = 64 * 1024
# An oversized body is drained up to this much, then the 413 is sent regardless.
_MAX_DISCARD = 64 * 1024 * 1024
_RECV = 256 * 1024
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)[ \t]*\r\n", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r\n]*chunked", re.IGNORECASE)
_CHUNKED_END = b"0\r\n\r\n"
_CORK = getattr(socket, "TCP_CORK", None)
_HEARTBEAT = 1.0  # seconds between the worker's heartbeats to the master


class _Pending:
    """A connection whose request is still arriving."""

    __slots__ = ("addr", "body_end", "buffer", "client", "deadline", "discard", "listener")

    def __init__(self, client, addr, listener, deadline: float):
        self.client, self.addr, self.listener, self.deadline = client, addr, listener, deadline
        self.buffer = b""
        self.body_end: int | None = None  # bytes the whole request takes, once the head is known
        self.discard = 0  # body bytes still to throw away (an oversized request)


class _Prefetched:
    """The connection as gunicorn's parser sees it: the bytes already read, then the socket."""

    def __init__(self, sock: socket.socket, data: bytes):
        self._sock, self._data = sock, data

    def recv(self, size: int) -> bytes:
        if self._data:
            data, self._data = self._data[:size], self._data[size:]
            return data
        return self._sock.recv(size)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def request_state(buffer: bytes, max_body: int) -> tuple[bool, int | None, int]:
    """(complete, total length if known, oversized body bytes to discard) for the bytes so far."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return len(buffer) > _MAX_HEAD, None, 0
    head = buffer[: head_end + 2]
    body_start = head_end + 4
    if _CHUNKED.search(head):
        return buffer.endswith(_CHUNKED_END) or len(buffer) - body_start > max_body, None, 0
    match = _CONTENT_LENGTH.search(head)
    length = int(match.group(1)) if match else 0
    if length > max_body:
        return False, body_start, length
    total = body_start + length
    return len(buffer) >= total, total, 0


def _close(client: socket.socket) -> None:
    """Close a served connection; wait for the client's side only when it sent more than was read.

    gunicorn closes gracefully (shut down, then read until the client closes) because closing with
    unread bytes makes the kernel answer with a reset, which can destroy the response in flight.
    Here every request was read whole before it was served, so the usual connection has nothing
    unread and is closed at once; the worker does not sit idle until the client hangs up (that wait
    was a fifth of a worker's time per request under load).
    """
    try:
        client.setblocking(False)  # with a timeout set, recv() would first wait for data
        pending = client.recv(1, socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        pending = b""  # nothing unread, the client still connected: the usual case
    except OSError:
        pending = None  # reset or gone: nothing to protect
    if pending:
        util.close_graceful(client)
        return
    # shutdown() sends the (corked) response and the FIN now, whoever else holds the socket object.
    with contextlib.suppress(OSError):
        client.shutdown(socket.SHUT_WR)
    with contextlib.suppress(OSError):
        client.close()


class BufferedWorker(SyncWorker):
    """SyncWorker that serves only complete requests; incomplete ones wait in a selector."""

    def init_process(self):
        from service.config import Settings

        settings = Settings.from_env(os.environ)
        self.read_timeout = settings.read_timeout
        self.max_body = settings.max_body_bytes
        self.max_pending = max(1, self.cfg.worker_connections)
        super().init_process()

    def run(self):
        for listener in self.sockets:
            listener.setblocking(False)
            if hasattr(socket, "TCP_DEFER_ACCEPT") and listener.family in (socket.AF_INET, socket.AF_INET6):
                # accept() returns once the client has sent something: most requests are then
                # complete at the first recv, and idle connections never reach the worker.
                with contextlib.suppress(OSError):
                    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
        self.selector = selectors.DefaultSelector()
        self.pending: dict[int, _Pending] = {}
        self.selector.register(self.PIPE[0], selectors.EVENT_READ, None)
        self._listening = False
        self._listen(True)
        try:
            self._loop()
        finally:
            for item in list(self.pending.values()):
                self._drop(item)
            self.selector.close()

    def _listen(self, on: bool) -> None:
        if on == self._listening:
            return
        for listener in self.sockets:
            if on:
                self.selector.register(listener, selectors.EVENT_READ, listener)
            else:
                self.selector.unregister(listener)
        self._listening = on

    def _loop(self) -> None:
        timeout = self.timeout or 0.5
        # On SIGHUP or SIGTERM (alive turns false) stop accepting, but finish the requests that are
        # still arriving: their clients were accepted and must get an answer, not a closed socket.
        notified = 0.0
        while self.alive or self.pending:
            # The heartbeat is a file-time syscall; the master only needs one within `timeout` (30 s),
            # not one per request.
            if time.monotonic() - notified >= _HEARTBEAT:
                self.notify()
                notified = time.monotonic()
            if not self.alive:
                self._listen(False)
            # Like the sync worker: serve whoever is waiting before sleeping in select().
            elif self._listening and self._accept_ready():
                continue
            now = time.monotonic()
            wait = timeout
            if self.pending:
                wait = max(0.0, min(wait, min(p.deadline for p in self.pending.values()) - now))
            try:
                events = self.selector.select(wait)
            except OSError as exc:
                if exc.errno != errno.EINTR:
                    raise
                events = []
            for key, _ in events:
                if key.data is None:
                    with contextlib.suppress(OSError):
                        os.read(self.PIPE[0], 1)
                elif isinstance(key.data, _Pending):
                    self._read_more(key.data)
                # a listener: accepted at the top of the loop
            self._expire(time.monotonic())
            self._listen(self.alive and len(self.pending) < self.max_pending)
            if not self.is_parent_alive():
                return

    def _accept_ready(self) -> bool:
        """Accept one connection if one is waiting; True if one was."""
        for listener in self.sockets:
            try:
                client, addr = listener.accept()
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                    raise
                continue
            util.close_on_exec(client)
            client.setblocking(False)
            if _CORK is not None:
                with contextlib.suppress(OSError):
                    client.setsockopt(socket.IPPROTO_TCP, _CORK, 1)
            item = _Pending(client, addr, listener, time.monotonic() + self.read_timeout)
            if not self._receive(item):
                self.pending[client.fileno()] = item
                self.selector.register(client, selectors.EVENT_READ, item)
                self._listen(self.alive and len(self.pending) < self.max_pending)
            return True
        return False

    def _read_more(self, item: _Pending) -> None:
        if self._receive(item):
            self.pending.pop(item.client.fileno(), None)
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(item.client)

    def _receive(self, item: _Pending) -> bool:
        """Read what has arrived; serve the request when complete. True when the connection is done."""
        while True:
            try:
                data = item.client.recv(_RECV)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                item.client.close()
                return True
            if not data:  # the client gave up before its request was complete
                item.client.close()
                return True
            if item.discard:
                item.discard = max(0, item.discard - len(data))
                if not item.discard:
                    self._serve(item)
                    return True
                continue
            item.buffer += data
            complete, body_start, oversized = request_state(item.buffer, self.max_body)
            if oversized:
                # Keep the head only; throw the body away as it arrives, then answer 413.
                item.discard = min(oversized, _MAX_DISCARD) - (len(item.buffer) - body_start)
                item.buffer = item.buffer[:body_start]
                if item.discard <= 0:
                    item.discard = 0
                    self._serve(item)
                    return True
                continue
            if complete:
                self._serve(item)
                return True

    def _serve(self, item: _Pending) -> None:
        client = item.client
        client.setblocking(True)
        # A request judged complete that still needs bytes, or a client that stops reading its
        # answer, cannot hold the worker past the read deadline.
        client.settimeout(self.read_timeout)
        self.handle(item.listener, client, item.addr, item.buffer)

    def handle(self, listener, client, addr, prefetched: bytes = b""):
        """gunicorn's sync handling, with the request's bytes already read."""
        from gunicorn import http

        req = None
        try:
            parser = http.get_parser(self.cfg, _Prefetched(client, prefetched), addr)
            req = next(parser)
            self.handle_request(listener, req, client, addr)
        except http.errors.NoMoreData:
            self.log.debug("Ignored premature client disconnection.")
        except StopIteration:
            self.log.debug("Closing connection.")
        except TimeoutError:
            self.log.debug("Client too slow; connection closed.")
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.exception("Socket error processing request.")
        except BaseException as exc:
            self.handle_error(req, client, addr, exc)
        finally:
            _close(client)

    def _expire(self, now: float) -> None:
        for item in [p for p in self.pending.values() if p.deadline <= now]:
            self.pending.pop(item.client.fileno(), None)
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(item.client)
            self._timed_out(item)

    def _timed_out(self, item: _Pending) -> None:
        from service.protocol_errors import json_error

        with contextlib.suppress(OSError):
            json_error(item.client, 408, "Request Timeout",
                       f"the request did not arrive within {self.read_timeout:g} s (READ_TIMEOUT)")
        self._drop(item)

    def _drop(self, item: _Pending) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(item.client)
        with contextlib.suppress(OSError):
            item.client.close()
