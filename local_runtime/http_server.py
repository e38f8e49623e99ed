"""An HTTP/1.1 server whose cost per client is bounded: threads, memory, time and connections.

`HttpServer` accepts connections and answers each complete request with a responder
(`Request -> Response`). Requests are framed by `http11` (llhttp), readiness is dispatched by
`http_dispatch` (a fixed pool of threads); each `Connection` is a small state machine that any
pool thread can advance. What it keeps from the hand-written server it replaces:

- keep-alive and pipelining, answers in request order, each answer written in one send,
  `TCP_NODELAY` (a client on one keep-alive connection never waits on Nagle and delayed ACKs);
- a body over the limit refused with 413 before it is read (Content-Length), or as soon as it
  grows past it (chunked); `Expect: 100-continue`; HEAD.

What it adds: a deadline for a request's head (from its first byte) and one for its body, an
idle limit between keep-alive requests, a send deadline for a client that does not read, and a
cap on open connections (503 with Retry-After beyond it). After an error answer the connection
lingers, reading and dropping input for a moment, so the client reads the answer rather than a
reset.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Protocol

from local_runtime.http11 import (
    CONTINUE,
    HttptoolsReader,
    Limits,
    Phase,
    ProtocolError,
    Request,
    RequestReader,
    Response,
    encode_response,
    error_response,
)
from local_runtime.http_dispatch import Channel, Dispatcher, Interest, default_dispatcher

LOGGER = logging.getLogger(__name__)
RECV_BYTES = 65536
ACCEPT_BATCH = 64  # connections accepted per wake-up of the listener
DRAIN_READS = 16  # reads of dropped input per wake-up while lingering
MAX_REFUSED_LINGERING = 128  # refused connections kept lingering at once; others close at once
BACKLOG = 1024
FD_HEADROOM = 256  # descriptors beyond the connections: the app's MySQL, Redis, logs, pipes
OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
INTERNAL_ERROR = b'{"code":"INTERNAL_ERROR","message":"the gateway failed"}'
# A pool thread that has just answered may wait this long on the same connection for its next
# request (see `http_dispatch`); the kernel enforces it (SO_RCVTIMEO), so the wait costs no
# poll(). Every other read and write is non-blocking by its flag (MSG_DONTWAIT).
HOT_WAIT_SECONDS = 0.01
_HOT_WAIT = struct.pack("ll", 0, int(HOT_WAIT_SECONDS * 1_000_000))  # struct timeval, LP64
_NOW = socket.MSG_DONTWAIT

Responder = Callable[[Request], Response]


class ReaderFactory(Protocol):
    def __call__(self, limits: Limits, client: str) -> RequestReader: ...


class Connection:
    """One client connection: read, frame, answer in order, write.

    Any pool thread can advance it; it holds a thread only while a request is being answered
    (or, asked to, for the few milliseconds of a wait for the next one).
    """

    __slots__ = (
        "_closing",
        "_draining",
        "_failure",
        "_linger",
        "_out",
        "_server",
        "admitted",
        "client",
        "deadline",
        "expired",
        "fd",
        "hot",
        "lock",
        "reader",
        "sock",
    )

    def __init__(
        self, server: HttpServer, sock: socket.socket, client: str, now: float, admitted: bool
    ) -> None:
        self._server = server
        self.admitted = admitted  # within the cap (else it is refused at once)
        self.sock = sock
        self.fd = sock.fileno()
        self.client = client
        self.lock = threading.Lock()
        self.reader = server.reader_factory(server.limits, client)
        self.deadline = now + server.limits.head_timeout  # the first request's first byte
        self.expired = False
        self.hot = False  # it has just answered and waits for the next request, nothing half-read
        self._out = b""  # accepted for sending, not yet sent
        self._closing = False  # close once _out is sent
        self._linger = False  # ... after reading and dropping input for a moment
        self._draining = False
        self._failure: ProtocolError | None = None  # answered after the requests before it

    @property
    def writing(self) -> bool:
        return bool(self._out)

    def expire(self) -> None:
        """The deadline passed; the next `service` acts on it."""
        self.expired = True

    def refuse(self, now: float, linger: bool) -> Interest:
        """Answer 503 at once (over the connection cap) and close."""
        limits = self._server.limits
        message = (
            f"the server has {limits.max_connections} open connections, its limit; "
            f"retry in {limits.retry_after} s"
        )
        status, headers, body = error_response(503, "TOO_MANY_CONNECTIONS", message)
        headers["Retry-After"] = str(limits.retry_after)
        self._closing, self._linger = True, linger
        try:
            return self._send_then_finish(encode_response("GET", status, headers, body, False), now)
        except OSError:  # gone already
            return self.close()

    def service(self, wait: bool = False) -> Interest:
        """Do what the socket's readiness allows; see `Channel`."""
        try:
            return self._service(time.monotonic(), wait)
        except OSError:  # reset, broken pipe: the client is gone
            return self.close()
        except Exception:
            LOGGER.exception("the connection from %s failed", self.client)
            return self.close()

    def _service(self, now: float, wait: bool) -> Interest:
        self.hot = False
        if self.expired:
            return self._expire(now)
        if self._draining:
            return self._drain()
        if self._out:
            if not self._flush():
                return Interest.WRITE
            if self._closing:
                return self._finish(now)
            return self._answer(now)
        try:
            data = self.sock.recv(RECV_BYTES, 0 if wait else _NOW)
        except (BlockingIOError, InterruptedError):
            return Interest.READ  # nothing came (or the wait ended); the deadline stands
        if not data:
            return self.close()  # the client closed; whatever was complete was answered
        try:
            self.reader.feed(data, now)
        except ProtocolError as error:
            LOGGER.debug("refused a request from %s: %s %s", self.client, error.status, error)
            self._failure = error
        return self._answer(now)

    def _answer(self, now: float) -> Interest:
        """Answer the complete requests in order, then the failure (and close), if any."""
        requests = self.reader.requests
        answered = False
        while requests:
            request = requests.popleft()
            try:
                status, headers, body = self._server.responder(request)
            except Exception:  # the server must outlive any request
                LOGGER.exception("%s %s failed in the gateway", request.method, request.target)
                status, headers, body = 500, {}, INTERNAL_ERROR
            self._closing = not request.keep_alive
            self._linger = self._closing and self.reader.trailing
            data = encode_response(request.method, status, headers, body, request.keep_alive)
            if not self._send(data):
                return self._blocked(now)
            if self._closing:
                return self._finish(now)
            answered = True
        if self._failure is not None:
            status, headers, body = self._failure.response()
            self._failure = None
            self._closing = self._linger = True
            return self._send_then_finish(encode_response("GET", status, headers, body, False), now)
        if self.reader.expects_continue:
            self.reader.expects_continue = False
            if not self._send(CONTINUE):
                return self._blocked(now)
        self._read_deadline(now, answered)
        self.hot = answered and self.reader.phase is Phase.IDLE
        return Interest.READ

    def _read_deadline(self, now: float, answered: bool) -> None:
        limits, reader = self._server.limits, self.reader
        if reader.phase is Phase.HEAD:
            self.deadline = reader.started + limits.head_timeout
        elif reader.phase is Phase.BODY:
            self.deadline = reader.started + limits.body_timeout
        elif answered:  # idle between requests; empty lines alone do not extend it
            self.deadline = now + limits.idle_timeout

    def _send(self, data: bytes) -> bool:
        """Send in one call; False (the rest kept) when the client's window is full."""
        try:
            sent = self.sock.send(data, _NOW)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            self._out = data[sent:]
            return False
        return True

    def _flush(self) -> bool:
        out, self._out = self._out, b""
        return self._send(out)

    def _blocked(self, now: float) -> Interest:
        """An answer is half sent: wait until the client reads (within the send deadline)."""
        self.deadline = now + self._server.limits.send_timeout
        return Interest.WRITE

    def _send_then_finish(self, data: bytes, now: float) -> Interest:
        return self._finish(now) if self._send(data) else self._blocked(now)

    def _finish(self, now: float) -> Interest:
        """Everything is sent and the connection is to end: close, or linger first."""
        if not self._linger:
            return self.close()
        self.sock.shutdown(socket.SHUT_WR)
        self._draining = True
        self.deadline = now + self._server.limits.linger
        return self._drain()

    def _drain(self) -> Interest:
        """Read and drop what the client still sends until it closes (or the linger ends)."""
        for _ in range(DRAIN_READS):
            try:
                if not self.sock.recv(RECV_BYTES, _NOW):
                    return self.close()
            except (BlockingIOError, InterruptedError):
                return Interest.READ
        return Interest.READ

    def _expire(self, now: float) -> Interest:
        self.expired = False
        if self._draining or self._out:
            return self.close()  # lingered long enough, or the client does not read
        phase = self.reader.phase
        if phase is Phase.IDLE:
            return self.close()  # an idle keep-alive connection ends without a word
        limits = self._server.limits
        if phase is Phase.HEAD:
            message = f"the request head did not arrive within {limits.head_timeout:g} s"
        else:
            message = f"the request body did not arrive within {limits.body_timeout:g} s"
        self._failure = ProtocolError(408, "REQUEST_TIMEOUT", message)
        return self._answer(now)

    def close(self) -> Interest:
        self._server.release(self)
        with contextlib.suppress(OSError):
            self.sock.close()
        return Interest.CLOSED


class HttpServer:
    """Serves HTTP/1.1 to a responder; `serve_forever` blocks until `shutdown`.

    `limits` bounds what each client may send and how long it may take, and how many may be
    connected; `dispatcher` is the threading strategy (epoll's leader/follower on Linux);
    `reader` frames requests (llhttp). The process's soft limit on open files is raised, when
    it is lower, so that the connection cap can be reached.
    """

    def __init__(
        self,
        address: tuple[str, int],
        responder: Responder,
        limits: Limits | None = None,
        dispatcher: Dispatcher | None = None,
        reader: ReaderFactory = HttptoolsReader,
    ) -> None:
        self.responder = responder
        self.limits = limits or Limits()
        self.reader_factory = reader
        self.dispatcher = dispatcher or default_dispatcher()
        self.channels: dict[int, Channel] = {}
        self.resolution = self.limits.resolution
        self._count_lock = threading.Lock()
        self._admitted = 0
        self._refused_lingering = 0
        self._refusals = _RefusalLog()
        self._served = threading.Event()
        self._serving = False
        _ensure_descriptors(self.limits.max_connections + MAX_REFUSED_LINGERING + FD_HEADROOM)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listener.bind(address)
            self.listener.listen(BACKLOG)
            self.listener.setblocking(False)
        except OSError:
            self.listener.close()
            raise
        self.server_address: tuple[str, int] = self.listener.getsockname()

    @property
    def open_connections(self) -> int:
        """Admitted connections now open (refused ones still lingering not counted)."""
        return self._admitted

    def serve_forever(self) -> None:
        self._serving = True
        try:
            self.dispatcher.run(self)
        finally:
            self._served.set()

    def shutdown(self) -> None:
        """Stop serving; returns once `serve_forever` has returned (if it was running)."""
        self.dispatcher.stop()
        if self._serving:
            self._served.wait()

    def server_close(self) -> None:
        self.listener.close()
        for channel in list(self.channels.values()):
            with contextlib.suppress(OSError):
                channel.sock.close()
        self.channels.clear()

    def accept(self) -> tuple[list[tuple[Channel, Interest]], bool]:
        """Accept what is pending; over the cap, answer 503 and close."""
        accepted: list[tuple[Channel, Interest]] = []
        for _ in range(ACCEPT_BATCH):
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno in OUT_OF_DESCRIPTORS:
                    LOGGER.warning("cannot accept connections for now: %s", exc)
                    return accepted, True
                raise
            try:
                accepted.append(self._open(sock, address[0] if address else "127.0.0.1"))
            except OSError:  # reset before we could set it up
                sock.close()
        return accepted, False

    def _open(self, sock: socket.socket, client: str) -> tuple[Channel, Interest]:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _HOT_WAIT)
        now = time.monotonic()
        with self._count_lock:
            admitted = self._admitted < self.limits.max_connections
            linger = not admitted and self._refused_lingering < MAX_REFUSED_LINGERING
            if admitted:
                self._admitted += 1
            elif linger:
                self._refused_lingering += 1
            connection = Connection(self, sock, client, now, admitted)
            if admitted or linger:
                self.channels[connection.fd] = connection
        if admitted:
            return connection, Interest.READ
        self._refusals.note(self.limits.max_connections)
        return connection, connection.refuse(now, linger)

    def release(self, connection: Connection) -> None:
        """Forget a connection that is closing (before its descriptor is closed and reused)."""
        with self._count_lock:
            if self.channels.get(connection.fd) is not connection:
                return  # refused without lingering: never counted
            del self.channels[connection.fd]
            if connection.admitted:
                self._admitted -= 1
            else:
                self._refused_lingering -= 1


class _RefusalLog:
    """One warning per ten seconds about connections refused over the cap, with a count."""

    def __init__(self) -> None:
        self._count = 0
        self._since = 0.0

    def note(self, cap: int) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._since >= 10.0:
            LOGGER.warning("refused %d connection(s) over the cap of %d", self._count, cap)
            self._count, self._since = 0, now


def _ensure_descriptors(needed: int) -> None:
    """Raise the soft limit on open files so the connection cap can be reached."""
    try:
        import resource
    except ImportError:  # not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        LOGGER.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
        return
    if target < needed:
        LOGGER.warning("open-file limit %d: fewer connections than the cap can be open", target)
