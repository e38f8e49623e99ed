"""Serves a Chalice app over HTTP the way API Gateway's proxy integration invokes it.

Each request becomes the REST API proxy event Chalice's own LocalGateway builds (same keys,
same route matching), and the app is called with it and a lean Lambda context; any method the
route does not define is answered 405 with `Allow`. Routes with an authorizer, CORS preflights
and unknown paths go through Chalice's LocalGateway itself, so they behave exactly as under
`chalice local`. HTTP itself is `http_server`'s: llhttp's strict framing (`http11`), a fixed
pool of threads (`http_dispatch`), deadlines and a connection cap.

The parser is httptools (Node's llhttp), not h11. Measured on this 2-core host, alternating
the candidates (medians; `python -m bench.gateway --parse --old DIR` and
`python -m bench.gateway --old DIR --rounds 10 --variants httptools,h11,old`, DIR an export of
the commit before, whose hand-written parser read a buffered socket file):

    framing one request, us           poll GET   POST   browser GET (10 fields)
    httptools (what we keep)              2.07   3.43   5.03
    h11                                  28.3   35.7   39.9
    hand-written, before                  2.18   3.14   4.93   (0.6 of it its reader's set-up)

    a cached GET through the gateway   1 connection          16 connections
    httptools                          9,892 req/s, 49.8 us  12,322 req/s, 60.8 us CPU
    h11 (the same server)              5,978 req/s, 106 us   6,934 req/s, 114 us CPU
    before                             9,260 req/s, 49.1 us  13,175 req/s, 60.4 us CPU

llhttp frames a request for what the hand-written parser cost, while refusing everything it
let through; h11, pure Python, doubles the CPU of a whole request. On the real app, API-only
processes polled alternately (6 rounds each), the gateway matched the one before: 7,982 against
7,981 req/s on 1 connection and 11,422 against 11,337 on 16, at 72 against 68 and 95 against
95 us of CPU per request; end to end at 16 clients (4 interleaved runs of 5,000 tickets) the
API process spent 0.335 against 0.350 ms of CPU per ticket.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import LocalGateway, LocalGatewayException, RouteMatcher

from declarations.model import Function
from local_runtime.http11 import Limits, Request, Response
from local_runtime.http_dispatch import Dispatcher, default_dispatcher
from local_runtime.http_server import HttpServer, Responder

LOGGER = logging.getLogger(__name__)
REQUEST_THREADS = 64  # the pool that serves every connection: at most this many requests at once


def load_app(directory: Path, module: str = "app", attribute: str = "app") -> Chalice:
    """Import a Chalice project's app with its folder first on sys.path, as Lambda would;
    refuses a handler that is not a Chalice app."""
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    app = getattr(importlib.import_module(module.replace("/", ".")), attribute)
    if not isinstance(app, Chalice):
        raise TypeError(f"{module}.{attribute} in {directory} is not a Chalice app")
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


def _not_allowed(method: str, allowed: set[str]) -> bytes:
    message = f"{method} is not allowed here; use {' or '.join(sorted(allowed))}"
    return json.dumps({"code": "METHOD_NOT_ALLOWED", "message": message}).encode()


class ChaliceProxy:
    """A Chalice app as API Gateway's proxy integration: `Request` in, `Response` out."""

    def __init__(self, app: Chalice, timeout: int = 30, memory: int = 512) -> None:
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

    def respond(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None, client: str
    ) -> Response:
        """Answer one request (origin-form target) as API Gateway would."""
        return self(Request(method, target, headers, body or b"", True, client))

    def __call__(self, request: Request) -> Response:
        method, target, headers, client = (
            request.method,
            request.target,
            request.headers,
            request.client,
        )
        body = request.body or None
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
            "multiValueQueryStringParameters": multi_value_query(query) if query else None,
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


def multi_value_query(query: str) -> dict[str, list[str]]:
    """`parse_qs(query, keep_blank_values=True)`, at a sixth of its cost for the common single
    plain pair (`ticket=<uuid>`: 0.17 against 1.15 us), which it parses the same way."""
    if "&" in query or "%" in query or "+" in query:
        return parse_qs(query, keep_blank_values=True)
    name, _, value = query.partition("=")
    return {name: [value]}


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


class GatewayServer(HttpServer):
    """The HTTP server in front of a Chalice app (see `HttpServer` for the arguments)."""

    def __init__(
        self,
        address: tuple[str, int],
        app: Chalice,
        timeout: int = 30,
        memory: int = 512,
        limits: Limits | None = None,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self.proxy = ChaliceProxy(app, timeout, memory)
        self.app, self.config = self.proxy.app, self.proxy.config
        super().__init__(address, self.proxy, limits, dispatcher)

    def respond(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None, client: str
    ) -> Response:
        return self.proxy.respond(method, target, headers, body, client)


def serve(
    app: Chalice,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: Limits | None = None,
    dispatcher: Dispatcher | None = None,
    function: Function | None = None,
) -> tuple[GatewayServer, threading.Thread]:
    """Start serving in a background thread; call server.shutdown() to stop. `function` is
    the declaration the app runs as (its timeout and memory go into each request's context)."""
    declared = (
        {} if function is None else {"timeout": function.timeout, "memory": function.memory_size}
    )
    server = GatewayServer(
        (host, port),
        app,
        limits=limits,
        dispatcher=dispatcher or default_dispatcher(REQUEST_THREADS),
        **declared,
    )
    thread = threading.Thread(target=server.serve_forever, name="api-gateway", daemon=True)
    thread.start()
    LOGGER.info("API listening on http://%s:%d", host, server.server_address[1])
    return server, thread


def serve_routes(
    responder: Responder, host: str, port: int, limits: Limits | None = None
) -> HttpServer:
    """Serve any responder (a template's routes) in a background thread, as serve() does."""
    server = HttpServer((host, port), responder, limits, default_dispatcher(REQUEST_THREADS))
    threading.Thread(target=server.serve_forever, name="api-gateway", daemon=True).start()
    LOGGER.info("API listening on http://%s:%d", host, server.server_address[1])
    return server
