"""API Gateway in front of functions whose template routes requests to them (SAM `Api`, `HttpApi`).

A request is matched to the template's routes as API Gateway matches them (an exact path
before one with `{parameters}`, before a greedy `{proxy+}`; a method before `ANY`), becomes
the proxy event of its API's kind (REST, payload 1.0; HTTP API, payload 2.0), and is handed to
an execution environment of its function: one request at a time each, as on Lambda, with more
started while requests overlap. The result is turned back into HTTP; a function error is a 502
`{"message": "Internal server error"}` and a timeout a 504, as API Gateway answers. A Chalice
app among the functions is served in this process by its own proxy (see `gateway`).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from declarations.model import Function, Route
from local_runtime.environment import ExecutionEnvironment, InvocationFailed, Site
from local_runtime.http11 import Request, Response

MAX_ENVIRONMENTS = 16  # per function; a request beyond them waits for one to free up
INTERNAL_ERROR = b'{"message": "Internal server error"}'
TIMED_OUT = b'{"message": "Endpoint request timed out"}'
NOT_FOUND = b'{"message":"Missing Authentication Token"}'  # what API Gateway says, really


@dataclass(frozen=True)
class _Pattern:
    route: Route
    regex: re.Pattern[str]
    rank: tuple[int, int]  # lower first: (kind of path, ANY method)

    @classmethod
    def of(cls, route: Route) -> _Pattern:
        parts, kind = [], 0
        for segment in route.path.strip("/").split("/") if route.path != "/" else []:
            greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
            named = re.fullmatch(r"\{(\w+)\}", segment)
            if greedy:
                parts.append(f"(?P<{greedy.group(1)}>.+)")
                kind = 2
            elif named:
                parts.append(f"(?P<{named.group(1)}>[^/]+)")
                kind = max(kind, 1)
            else:
                parts.append(re.escape(segment))
        regex = re.compile("^/" + "/".join(parts) + "$")
        return cls(route, regex, (kind, route.method == "ANY"))


@dataclass
class _Pool:
    """A function's execution environments: each serves one request at a time."""

    function: Function
    site: Site
    idle: list[ExecutionEnvironment] = field(default_factory=list)
    started: int = 0
    ready: threading.Condition = field(default_factory=threading.Condition)

    def take(self) -> ExecutionEnvironment:
        with self.ready:
            while not self.idle and self.started >= MAX_ENVIRONMENTS:
                self.ready.wait()
            if self.idle:
                return self.idle.pop()
            self.started += 1
        return ExecutionEnvironment(self.function, site=self.site)

    def give_back(self, environment: ExecutionEnvironment) -> None:
        with self.ready:
            self.idle.append(environment)
            self.ready.notify()

    def stop(self) -> None:
        with self.ready:
            for environment in self.idle:
                environment.stop()
            self.idle.clear()


class FunctionRoutes:
    """The responder for an API of template routes; `chalice` answers its own function's."""

    def __init__(
        self,
        routes: list[tuple[Route, Function]],
        site: Site,
        chalice: Callable[[Request], Response] | None = None,
        chalice_function: str | None = None,
    ) -> None:
        self._patterns = sorted((_Pattern.of(route) for route, _ in routes), key=lambda p: p.rank)
        self._pools = {
            function.logical_id: _Pool(function, site)
            for route, function in routes
            if function.logical_id != chalice_function
        }
        self._site = site
        self._chalice, self._chalice_function = chalice, chalice_function

    def __call__(self, request: Request) -> Response:
        path, _, query = request.target.partition("?")
        method = "GET" if request.method == "HEAD" else request.method
        found = self._match(method, path)
        if found is None:
            return (
                403 if self._known(path) else 404,
                {"Content-Type": "application/json"},
                NOT_FOUND,
            )
        pattern, parameters = found
        route = pattern.route
        if route.function == self._chalice_function and self._chalice is not None:
            return self._chalice(request)
        event = (
            self._rest_event(request, route, path, query, parameters)
            if route.kind == "rest"
            else self._http_event(request, route, path, query, parameters)
        )
        return self._invoke(self._pools[route.function], event, route.kind)

    def stop(self) -> None:
        for pool in self._pools.values():
            pool.stop()

    def _match(self, method: str, path: str) -> tuple[_Pattern, dict[str, str]] | None:
        for pattern in self._patterns:
            if pattern.route.method not in (method, "ANY"):
                continue
            match = pattern.regex.match(path)
            if match:
                return pattern, {k: unquote(v) for k, v in match.groupdict().items()}
        return None

    def _known(self, path: str) -> bool:
        return any(pattern.regex.match(path) for pattern in self._patterns)

    def _invoke(self, pool: _Pool, event: dict[str, Any], kind: str) -> Response:
        environment = pool.take()
        try:
            invocation = environment.invoke(event)
        except InvocationFailed as failure:
            timed_out = failure.error_type == "Sandbox.Timedout"
            status, body = (504, TIMED_OUT) if timed_out else (502, INTERNAL_ERROR)
            return status, {"Content-Type": "application/json"}, body
        finally:
            pool.give_back(environment)
        try:
            result = json.loads(invocation.raw) if invocation.raw else None
        except ValueError:
            result = None
        return _response(result, kind)

    def _context(self, route: Route, path: str, method: str, client: str) -> dict[str, Any]:
        now = time.time()
        return {
            "accountId": self._site.account,
            "apiId": "local",
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(now * 1000),
            "identity": {"sourceIp": client},
            "httpMethod": method,
            "path": path,
            "resourcePath": route.path,
            "stage": "Prod",
            "protocol": "HTTP/1.1",
        }

    def _rest_event(
        self, request: Request, route: Route, path: str, query: str, parameters: dict[str, str]
    ) -> dict[str, Any]:
        multi_query = parse_qs(query, keep_blank_values=True) if query else None
        headers = {name.title(): value for name, value in request.headers.items()}
        body, encoded = _body(request)
        return {
            "resource": route.path,
            "path": path,
            "httpMethod": request.method,
            "headers": headers or None,
            "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
            "queryStringParameters": {k: v[-1] for k, v in multi_query.items()}
            if multi_query
            else None,
            "multiValueQueryStringParameters": multi_query,
            "pathParameters": parameters or None,
            "stageVariables": None,
            "requestContext": self._context(route, path, request.method, request.client),
            "body": body,
            "isBase64Encoded": encoded,
        }

    def _http_event(
        self, request: Request, route: Route, path: str, query: str, parameters: dict[str, str]
    ) -> dict[str, Any]:
        now = time.time()
        body, encoded = _body(request)
        multi_query = parse_qs(query, keep_blank_values=True) if query else {}
        route_key = f"{route.method} {route.path}" if route.method != "ANY" else f"ANY {route.path}"
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": path,
            "rawQueryString": query,
            "headers": dict(request.headers),
            "requestContext": {
                "accountId": self._site.account,
                "apiId": "local",
                "domainName": request.headers.get("host", "localhost"),
                "http": {
                    "method": request.method,
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": request.client,
                    "userAgent": request.headers.get("user-agent", ""),
                },
                "requestId": str(uuid.uuid4()),
                "routeKey": route_key,
                "stage": "$default",
                "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "timeEpoch": int(now * 1000),
            },
            "isBase64Encoded": encoded,
        }
        if multi_query:
            event["queryStringParameters"] = {k: ",".join(v) for k, v in multi_query.items()}
        if parameters:
            event["pathParameters"] = parameters
        if body is not None:
            event["body"] = body
        return event


def _body(request: Request) -> tuple[str | None, bool]:
    if not request.body:
        return None, False
    try:
        return request.body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(request.body).decode("ascii"), True


def _response(result: Any, kind: str) -> Response:
    """A proxy integration's result as HTTP. HTTP APIs (payload 2.0) also take a bare value:
    any JSON without a statusCode is a 200 with that value as a JSON body."""
    if not (isinstance(result, dict) and "statusCode" in result):
        if kind == "http" and result is not None:
            return 200, {"Content-Type": "application/json"}, json.dumps(result).encode()
        return 502, {"Content-Type": "application/json"}, INTERNAL_ERROR
    headers: dict[str, Any] = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[str(name)] = [str(value) for value in values]
    if kind == "http" and result.get("cookies"):
        headers["Set-Cookie"] = [str(cookie) for cookie in result["cookies"]]
    body = result.get("body") or ""
    payload = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    return int(result["statusCode"]), headers, payload
