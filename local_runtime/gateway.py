"""Serves a Chalice app over HTTP the way API Gateway's proxy integration invokes it.

Each request becomes the REST API proxy event Chalice's own LocalGateway builds (same keys,
same route matching), and the app is called with it and a Lambda context. The HTTP/1.1
server is lean on purpose, since the API's hot routes answer in tens of microseconds:

- one thread per connection, keep-alive, requests parsed straight from a buffered socket
  (no email-style header parser), `Expect: 100-continue` and chunked bodies understood;
- TCP_NODELAY and each response written in one send, so a client on one keep-alive
  connection is never held up by Nagle's algorithm and delayed ACKs (the cause of stock
  `chalice local`'s ~23 requests/s on such a client);
- bodies over the API's 16 KiB limit refused with 413 before they are read; any method the
  route does not define answered 405 with `Allow`.

Routes with an authorizer, CORS preflights and unknown paths go through Chalice's
LocalGateway itself, so they behave exactly as under `chalice local`.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
from http import HTTPStatus
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import parse_qs, urlsplit

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import LocalGateway, LocalGatewayException, RouteMatcher

from local_runtime.declaration import API_FOLDER, FUNCTIONS_DIR

LOGGER = logging.getLogger(__name__)
API_DIR = FUNCTIONS_DIR / API_FOLDER
MAX_BODY_BYTES = 16 * 1024  # the API's own limit; larger bodies are refused before reading
MAX_LINE_BYTES = 64 * 1024  # request line or one header line
MAX_HEADERS = 100
IDLE_TIMEOUT_SECONDS = 300.0  # a keep-alive connection silent this long is closed
TOO_LARGE = b'{"code":"PAYLOAD_TOO_LARGE","message":"body is larger than the limit of 16384 bytes"}'
REASONS = {status.value: status.phrase for status in HTTPStatus}

Response = tuple[int, dict[str, Any], bytes]


def load_app(directory: Path = API_DIR, module: str = "app") -> Chalice:
    """Import a Chalice project's app.py with its folder first on sys.path, as Lambda would."""
    directory = directory.resolve()
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    app: Chalice = importlib.import_module(module).app
    return app


def per_thread_request_state(app: Chalice) -> Chalice:
    """Give the app one `current_request` and `lambda_context` per thread.

    Chalice keeps the request being handled in attributes of the app object, which is right
    on Lambda (one request per process at a time) and wrong behind a threaded server: a
    request arriving meanwhile would overwrite them, and a view would read another client's
    body. Properties backed by thread-local storage keep each thread's own.
    """
    if getattr(type(app), "_per_thread_state", False):
        return app
    state = threading.local()

    def attribute(name: str) -> property:
        return property(
            lambda _: getattr(state, name, None),
            lambda _, value: setattr(state, name, value),
        )

    app.__class__ = type(
        f"PerThread{type(app).__name__}",
        (type(app),),
        {
            "_per_thread_state": True,
            "current_request": attribute("current_request"),
            "lambda_context": attribute("lambda_context"),
        },
    )
    return app


class GatewayContext:
    """The Lambda context chalice local passes, with the same attributes; the request id is
    drawn only when something reads it (a uuid4 per request was a tenth of a cached GET)."""

    function_version = "$LATEST"
    invoked_function_arn = ""
    log_group_name = ""
    log_stream_name = ""
    identity = None
    client_context = None

    def __init__(self, function_name: str, memory_size: int, max_runtime_ms: int) -> None:
        self.function_name = function_name
        self.memory_limit_in_mb = memory_size
        self._deadline_ms = time.time() * 1000 + max_runtime_ms
        self._request_id: str | None = None

    @property
    def aws_request_id(self) -> str:
        if self._request_id is None:
            self._request_id = str(uuid.uuid4())
        return self._request_id

    def get_remaining_time_in_millis(self) -> float:
        return self._deadline_ms - time.time() * 1000


class BadRequest(Exception):
    """The bytes on the wire are not an HTTP/1.x request we can answer; the connection ends."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class BodyTooLarge(Exception):
    """A chunked body grew past the API's limit."""


class _Connection(socketserver.BaseRequestHandler):
    """One client connection: read a request, answer it, repeat while keep-alive holds."""

    server: GatewayServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The kernel enforces the idle limit (SO_RCVTIMEO): a Python socket timeout would add
        # a poll() before every recv and send. A silent client's read then ends as EOF.
        idle = struct.pack("ll", self.server.idle_timeout, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, idle)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, idle)
        reader = cast(BinaryIO, sock.makefile("rb", buffering=65536))
        client = self.client_address[0] if self.client_address else "127.0.0.1"
        try:
            while self._one_request(sock, reader, client):
                pass
        except (ConnectionError, TimeoutError, BlockingIOError):  # gone, or silent too long
            return
        finally:
            reader.close()

    def _one_request(self, sock: socket.socket, reader: BinaryIO, client: str) -> bool:
        """Answer one request; False when the connection is to close."""
        try:
            request = _read_head(reader)
            if request is None:
                return False
            method, target, version, headers = request
            keep_alive = _keep_alive(version, headers)
            chunked = "chunked" in headers.get("transfer-encoding", "").lower()
            length = 0 if chunked else _content_length(headers)
            if length > MAX_BODY_BYTES:
                _write(sock, method, 413, {"Content-Type": "application/json"}, TOO_LARGE, False)
                return False
            if headers.get("expect", "").lower() == "100-continue" and version == "HTTP/1.1":
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = _read_chunked(reader) if chunked else reader.read(length) if length else b""
            if len(body) < length:
                return False  # the client went away mid-body
        except BadRequest as exc:
            payload = json.dumps({"code": "BAD_REQUEST", "message": str(exc)}).encode()
            _write(sock, "GET", exc.status, {"Content-Type": "application/json"}, payload, False)
            return False
        except BodyTooLarge:
            _write(sock, method, 413, {"Content-Type": "application/json"}, TOO_LARGE, False)
            return False
        try:
            status, out_headers, payload = self.server.respond(
                method, target, headers, body or None, client
            )
        except Exception:  # the server must outlive any request
            LOGGER.exception("%s %s failed in the gateway", method, target)
            status, out_headers = 500, {"Content-Type": "application/json"}
            payload = b'{"code":"INTERNAL_ERROR","message":"the gateway failed"}'
        _write(sock, method, status, out_headers, payload, keep_alive)
        return keep_alive


def _read_head(reader: BinaryIO) -> tuple[str, str, str, dict[str, str]] | None:
    line = reader.readline(MAX_LINE_BYTES + 1)
    while line in (b"\r\n", b"\n"):  # empty lines before a request are to be ignored
        line = reader.readline(MAX_LINE_BYTES + 1)
    if not line:
        return None
    if len(line) > MAX_LINE_BYTES:
        raise BadRequest(414, "request line too long")
    if not line.endswith(b"\n"):
        raise TimeoutError("the client stopped inside the request line")
    parts = line.decode("latin-1").split()
    if len(parts) != 3:
        raise BadRequest(400, f"malformed request line {line[:100]!r}")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(505, f"unsupported HTTP version {version[:20]!r}")
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        raw = reader.readline(MAX_LINE_BYTES + 1)
        if raw in (b"\r\n", b"\n"):
            return method, target, version, headers
        if not raw:
            raise ConnectionResetError("connection closed inside the request head")
        if len(raw) > MAX_LINE_BYTES:
            raise BadRequest(431, "request header fields too large")
        if not raw.endswith(b"\n"):
            raise TimeoutError("the client stopped inside the request head")
        name, colon, value = raw.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip():
            raise BadRequest(400, f"malformed header line {raw[:100]!r}")
        key, text = name.lower(), value.strip()
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    raise BadRequest(431, f"more than {MAX_HEADERS} header fields")


def _keep_alive(version: str, headers: dict[str, str]) -> bool:
    tokens = {token.strip() for token in headers.get("connection", "").lower().split(",")}
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


def _content_length(headers: dict[str, str]) -> int:
    raw = headers.get("content-length")
    if raw is None:
        return 0
    if not raw.isdigit():
        raise BadRequest(400, f"invalid Content-Length {raw[:40]!r}")
    return int(raw)


def _read_chunked(reader: BinaryIO) -> bytes:
    """A chunked body, refused (413) as soon as it grows past the API's limit."""
    body = bytearray()
    while True:
        size_line = reader.readline(MAX_LINE_BYTES + 1)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadRequest(400, "malformed chunk size") from None
        if size == 0:
            while reader.readline(MAX_LINE_BYTES + 1) not in (b"\r\n", b"\n", b""):
                pass  # trailers are read and dropped
            return bytes(body)
        if len(body) + size > MAX_BODY_BYTES:
            raise BodyTooLarge
        body += reader.read(size)
        reader.readline(MAX_LINE_BYTES + 1)  # the CRLF after the chunk


def _write(
    sock: socket.socket,
    method: str,
    status: int,
    headers: dict[str, Any],
    body: bytes,
    keep_alive: bool,
) -> None:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, '')}"]
    headers.setdefault("Content-Type", "application/json")
    headers["Content-Length"] = str(len(body))
    if not keep_alive:
        headers["Connection"] = "close"
    for name, value in headers.items():
        for item in value if isinstance(value, list) else (value,):
            lines.append(f"{name}: {item}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    sock.sendall(head if method == "HEAD" else head + body)


def _not_allowed(method: str, allowed: set[str]) -> bytes:
    message = f"{method} is not allowed here; use {' or '.join(sorted(allowed))}"
    return json.dumps({"code": "METHOD_NOT_ALLOWED", "message": message}).encode()


class GatewayServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up server_close()
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(
        self,
        address: tuple[str, int],
        app: Chalice,
        timeout: int = 30,
        memory: int = 512,
        idle_timeout: float = IDLE_TIMEOUT_SECONDS,
    ) -> None:
        self.idle_timeout = max(1, int(idle_timeout))  # whole seconds, as the kernel takes it
        self.app = per_thread_request_state(app)
        self.config = Config.create(
            chalice_stage="local",
            app_name=app.app_name,
            lambda_timeout=timeout,
            lambda_memory_size=memory,
        )
        self.gateway = LocalGateway(self.app, self.config)
        # Config's properties walk a chain of dicts on every read: read them once.
        self._function_name: str = self.config.function_name
        self._memory_size: int = self.config.lambda_memory_size
        self._max_runtime_ms = (
            self.config.lambda_timeout or LocalGateway.MAX_LAMBDA_EXECUTION_TIME
        ) * 1000
        self._routes = {path: set(methods) for path, methods in app.routes.items()}
        self._matcher = RouteMatcher(list(app.routes))
        self._binary_types = set(app.api.binary_types)
        # Routes LocalGateway must handle itself: the ones guarded by an authorizer.
        self._authorized = {
            path
            for path, entries in app.routes.items()
            if any(entry.authorizer is not None for entry in entries.values())
        }
        super().__init__(address, _Connection)

    def respond(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None, client: str
    ) -> Response:
        """Answer one request as API Gateway would: (status, headers, body)."""
        if target.startswith(("http://", "https://")):  # absolute form, as proxies send
            parts = urlsplit(target)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        method = "GET" if method == "HEAD" else method
        path, _, query = target.partition("?")
        if path != "/" and path.endswith("/"):
            path = path[:-1]  # API Gateway ignores a trailing slash
        route = path if path in self._routes else None
        captured: dict[str, str] = {}
        if route is None:
            try:
                match = self._matcher.match_route(target)
            except ValueError:
                return self._through_local_gateway(method, target, headers, body)
            route, captured = match.route, match.captured
        allowed = self._routes[route]
        if method == "OPTIONS" and "OPTIONS" not in allowed:
            return self._through_local_gateway(method, target, headers, body)
        if method not in allowed:
            return 405, {"Allow": ", ".join(sorted(allowed))}, _not_allowed(method, allowed)
        if route in self._authorized:
            return self._through_local_gateway(method, target, headers, body)
        event = {
            "requestContext": {
                "httpMethod": method,
                "resourcePath": route,
                "identity": {"sourceIp": client},
                "path": path,
            },
            "headers": headers,
            "pathParameters": captured,
            "stageVariables": {},
            "multiValueQueryStringParameters": (
                parse_qs(query, keep_blank_values=True) if query else None
            ),
            "body": body,
        }
        if body is not None and headers.get("content-type", "") in self._binary_types:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
        context = GatewayContext(self._function_name, self._memory_size, self._max_runtime_ms)
        return _translate(self.app(event, context))

    def _through_local_gateway(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None
    ) -> Response:
        try:
            response = self.gateway.handle_request(method, target, headers, body)
        except LocalGatewayException as exc:
            return exc.CODE, dict(exc.headers), exc.body or b""
        return _translate(response)


def _translate(response: dict[str, Any]) -> Response:
    """A proxy integration's result -> status, headers (multi-value ones as lists), body."""
    headers: dict[str, Any] = dict(response.get("headers") or {})
    headers.update(response.get("multiValueHeaders") or {})
    payload = response.get("body") or b""
    if response.get("isBase64Encoded"):
        payload = base64.b64decode(payload)
    elif isinstance(payload, str):
        payload = payload.encode()
    return int(response["statusCode"]), headers, payload


def serve(
    app: Chalice, host: str = "127.0.0.1", port: int = 8000
) -> tuple[GatewayServer, threading.Thread]:
    """Start serving in a background thread; call server.shutdown() to stop."""
    server = GatewayServer((host, port), app)
    thread = threading.Thread(target=server.serve_forever, name="api-gateway", daemon=True)
    thread.start()
    LOGGER.info("API listening on http://%s:%d", host, server.server_address[1])
    return server, thread
