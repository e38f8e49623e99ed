"""The gateway alone: HTTP parse cost per request, and cached GETs through the whole gateway.

No services: each variant serves a small Chalice app (a GET that answers a ticket-sized JSON
view from memory, like the API's poll of a decided ticket) from a process of its own, and the
load generator drives them in interleaved rounds, so the host's drift falls on all alike.

    python -m bench.gateway [--seconds 3] [--rounds 5] [--old DIR] [--variants ...]
    python -m bench.gateway --parse [--old DIR]

Variants: `httptools` (the gateway as shipped), `h11` (the same server framing requests with
h11), `selector` (the portable dispatcher), `old` (the code in DIR, e.g. an export of the
commit before, run with DIR first on sys.path). Reported per variant and connection count:
requests/s and the server's CPU per request (user + system, from /proc via psutil).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import io
import os
import statistics
import subprocess
import sys
import time
import timeit
from collections import deque
from pathlib import Path
from typing import Any

from bench import loadgen

HOST = "127.0.0.1"
TICKET = "6826e88b-dc6d-4c27-b480-eb529511357c"
GET = f"GET /credit-validation?ticket={TICKET} HTTP/1.1\r\nHost: {HOST}:8000\r\n\r\n".encode()
POST = (
    f"POST /credit-request HTTP/1.1\r\nHost: {HOST}:8000\r\nContent-Type: application/json\r\n"
    "Content-Length: 28\r\n\r\n"
).encode() + b'{"age": 20, "value": 100000}'
BROWSER = (
    f"GET /credit-validation?ticket={TICKET} HTTP/1.1\r\nHost: {HOST}:8000\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-GB,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\n"
    "Connection: keep-alive\r\nCookie: a=1; b=2\r\nCache-Control: max-age=0\r\n\r\n"
).encode()
VIEW = {
    "ticket": TICKET,
    "status": "APPROVED",
    "rules": {
        "age": {"status": "PASSED", "reason": "age 20 is at least the minimum 18"},
        "value": {"status": "PASSED", "reason": "value 100000 is at most the maximum 100000"},
    },
    "created_at": "2026-11-27T07:39:38.788Z",
    "decided_at": "2026-11-27T07:39:39.535Z",
}
VARIANTS = ("httptools", "h11", "selector", "old")


def small_app() -> Any:
    from chalice.app import Chalice

    app = Chalice(app_name="bench-gateway")

    @app.route("/credit-validation")
    def view() -> dict[str, Any]:
        return VIEW

    return app


# --- h11, framing requests for the same server ------------------------------------------------


def h11_reader() -> Any:
    """A `RequestReader` over h11, for comparison only (h11 is a dev dependency).

    h11 lets the next request in only once the server has sent its response through h11, so
    this reader runs a response through h11's state machine too, as a server built on h11
    would; the bytes sent are still the gateway's own.
    """
    import h11

    from local_runtime.http11 import Limits, Phase, ProtocolError, Request

    class H11Reader:
        def __init__(self, limits: Limits, client: str) -> None:
            self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head_bytes)
            self._client = client
            self._head: Any = None
            self._body: list[bytes] = []
            self.requests: deque[Request] = deque()
            self.phase = Phase.IDLE
            self.started = 0.0
            self.expects_continue = False
            self.trailing = False

        def feed(self, data: bytes, now: float) -> None:
            conn = self._conn
            conn.receive_data(data)
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as exc:
                    raise ProtocolError(exc.error_status_hint, "BAD_REQUEST", str(exc)) from None
                if isinstance(event, h11.Request):
                    self._head, self._body = event, []
                    self.phase, self.started = Phase.BODY, now
                elif isinstance(event, h11.Data):
                    self._body.append(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    self._complete()
                else:  # NEED_DATA, PAUSED, ConnectionClosed
                    return

        def _complete(self) -> None:
            head, conn = self._head, self._conn
            headers: dict[str, str] = {}
            for name, value in head.headers:
                key, text = name.decode("latin-1"), value.decode("latin-1")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
            conn.send(h11.Response(status_code=200, headers=[(b"content-length", b"0")]))
            conn.send(h11.EndOfMessage())
            keep_alive = conn.our_state is h11.DONE
            if keep_alive:
                conn.start_next_cycle()
            method, target = head.method.decode("ascii"), head.target.decode("latin-1")
            body = b"".join(self._body)
            self.requests.append(Request(method, target, headers, body, keep_alive, self._client))
            self.phase = Phase.IDLE

    return H11Reader


# --- the server processes -----------------------------------------------------------------------


def serve(variant: str, old: str | None = None) -> None:
    """Run one variant on a free port; print it; serve until stdin closes."""
    app = small_app()
    if variant == "old":
        assert old is not None
        sys.path.insert(0, old)  # ahead of the checkout `python -m` put first
        from local_runtime import gateway as old_gateway

        assert Path(old_gateway.__file__).is_relative_to(old), old_gateway.__file__

        server: Any = old_gateway.GatewayServer((HOST, 0), app)
    else:
        from local_runtime import gateway
        from local_runtime.http_dispatch import SelectorDispatcher

        kwargs: dict[str, Any] = {}
        if variant == "selector":
            kwargs["dispatcher"] = SelectorDispatcher()
        server = gateway.GatewayServer((HOST, 0), app, **kwargs)
        if variant == "h11":
            server.reader_factory = h11_reader()
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"READY {server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()


def _start(variant: str, old: Path | None) -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ)
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "bench.gateway", "serve", variant]
    if variant == "old" and old:
        command.append(str(old.resolve()))
    child = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line.startswith("READY"):
        raise RuntimeError(f"the {variant} gateway did not start")
    return child, int(line.split()[1])


def measure(variants: list[str], old: Path | None, seconds: float, rounds: int) -> None:
    import psutil

    servers = {variant: _start(variant, old) for variant in variants}
    rps: dict[tuple[str, int], list[float]] = {}
    cpu: dict[tuple[str, int], list[float]] = {}
    try:
        for index in range(rounds):
            for conns in (1, 16):
                for variant in variants if index % 2 == 0 else list(reversed(variants)):
                    child, port = servers[variant]
                    process = psutil.Process(child.pid)
                    before = process.cpu_times()
                    result = loadgen.run(HOST, port, lambda _: GET, conns, duration=seconds)
                    after = process.cpu_times()
                    if result.count != result.ok(200):
                        raise RuntimeError(f"{variant}: {result.count - result.ok(200)} errors")
                    used = (after.user - before.user) + (after.system - before.system)
                    rps.setdefault((variant, conns), []).append(result.rate_in_window())
                    cpu.setdefault((variant, conns), []).append(used / result.count * 1e6)
            print(f"round {index + 1}/{rounds} done", file=sys.stderr)
    finally:
        for child, _ in servers.values():
            assert child.stdin is not None
            child.stdin.close()
            child.wait(10)
    print(f"{'variant':10} {'conns':>5} {'req/s (median)':>15} {'runs':>40} {'CPU us/req':>11}")
    for (variant, conns), values in rps.items():
        runs = " / ".join(f"{v:,.0f}" for v in values)
        cost = statistics.median(cpu[(variant, conns)])
        print(f"{variant:10} {conns:5} {statistics.median(values):15,.0f} {runs:>40} {cost:11.1f}")


# --- parse cost ------------------------------------------------------------------------------


def parse_costs(old: Path | None, repeats: int = 25, number: int = 5000) -> None:
    """Microseconds to frame one request into (method, target, headers, body): the best of
    `repeats` timings, the candidates taking turns so that a busy moment hits them alike."""
    from local_runtime.http11 import HttptoolsReader, Limits

    limits = Limits()
    candidates: dict[str, Any] = {}
    ours = HttptoolsReader(limits, HOST)

    def httptools_parse(raw: bytes) -> object:
        ours.feed(raw, 0.0)
        return ours.requests.popleft()

    candidates["httptools"] = httptools_parse
    theirs = h11_reader()(limits, HOST)

    def h11_parse(raw: bytes) -> object:
        theirs.feed(raw, 0.0)
        return theirs.requests.popleft()

    candidates["h11"] = h11_parse
    if old is not None:
        candidates["hand-written (old)"] = _old_parser(old)
    print(f"{'request':12} {'parser':20} {'us/request':>10}")
    for name, raw in (("poll GET", GET), ("POST", POST), ("browser GET", BROWSER)):
        best = dict.fromkeys(candidates, float("inf"))
        for _ in range(repeats):
            for label, parse in candidates.items():
                took = timeit.timeit(functools.partial(parse, raw), number=number)
                best[label] = min(best[label], took / number * 1e6)
        for label, micros in best.items():
            print(f"{name:12} {label:20} {micros:10.2f}")


def _old_parser(old: Path) -> Any:
    spec = importlib.util.spec_from_file_location(
        "old_gateway", old / "local_runtime" / "gateway.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # It read from a buffered socket file; a BufferedReader over the bytes is the same calls
    # (its construction, about 0.6 us here, is included).

    def parse(raw: bytes) -> object:
        reader = io.BufferedReader(io.BytesIO(raw))
        method, target, _, headers = module._read_head(reader)
        length = module._content_length(headers)
        return method, target, headers, reader.read(length) if length else b""

    return parse


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve"]:
        serve(*args[1:3])
        return
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--old", type=Path, help="a checkout of the code before, for 'old'")
    parser.add_argument("--variants", default="httptools,h11,old")
    parser.add_argument("--parse", action="store_true", help="parse cost only")
    options = parser.parse_args(args)
    if options.parse:
        parse_costs(options.old)
        return
    variants = [v for v in options.variants.split(",") if v and (v != "old" or options.old)]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}")
    started = time.monotonic()
    measure(variants, options.old, options.seconds, options.rounds)
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
