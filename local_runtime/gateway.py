"""Serves a Chalice app over HTTP the way API Gateway's proxy integration invokes it.

Chalice's own LocalGateway translates requests into proxy events. Around it: a threaded
HTTP/1.1 server with keep-alive, TCP_NODELAY on every connection and each response written
in one send, so a client on one keep-alive connection is never held up by Nagle's algorithm
and delayed ACKs (the cause of stock `chalice local`'s ~23 requests/s on such a client).
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import LocalGateway, LocalGatewayException, RouteMatcher

LOGGER = logging.getLogger(__name__)
API_DIR = Path(__file__).resolve().parent.parent / "functions" / "api"
MAX_BODY_BYTES = 16 * 1024  # the API's own limit; larger bodies are refused before reading
TOO_LARGE = b'{"code":"PAYLOAD_TOO_LARGE","message":"body is larger than the limit of 16384 bytes"}'


def load_app(directory: Path = API_DIR, module: str = "app") -> Chalice:
    """Import a Chalice project's app.py with its folder first on sys.path, as Lambda would."""
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: GatewayServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # `format`: stdlib's signature
        LOGGER.debug("%s %s", self.address_string(), format % args)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(413, {"Content-Type": "application/json", "Connection": "close"}, TOO_LARGE)
            return
        body = self.rfile.read(length) if length else None
        method = "GET" if self.command == "HEAD" else self.command
        allowed = self.server.allowed_methods(self.path)
        if allowed and method not in allowed and method != "OPTIONS":
            self._send(405, {"Allow": ", ".join(sorted(allowed))}, _not_allowed(method, allowed))
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            response = self.server.gateway.handle_request(method, self.path, headers, body)
        except LocalGatewayException as exc:
            self._send(exc.CODE, dict(exc.headers), exc.body or b"")
            return
        out_headers: dict[str, Any] = dict(response.get("headers") or {})
        out_headers.update(response.get("multiValueHeaders") or {})
        payload = response.get("body") or b""
        if response.get("isBase64Encoded"):
            payload = base64.b64decode(payload)
        elif isinstance(payload, str):
            payload = payload.encode()
        self._send(int(response["statusCode"]), out_headers, payload)

    def _send(self, status: int, headers: dict[str, Any], body: bytes) -> None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        lines = [f"HTTP/1.1 {status} {reason}"]
        headers.setdefault("Content-Type", "application/json")
        headers["Content-Length"] = str(len(body))
        for name, value in headers.items():
            for item in value if isinstance(value, list) else [value]:
                lines.append(f"{name}: {item}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + (b"" if self.command == "HEAD" else body))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _handle

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, QUERY, ...) gets the same treatment: 405 with Allow.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)


def _not_allowed(method: str, allowed: set[str]) -> bytes:
    message = f"{method} is not allowed here; use {' or '.join(sorted(allowed))}"
    return json.dumps({"code": "METHOD_NOT_ALLOWED", "message": message}).encode()


class GatewayServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(
        self, address: tuple[str, int], app: Chalice, timeout: int = 30, memory: int = 512
    ) -> None:
        config = Config.create(
            chalice_stage="local",
            app_name=app.app_name,
            lambda_timeout=timeout,
            lambda_memory_size=memory,
        )
        self.gateway = LocalGateway(per_thread_request_state(app), config)
        self._routes = {path: set(methods) for path, methods in app.routes.items()}
        self._matcher = RouteMatcher(list(app.routes))
        super().__init__(address, _Handler)

    def allowed_methods(self, path: str) -> set[str]:
        """The methods the app defines for the route matching path; empty when none matches."""
        exact = self._routes.get(path.split("?", 1)[0])
        if exact is not None:
            return exact
        try:
            route = self._matcher.match_route(path).route
        except ValueError:
            return set()
        return self._routes.get(route, set())


def serve(
    app: Chalice, host: str = "127.0.0.1", port: int = 8000
) -> tuple[GatewayServer, threading.Thread]:
    """Start serving in a background thread; call server.shutdown() to stop."""
    server = GatewayServer((host, port), app)
    thread = threading.Thread(target=server.serve_forever, name="api-gateway", daemon=True)
    thread.start()
    LOGGER.info("API listening on http://%s:%d", host, server.server_address[1])
    return server, thread
