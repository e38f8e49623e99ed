"""The HTTP gateway over raw sockets, against a small Chalice app: HTTP/1.1 framing,
keep-alive, the proxy event each view receives, and the paths LocalGateway still serves."""

from __future__ import annotations

import json
import selectors
import time
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
from chalice.app import Chalice
from chalice.local import LocalGateway
from hypothesis import given
from hypothesis import strategies as st

from local_runtime.gateway import GatewayServer, multi_value_query, serve
from local_runtime.http11 import Limits
from local_runtime.http_dispatch import EpollDispatcher, SelectorDispatcher
from tests.gateway.app import make_app
from tests.gateway.client import RawClient


@pytest.fixture(scope="module")
def server() -> Iterator[GatewayServer]:
    running, _ = serve(make_app(), port=0, limits=Limits(max_body_bytes=16 * 1024))
    yield running
    running.shutdown()
    running.server_close()


def connect(server: GatewayServer) -> RawClient:
    return RawClient(server.server_address)


def test_keep_alive_carries_pipelined_requests(server):
    client = connect(server)
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
    client = connect(server)
    client.send(b"GET /items/42/ HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = client.response()
    assert (status, json.loads(body)) == (200, {"item": "42"})
    assert headers["set-cookie"] == "a=1, b=2"


def test_http_1_0_closes_unless_keep_alive_is_asked_for(server):
    client = connect(server)
    client.send(b"GET /echo HTTP/1.0\r\n\r\n")
    status, headers, _ = client.response()
    assert status == 200 and headers["connection"] == "close" and client.closed()
    client = connect(server)
    client.send(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" * 2)
    assert client.response()[0] == client.response()[0] == 200


def test_connection_close_is_honoured(server):
    client = connect(server)
    client.send(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert client.response()[0] == 200 and client.closed()


def test_expect_100_continue_then_the_body(server):
    client = connect(server)
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    assert client.file.readline().startswith(b"HTTP/1.1 100")
    assert client.file.readline() == b"\r\n"
    client.send(b"hello")
    status, _, body = client.response()
    assert (status, json.loads(body)["body"]) == (200, "hello")


def test_chunked_body_is_reassembled(server):
    client = connect(server)
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\n\r\n"
    )
    status, _, body = client.response()
    assert (status, json.loads(body)["body"]) == (200, "abcdefg")


@pytest.mark.parametrize(
    "head",
    [
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5000\r\n"
        + b"x" * 0x5000,
    ],
)
def test_bodies_over_the_limit_get_413_and_the_connection_closes(server, head):
    client = connect(server)
    client.send(head)
    status, headers, body = client.response()
    assert (status, json.loads(body)["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert headers["connection"] == "close"


def test_undeclared_methods_get_405_with_allow(server):
    client = connect(server)
    client.send(
        b"DELETE /echo HTTP/1.1\r\nHost: x\r\n\r\nTRACE /items/1 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    status, headers, body = client.response()
    assert (status, headers["allow"]) == (405, "GET, POST")
    assert json.loads(body)["code"] == "METHOD_NOT_ALLOWED"
    assert client.response()[0] == 405


def test_head_answers_headers_only(server):
    client = connect(server)
    client.send(
        b"HEAD /items/7 HTTP/1.1\r\nHost: x\r\n\r\nGET /items/8 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    status_line = client.file.readline()
    headers = {}
    while (line := client.file.readline()) != b"\r\n":
        name, _, value = line.decode().partition(":")
        headers[name.lower()] = value.strip()
    assert b"200" in status_line and int(headers["content-length"]) > 0
    status, _, body = client.response()  # the next response follows at once: no body was sent
    assert (status, json.loads(body)) == (200, {"item": "8"})


def test_unknown_paths_and_cors_preflight_behave_as_chalice_local(server):
    client = connect(server)
    client.send(
        b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\nOPTIONS /items/1 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    status, headers, body = client.response()
    assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})
    assert headers["x-amzn-errortype"] == "UnauthorizedException"
    status, headers, _ = client.response()
    assert status == 200 and "GET" in headers["access-control-allow-methods"]


def test_the_event_matches_what_local_gateway_builds():
    app = make_app()
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

    server = GatewayServer(
        ("127.0.0.1", 0), make_app(), limits=Limits(idle_timeout=1, head_timeout=1)
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = connect(server)
        client.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.response()[0] == 200
        stalled = connect(server)
        stalled.send(b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Half")  # stops inside a header
        assert client.closed()  # within about a second
        assert stalled.json()[0] == 408 and stalled.closed()
        fresh = connect(server)
        fresh.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert fresh.response()[0] == 200  # the server itself is unaffected
    finally:
        server.shutdown()
        server.server_close()


def test_an_absolute_form_target_is_served_with_its_authority_as_host(server):
    client = connect(server)
    client.send(b"GET http://api.example:8000/echo?a=1 HTTP/1.1\r\nHost: other\r\n\r\n")
    status, body = client.json()
    assert (status, body["query"], body["host"]) == (200, {"a": "1"}, "api.example:8000")
    assert body["context"]["path"] == "/echo"


def test_an_upgrade_request_is_answered_in_http_1_1_and_the_next_one_follows(server):
    client = connect(server)
    client.send(
        b"GET /items/1 HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"GET /items/2 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert client.json() == (200, {"item": "1"})
    assert client.json() == (200, {"item": "2"})


def test_options_asterisk_gets_an_answer_not_a_failure(server):
    client = connect(server)
    client.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _ = client.json()
    assert 200 <= status < 500


def test_a_chunked_body_with_trailer_fields_keeps_the_body_and_drops_the_trailers(server):
    client = connect(server)
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\nX-Trailer: t\r\n\r\n"
        b"GET /items/5 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    status, body = client.json()
    assert (status, body["body"], body["headers"]) == (200, "ab", {})
    assert client.json() == (200, {"item": "5"})


@pytest.mark.parametrize(
    "dispatcher",
    [
        pytest.param(lambda: EpollDispatcher(4), id="epoll"),
        pytest.param(lambda: SelectorDispatcher(4, selectors.PollSelector), id="poll-selector"),
        pytest.param(lambda: SelectorDispatcher(4, selectors.SelectSelector), id="select-selector"),
    ],
)
def test_every_dispatcher_serves_keep_alive_and_stops_with_connections_open(dispatcher):
    running, thread = serve(make_app(), port=0, dispatcher=dispatcher())
    try:
        idle = connect(running)  # stays open, silent, across the shutdown
        client = connect(running)
        for n in range(3):
            client.send(b"GET /items/%d HTTP/1.1\r\nHost: x\r\n\r\n" % n)
            assert client.json() == (200, {"item": str(n)})
    finally:
        started = time.monotonic()
        running.shutdown()
        running.server_close()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 5
    assert idle.closed() and client.closed()


def test_framing_headers_set_by_the_app_never_reach_the_wire(server):
    client = connect(server)
    client.send(b"GET /framing HTTP/1.1\r\nHost: x\r\n\r\nGET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n")
    head = client.file.readline()
    lines = []
    while (line := client.file.readline()) != b"\r\n":
        lines.append(line.decode().strip().lower())
    body = client.file.read(int(next(v for v in lines if v.startswith("content-length:"))[15:]))
    assert head.startswith(b"HTTP/1.1 200") and json.loads(body) == {"ok": True}
    assert [v for v in lines if v.startswith(("content-length:", "connection:"))] == [
        f"content-length: {len(body)}"
    ]
    assert client.json() == (200, {"item": "1"})  # the framing held: the next answer follows


@given(st.text(alphabet="ab=&%+;2 é", min_size=1, max_size=12))
def test_the_query_string_is_parsed_as_parse_qs_does(query):
    assert multi_value_query(query) == parse_qs(query, keep_blank_values=True)
