"""The HTTP gateway over raw sockets, against a small Chalice app: HTTP/1.1 framing,
keep-alive, the proxy event each view receives, and the paths LocalGateway still serves."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator

import pytest
from chalice.app import Chalice, Response
from chalice.local import LocalGateway

from local_runtime.gateway import GatewayServer, serve


def _app() -> Chalice:
    app = Chalice(app_name="gateway-test")

    @app.route("/echo", methods=["GET", "POST"], content_types=["application/json", "text/plain"])
    def echo() -> dict[str, object]:
        request = app.current_request
        return {
            "method": request.method,
            "query": request.query_params,
            "body": request.raw_body.decode() if request.raw_body else None,
            "headers": {k: v for k, v in request.headers.items() if k.startswith("x-")},
            "context": {
                "resourcePath": request.context["resourcePath"],
                "path": request.context["path"],
                "sourceIp": request.context["identity"]["sourceIp"],
            },
        }

    @app.route("/items/{item}", cors=True)
    def item(item: str) -> Response:
        return Response({"item": item}, headers={"Set-Cookie": ["a=1", "b=2"]})

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[GatewayServer]:
    running, _ = serve(_app(), port=0)
    yield running
    running.shutdown()
    running.server_close()


class Client:
    def __init__(self, server: GatewayServer) -> None:
        self.sock = socket.create_connection(server.server_address[:2], timeout=5)
        self.file = self.sock.makefile("rb")

    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        status = int(self.file.readline().split()[1])
        headers: dict[str, str] = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            key = name.lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        body = self.file.read(int(headers.get("content-length", 0)))
        return status, headers, body

    def closed(self) -> bool:
        return self.file.read(1) == b""


def test_keep_alive_carries_pipelined_requests(server):
    client = Client(server)
    client.send(
        b"GET /echo?a=1&a=2&b= HTTP/1.1\r\nHost: x\r\nX-One: 1\r\n\r\n"
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 7\r\n\r\n{"k":1}'
    )
    status, headers, body = client.response()
    first = json.loads(body)
    assert status == 200 and headers["content-type"] == "application/json"
    assert first["query"] == {"a": "2", "b": ""}  # Chalice keeps the last of repeated values
    assert first["headers"] == {"x-one": "1"}
    assert first["context"] == {"resourcePath": "/echo", "path": "/echo", "sourceIp": "127.0.0.1"}
    status, _, body = client.response()
    assert (status, json.loads(body)["body"]) == (200, '{"k":1}')


def test_path_parameters_trailing_slash_and_multi_value_headers(server):
    client = Client(server)
    client.send(b"GET /items/42/ HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = client.response()
    assert (status, json.loads(body)) == (200, {"item": "42"})
    assert headers["set-cookie"] == "a=1, b=2"


def test_http_1_0_closes_unless_keep_alive_is_asked_for(server):
    client = Client(server)
    client.send(b"GET /echo HTTP/1.0\r\n\r\n")
    status, headers, _ = client.response()
    assert status == 200 and headers["connection"] == "close" and client.closed()
    client = Client(server)
    client.send(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" * 2)
    assert client.response()[0] == client.response()[0] == 200


def test_connection_close_is_honoured(server):
    client = Client(server)
    client.send(b"GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert client.response()[0] == 200 and client.closed()


def test_expect_100_continue_then_the_body(server):
    client = Client(server)
    client.send(
        b"POST /echo HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    assert client.file.readline().startswith(b"HTTP/1.1 100")
    assert client.file.readline() == b"\r\n"
    client.send(b"hello")
    status, _, body = client.response()
    assert (status, json.loads(body)["body"]) == (200, "hello")


def test_chunked_body_is_reassembled(server):
    client = Client(server)
    client.send(
        b"POST /echo HTTP/1.1\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\n\r\n"
    )
    status, _, body = client.response()
    assert (status, json.loads(body)["body"]) == (200, "abcdefg")


@pytest.mark.parametrize(
    "head",
    [
        b"POST /echo HTTP/1.1\r\nContent-Length: 20000\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5000\r\n" + b"x" * 0x5000,
    ],
)
def test_bodies_over_the_limit_get_413_and_the_connection_closes(server, head):
    client = Client(server)
    client.send(head)
    status, headers, body = client.response()
    assert (status, json.loads(body)["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert headers["connection"] == "close"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /echo HTTP/2.0\r\n\r\n", 505),
        (b"GET /echo HTTP/1.1\r\nContent-Length: -3\r\n\r\n", 400),
        (b"GET /echo HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET /echo HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431),
    ],
)
def test_malformed_requests_get_a_json_error_and_a_closed_connection(server, raw, status):
    client = Client(server)
    client.send(raw)
    got, _, body = client.response()
    assert (got, json.loads(body)["code"]) == (status, "BAD_REQUEST")
    assert client.closed()


def test_undeclared_methods_get_405_with_allow(server):
    client = Client(server)
    client.send(b"DELETE /echo HTTP/1.1\r\n\r\nTRACE /items/1 HTTP/1.1\r\n\r\n")
    status, headers, body = client.response()
    assert (status, headers["allow"]) == (405, "GET, POST")
    assert json.loads(body)["code"] == "METHOD_NOT_ALLOWED"
    assert client.response()[0] == 405


def test_head_answers_headers_only(server):
    client = Client(server)
    client.send(b"HEAD /items/7 HTTP/1.1\r\n\r\nGET /items/8 HTTP/1.1\r\n\r\n")
    status_line = client.file.readline()
    headers = {}
    while (line := client.file.readline()) != b"\r\n":
        name, _, value = line.decode().partition(":")
        headers[name.lower()] = value.strip()
    assert b"200" in status_line and int(headers["content-length"]) > 0
    status, _, body = client.response()  # the next response follows at once: no body was sent
    assert (status, json.loads(body)) == (200, {"item": "8"})


def test_unknown_paths_and_cors_preflight_behave_as_chalice_local(server):
    client = Client(server)
    client.send(b"GET /nowhere HTTP/1.1\r\n\r\nOPTIONS /items/1 HTTP/1.1\r\n\r\n")
    status, headers, body = client.response()
    assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})
    assert headers["x-amzn-errortype"] == "UnauthorizedException"
    status, headers, _ = client.response()
    assert status == 200 and "GET" in headers["access-control-allow-methods"]


def test_the_event_matches_what_local_gateway_builds():
    app = _app()
    server = GatewayServer(("127.0.0.1", 0), app)
    seen: list[dict[str, object]] = []
    original = type(app).__call__

    def capture(self: Chalice, event: dict[str, object], context: object) -> object:
        seen.append(event)
        return original(self, event, context)

    try:
        type(app).__call__ = capture  # type: ignore[method-assign]
        headers = {"host": "x", "content-type": "application/json"}
        server.respond("POST", "/echo?x=1&x=2", headers, b"{}", "127.0.0.1")
        LocalGateway(app, server.config).handle_request("POST", "/echo?x=1&x=2", headers, b"{}")
    finally:
        type(app).__call__ = original  # type: ignore[method-assign]
        server.server_close()
    ours, theirs = seen
    assert ours == theirs


def test_the_context_has_what_chalice_locals_lambda_context_has():
    from chalice.local import LambdaContext

    from local_runtime.gateway import GatewayContext

    theirs = LambdaContext("api", 512, max_runtime_ms=30_000)
    ours = GatewayContext("api", 512, 30_000)
    public = {name for name in vars(theirs) if not name.startswith("_")}
    for name in public - {"aws_request_id"}:
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.aws_request_id == ours.aws_request_id  # drawn once, then kept
    assert str(uuid.UUID(ours.aws_request_id)) == ours.aws_request_id
    assert ours.aws_request_id != GatewayContext("api", 512, 30_000).aws_request_id
    assert 29_000 < ours.get_remaining_time_in_millis() <= 30_000


def test_a_silent_keep_alive_connection_is_closed_after_the_idle_limit():
    import threading

    server = GatewayServer(("127.0.0.1", 0), _app(), idle_timeout=1)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = Client(server)
        client.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.response()[0] == 200
        stalled = Client(server)
        stalled.send(b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Half")  # stops inside a header
        assert client.closed() and stalled.closed()  # each within about a second
        fresh = Client(server)
        fresh.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert fresh.response()[0] == 200  # the server itself is unaffected
    finally:
        server.shutdown()
        server.server_close()
