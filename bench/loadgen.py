"""The load generator: raw HTTP/1.1 keep-alive requests over asyncio streams.

It runs on uvloop when installed (a dev dependency): the generator shares the machine's cores
with the system it measures, and uvloop roughly halves its CPU per request.

Each client owns one connection and sends its next request as soon as the previous answer
is read (closed loop), or at its slot of a fixed schedule when a rate is given (open loop,
so a slow answer does not lower the offered load as long as other clients are free).

`python -m bench.loadgen serve` runs a trivial asyncio HTTP server that answers every
request at once; measuring the client against it gives the client's own ceiling.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

READ_LIMIT = 1 << 20


class ProtocolError(Exception):
    """The server answered something this client does not parse."""


class Connection:
    """One keep-alive HTTP/1.1 connection; reopened after errors or `Connection: close`."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.opened = 0

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, limit=READ_LIMIT
        )
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.opened += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self._open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1."):
            raise ProtocolError(f"not an HTTP response: {head[:40]!r}")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            end = lower.index(b"\r\n", at + 2)
            length = int(head[at + 17 : end])
            body = await self.reader.readexactly(length) if length else b""
            if b"\r\nconnection: close" in lower:
                self.close()
        elif b"\r\ntransfer-encoding: chunked" in lower:
            raise ProtocolError("chunked responses are not supported")
        else:
            body = await self.reader.read()
            self.close()
        return status, body


def post(host: str, path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def get(host: str, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


@dataclass
class LoadResult:
    """Every request of one load run; times are wall-clock seconds, latencies seconds."""

    concurrency: int
    started: float = 0.0  # wall time of the first send
    finished: float = 0.0  # wall time of the last answer
    window: tuple[float, float] = (0.0, 0.0)  # measured window (wall), after warm-up
    sent: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    fresh: list[bool] = field(default_factory=list)  # first request on a newly opened connection
    errors: Counter[str] = field(default_factory=Counter)
    connections_opened: int = 0

    @property
    def count(self) -> int:
        return len(self.status)

    def ok(self, expected: int) -> int:
        return sum(1 for s in self.status if s == expected)

    def rate_in_window(self) -> float:
        """Answers completed inside the measured window, per second."""
        low, high = self.window
        done = sum(
            1 for s, lat in zip(self.sent, self.latency, strict=True) if low <= s + lat <= high
        )
        return done / (high - low) if high > low else 0.0


async def drive(
    host: str,
    port: int,
    build: Callable[[int], bytes],
    concurrency: int,
    total: int | None = None,
    duration: float | None = None,
    warmup: float = 0.0,
    rate: float | None = None,
    keep_bodies: bool = False,
    timeout: float = 30.0,
) -> LoadResult:
    """Send `total` requests, or keep sending for `warmup + duration` seconds."""
    if total is None and duration is None:
        raise ValueError("give total or duration")
    result = LoadResult(concurrency)
    counter = 0
    t0 = time.perf_counter()
    wall0 = time.time()
    stop_at = None if duration is None else t0 + warmup + duration
    result.started = wall0
    result.window = (wall0 + warmup, wall0 + warmup + (duration or 0.0))

    def claim() -> int | None:
        nonlocal counter
        if total is not None and counter >= total:
            return None
        if stop_at is not None and time.perf_counter() >= stop_at:
            return None
        counter += 1
        return counter - 1

    async def client() -> None:
        conn = Connection(host, port)
        perf = time.perf_counter
        try:
            while (index := claim()) is not None:
                if rate:
                    delay = t0 + index / rate - perf()
                    if delay > 0:
                        await asyncio.sleep(delay)
                raw = build(index)
                opened = conn.opened
                began = perf()
                try:
                    async with asyncio.timeout(timeout):
                        status, body = await conn.request(raw)
                except (
                    OSError,
                    EOFError,
                    TimeoutError,
                    ValueError,
                    ProtocolError,
                    asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError,
                ) as exc:
                    result.errors[type(exc).__name__] += 1
                    conn.close()
                    status, body = 0, b""
                ended = perf()
                result.sent.append(wall0 + (began - t0))
                result.latency.append(ended - began)
                result.status.append(status)
                result.fresh.append(conn.opened != opened)
                if keep_bodies:
                    result.bodies.append(body)
        finally:
            result.connections_opened += conn.opened
            conn.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    result.finished = wall0 + (time.perf_counter() - t0)
    if duration is None:
        result.window = (result.started, result.finished)
    return result


def event_loop_runner() -> asyncio.Runner:
    """An asyncio runner on uvloop when it is installed, else on the default event loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def run(*args: object, **kwargs: object) -> LoadResult:
    with event_loop_runner() as runner:
        return runner.run(drive(*args, **kwargs))  # type: ignore[arg-type]


# --- the trivial server, for the client's ceiling -------------------------------------------

TRIVIAL_BODY = b'{"ticket":"00000000-0000-4000-8000-000000000000","status":"PENDING"}'
TRIVIAL_RESPONSE = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(TRIVIAL_BODY)).encode() + b"\r\n\r\n" + TRIVIAL_BODY
)


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                end = lower.index(b"\r\n", at + 2)
                length = int(head[at + 17 : end])
                if length:
                    await reader.readexactly(length)
            writer.write(TRIVIAL_RESPONSE)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve(host: str, port: int) -> None:
    server = await asyncio.start_server(_answer, host, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"READY {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> None:
    if argv[:1] != ["serve"]:
        print("usage: python -m bench.loadgen serve [PORT]", file=sys.stderr)
        raise SystemExit(2)
    port = int(argv[1]) if len(argv) > 1 else 0
    with contextlib.suppress(KeyboardInterrupt), event_loop_runner() as runner:
        runner.run(_serve("127.0.0.1", port))


if __name__ == "__main__":
    main(sys.argv[1:])
