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

from gunicorn import http, util
from gunicorn.http import wsgi
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
# A retiring worker's idle kept connections stay open this long for a next request, answered with
# `Connection: close`. Closed at once, a connection the client was reusing at that very moment
# failed its request with a reset (a rollout under load lost one request that way).
RETIRE_GRACE = 2.0


class _Pending:
    """A connection whose request is still arriving."""

    __slots__ = ("addr", "body_end", "buffer", "client", "deadline", "discard", "idle", "listener")

    def __init__(self, client, addr, listener, deadline: float, idle: bool = False):
        self.client, self.addr, self.listener, self.deadline = client, addr, listener, deadline
        # A kept-alive connection between requests: closed quietly at its deadline or on a reload.
        self.idle = idle
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
        self.keepalive = settings.keepalive
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
        retiring: float | None = None  # when a retiring worker closes its idle connections
        while self.alive or self.pending:
            now = time.monotonic()
            # The heartbeat is a file-time syscall; the master only needs one within `timeout` (30 s),
            # not one per request. The master's own liveness is checked as often.
            if now - notified >= _HEARTBEAT:
                self.notify()
                notified = now
                if not self.is_parent_alive():
                    return
            if not self.alive:
                self._listen(False)
                # A kept connection with no request in flight gets a short grace: a request the
                # client sends in it is served (with `Connection: close`); then it is closed.
                if retiring is None:
                    retiring = now + min(RETIRE_GRACE, self.cfg.graceful_timeout / 2)
                for item in self.pending.values():
                    if item.idle and item.deadline > retiring:
                        item.deadline = retiring
                if not self.pending:
                    break
            wait, earliest = timeout, now + timeout
            if self.pending:
                earliest = min(p.deadline for p in self.pending.values())
                wait = max(0.0, min(wait, earliest - now))
            try:
                events = self.selector.select(wait)
            except OSError as exc:
                if exc.errno != errno.EINTR:
                    raise
                events = []
            # Connections are accepted when the selector says one waits, not tried on every turn:
            # with kept-alive connections almost every turn is a request, and a failed accept() is
            # a system call and an exception.
            waiting = False
            for key, _ in events:
                data = key.data
                if data is None:
                    with contextlib.suppress(OSError):
                        os.read(self.PIPE[0], 1)
                elif type(data) is _Pending:
                    self._read_more(data)
                else:
                    waiting = True
            while waiting and self._listening and self.alive:
                waiting = self._accept_ready()
            now = time.monotonic()
            if now >= earliest:
                self._expire(now)
            self._listen(self.alive and len(self.pending) < self.max_pending)

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
                self._watch(item)
                self._listen(self.alive and len(self.pending) < self.max_pending)
            return True
        return False

    def _read_more(self, item: _Pending) -> None:
        # Done or not, the connection is watched as it should be: closed ones were unwatched, kept
        # ones are watched as their next item.
        self._receive(item)

    def _receive(self, item: _Pending) -> bool:
        """Read what has arrived; serve the request when complete. True when the connection is done."""
        while True:
            try:
                data = item.client.recv(_RECV)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                self._drop(item)
                return True
            if not data:  # the client gave up before its request was complete
                self._drop(item)
                return True
            if item.idle:  # the next request on a kept-alive connection has begun
                item.idle = False
                item.deadline = time.monotonic() + self.read_timeout
            if item.discard:
                item.discard = max(0, item.discard - len(data))
                if not item.discard:
                    self._serve(item, framed=False)
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
                    self._serve(item, framed=False)
                    return True
                continue
            if complete:
                self._serve_in_order(item, body_start)
                return True

    def _serve_in_order(self, item: _Pending, total: int | None) -> None:
        """Serve the complete request at the start of item.buffer (`total` bytes long, None when its
        length is not known), then any pipelined requests after it, in order; a partial one left over
        waits in the selector for the rest of its bytes."""
        while True:
            rest = b""
            if total is not None and len(item.buffer) > total:
                item.buffer, rest = item.buffer[:total], item.buffer[total:]
            kept = self._serve(item, framed=total is not None, rest=rest)
            if kept is None:
                return
            if kept.buffer:
                complete, total, oversized = request_state(kept.buffer, self.max_body)
                if complete and not oversized:
                    item = kept
                    continue
                kept.idle, kept.deadline = False, time.monotonic() + self.read_timeout
            self._watch(kept)
            return

    def _serve(self, item: _Pending, framed: bool, rest: bytes = b"") -> _Pending | None:
        """Serve the complete request in item.buffer. `framed`: its length is known (no chunked body,
        no drained oversized one), so the connection may stay open; then the kept connection is
        returned, holding `rest` (bytes of the next request already read), else None (closed)."""
        client = item.client
        # A request judged complete that still needs bytes, or a client that stops reading its
        # answer, cannot hold the worker past the read deadline (a timeout makes the socket block).
        client.settimeout(self.read_timeout)
        keep = framed and self.keepalive > 0 and self.alive
        if self.handle(item.listener, client, item.addr, item.buffer, keep=keep):
            return self._keep(item, rest)
        self._unwatch(client)
        _close(client)
        return None

    def handle(self, listener, client, addr, prefetched: bytes = b"", keep: bool = False) -> bool:
        """gunicorn's sync handling, with the request's bytes already read; True when the connection
        stays open for another request (`keep` allows it, the client and the response agree)."""
        req = None
        try:
            parser = http.get_parser(self.cfg, _Prefetched(client, prefetched), addr)
            req = next(parser)
            # A reload signalled during the request: the response may already promise keep-alive,
            # so the connection is kept and closes with the retiring worker's grace.
            return self.handle_request(listener, req, client, addr, keep)
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
        return False

    def handle_request(self, listener, req, client, addr, keep: bool = False) -> bool:
        """gunicorn's SyncWorker.handle_request, but the connection is kept open when `keep` allows
        it and the request and response do (HTTP/1.1, no `Connection: close`, a known length).
        True when it is. gunicorn's own access log is not written: the app writes one."""
        environ, resp = {}, None
        try:
            self.cfg.pre_request(self, req)
            resp, environ = wsgi.create(req, client, addr, listener.getsockname(), self.cfg)
            if not keep:
                resp.force_close()
            self.nr += 1
            if self.nr >= self.max_requests:
                self.log.info("Autorestarting worker after current request.")
                self.alive = False
                resp.force_close()
            respiter = self.wsgi(environ, resp.start_response)
            try:
                if isinstance(respiter, environ["wsgi.file_wrapper"]):
                    resp.write_file(respiter)
                else:
                    for item in respiter:
                        resp.write(item)
                resp.close()
            finally:
                if hasattr(respiter, "close"):
                    respiter.close()
            return not resp.should_close()
        except OSError:
            raise
        except (Exception, SystemExit):
            if resp and resp.headers_sent:
                # Writing a 500 after the headers would corrupt the response: close instead.
                self.log.exception("Error handling request")
                raise StopIteration() from None
            raise
        finally:
            try:
                self.cfg.post_request(self, req, environ, resp)
            except Exception:
                self.log.exception("Exception in post_request hook")

    def _keep(self, item: _Pending, rest: bytes) -> _Pending | None:
        """Send the response now; the connection, waiting for its next request (not yet watched)."""
        client = item.client
        try:
            if _CORK is not None:
                # Uncorking sends what the response wrote (in one segment); corked again for the next.
                client.setsockopt(socket.IPPROTO_TCP, _CORK, 0)
                client.setsockopt(socket.IPPROTO_TCP, _CORK, 1)
            client.setblocking(False)
        except OSError:
            self._unwatch(client)
            _close(client)
            return None
        kept = _Pending(client, item.addr, item.listener, time.monotonic() + self.keepalive, idle=not rest)
        kept.buffer = rest
        return kept

    def _watch(self, item: _Pending) -> None:
        """Wait in the selector for `item`'s bytes. A kept connection is still registered from its
        last request: only its data changes, which costs no system call."""
        client = item.client
        self.pending[client.fileno()] = item
        key = self.selector.get_map().get(client.fileno())
        if key is not None and key.fileobj is client:
            self.selector.modify(client, selectors.EVENT_READ, item)
            return
        if key is not None:  # a socket closed without being unwatched left its number behind
            self.selector.unregister(key.fileobj)
        self.selector.register(client, selectors.EVENT_READ, item)

    def _unwatch(self, client: socket.socket) -> None:
        """Stop watching a connection (before it is closed)."""
        fileno = client.fileno()
        if fileno < 0:
            return
        self.pending.pop(fileno, None)
        if fileno in self.selector.get_map():
            self.selector.unregister(client)

    def _expire(self, now: float) -> None:
        for item in [p for p in self.pending.values() if p.deadline <= now]:
            if item.idle:
                self._drop(item)  # a kept-alive connection nobody used again: no request to answer
            else:
                self._timed_out(item)

    def _timed_out(self, item: _Pending) -> None:
        from service.protocol_errors import json_error

        with contextlib.suppress(OSError):
            json_error(item.client, 408, "Request Timeout",
                       f"the request did not arrive within {self.read_timeout:g} s (READ_TIMEOUT)")
        self._drop(item)

    def _drop(self, item: _Pending) -> None:
        self._unwatch(item.client)
        with contextlib.suppress(OSError):
            item.client.close()
