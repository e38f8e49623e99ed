"""Hostile and malformed HTTP/1.1 against a running gateway, over raw sockets.

Every malformed or ambiguous message gets a 4xx JSON answer (`code`, `message`), then the
connection closes; never a traceback, a 500 or a hang. A request smuggled behind an ambiguous
one never runs: `POST /tickets` counts what it stores, and the count stays where it was.
"""

from __future__ import annotations

import contextlib
import socket
import time

import pytest

from tests.gateway.conftest import Gateway

H = b"Host: x\r\n"
SMUGGLED = (
    b"POST /tickets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2\r\n\r\n{}"
)


def _chunked(hidden: bytes) -> bytes:
    return b"0\r\n\r\n" + hidden


MALFORMED = {
    # request smuggling: two framings, or a framing the server reads one way and a proxy another
    "content-length-and-chunked": (
        b"POST /echo HTTP/1.1\r\n"
        + H
        + b"Content-Type: text/plain\r\nContent-Length: "
        + str(len(_chunked(SMUGGLED))).encode()
        + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        + _chunked(SMUGGLED),
        400,
    ),
    "chunked-and-content-length": (
        b"POST /echo HTTP/1.1\r\n" + H + b"Content-Type: text/plain\r\nTransfer-Encoding: chunked"
        b"\r\nContent-Length: 5\r\n\r\n" + _chunked(SMUGGLED),
        400,
    ),
    "repeated-content-length": (
        b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
        400,
    ),
    "conflicting-content-length": (
        b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}x",
        400,
    ),
    "content-length-list": (
        b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 2, 2\r\n\r\n{}",
        400,
    ),
    "content-length-superscript-two": (  # '²' in Latin-1: str.isdigit() says it is a digit
        b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: \xb2\r\n\r\n{}",
        400,
    ),
    "content-length-negative": (
        b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n",
        400,
    ),
    "content-length-plus": (b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: +2\r\n\r\n{}", 400),
    "content-length-hex": (b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 0x2\r\n\r\n{}", 400),
    "chunk-size-minus-one": (
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n-1\r\n" + b"x" * 100,
        400,
    ),
    "chunk-size-minus-five": (
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nabc\r\n",
        400,
    ),
    "chunk-size-not-hex": (
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
        400,
    ),
    "chunk-size-overflow": (
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
        b"10000000000000001\r\nabc\r\n",
        400,
    ),
    "chunk-size-space-before-extension": (
        b"POST /echo HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n3 ;a\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    "chunk-extension-nul": (
        b"POST /echo HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n3;\x00\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    "chunk-data-without-crlf": (
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcX0\r\n\r\n",
        400,
    ),
    "transfer-encoding-notchunked": (
        b"POST /echo HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: notchunked\r\n\r\n0\r\n\r\n"
        + SMUGGLED,
        400,
    ),
    "transfer-encoding-gzip": (
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n" + SMUGGLED,
        400,
    ),
    "transfer-encoding-identity": (
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\n" + SMUGGLED,
        400,
    ),
    "transfer-encoding-chunked-then-gzip": (
        b"POST /echo HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"
        + SMUGGLED,
        400,
    ),
    "transfer-encoding-twice": (
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked"
        b"\r\n\r\n0\r\n\r\n" + SMUGGLED,
        400,
    ),
    "transfer-encoding-on-http-1.0": (
        b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
        400,
    ),
    # line endings, folding, bytes that have no place in a head
    "bare-cr-in-header-value": (b"GET /echo HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400),
    "bare-cr-line-ending": (b"GET /echo HTTP/1.1\r" + H + b"\r\n", 400),
    "bare-lf-line-endings": (b"GET /echo HTTP/1.1\nHost: x\n\n", 400),
    "bare-lf-after-header": (b"GET /echo HTTP/1.1\r\n" + H + b"X-A: a\n\r\n", 400),
    "obs-fold": (b"GET /echo HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n", 400),
    "nul-in-header-value": (b"GET /echo HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400),
    "control-character-in-header-value": (
        b"GET /echo HTTP/1.1\r\n" + H + b"X-A: a\x01b\r\n\r\n",
        400,
    ),
    "delete-character-in-header-value": (
        b"GET /echo HTTP/1.1\r\n" + H + b"X-A: a\x7fb\r\n\r\n",
        400,
    ),
    "space-in-header-name": (b"GET /echo HTTP/1.1\r\n" + H + b"X A: a\r\n\r\n", 400),
    "separator-in-header-name": (b"GET /echo HTTP/1.1\r\n" + H + b"X(A): a\r\n\r\n", 400),
    "space-before-colon": (b"GET /echo HTTP/1.1\r\n" + H + b"X-A : a\r\n\r\n", 400),
    "empty-header-name": (b"GET /echo HTTP/1.1\r\n" + H + b": a\r\n\r\n", 400),
    "header-without-colon": (b"GET /echo HTTP/1.1\r\n" + H + b"no colon here\r\n\r\n", 400),
    "whitespace-before-first-header": (b"GET /echo HTTP/1.1\r\n X-A: a\r\n" + H + b"\r\n", 400),
    "no-host": (b"GET /echo HTTP/1.1\r\n\r\n", 400),
    "two-hosts": (b"GET /echo HTTP/1.1\r\n" + H + H + b"\r\n", 400),
    # request lines and targets
    "garbage": (b"GARBAGE\r\n\r\n", 400),
    "lower-case-method": (b"get /echo HTTP/1.1\r\n" + H + b"\r\n", 400),
    "unknown-method": (b"BREW /echo HTTP/1.1\r\n" + H + b"\r\n", 400),
    "target-bad-ipv6-authority": (b"GET http://[/echo HTTP/1.1\r\n" + H + b"\r\n", 400),
    "target-bad-port": (b"GET http://x:99999/echo HTTP/1.1\r\n" + H + b"\r\n", 400),
    "target-absolute-without-host": (b"GET http:///echo HTTP/1.1\r\n" + H + b"\r\n", 400),
    "target-with-fragment": (b"GET /echo#top HTTP/1.1\r\n" + H + b"\r\n", 400),
    "target-relative": (b"GET echo HTTP/1.1\r\n" + H + b"\r\n", 400),
    "target-asterisk-for-get": (b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400),
    "target-authority-form": (b"CONNECT x:443 HTTP/1.1\r\n" + H + b"\r\n", 400),
    "target-control-character": (b"GET /ec\x01ho HTTP/1.1\r\n" + H + b"\r\n", 400),
    "target-non-ascii": (b"GET /\xe9 HTTP/1.1\r\n" + H + b"\r\n", 400),
    "lower-case-version": (b"GET /echo http/1.1\r\n" + H + b"\r\n", 400),
    # versions
    "http-2.0": (b"GET /echo HTTP/2.0\r\n" + H + b"\r\n", 505),
    "http-1.2": (b"GET /echo HTTP/1.2\r\n" + H + b"\r\n", 505),
    "http-3.0": (b"GET /echo HTTP/3.0\r\n" + H + b"\r\n", 505),
    "http-0.9": (b"GET /echo\r\n\r\n", 505),
    "http-2-preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    # sizes
    "request-target-too-long": (b"GET /echo?" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    "header-too-large": (
        b"GET /echo HTTP/1.1\r\n" + H + b"X-A: " + b"a" * 40000 + b"\r\n\r\n",
        431,
    ),
    "head-too-large": (
        b"GET /echo HTTP/1.1\r\n" + H + (b"X-A: " + b"a" * 1000 + b"\r\n") * 40 + b"\r\n",
        431,
    ),
    "too-many-headers": (b"GET /echo HTTP/1.1\r\n" + H + b"X-A: y\r\n" * 100 + b"\r\n", 431),
    "content-length-over-the-limit": (
        b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 16385\r\n\r\n",
        413,
    ),
    "chunked-body-over-the-limit": (
        b"POST /echo HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"1000\r\n"
        + b"x" * 0x1000
        + b"\r\n"
        + b"1000\r\n"
        + b"x" * 0x1000
        + b"\r\n"
        + b"1000\r\n"
        + b"x" * 0x1000
        + b"\r\n"
        + b"1000\r\n"
        + b"x" * 0x1000
        + b"\r\n"
        + b"1\r\nx\r\n",
        413,
    ),
    "content-length-overflow": (
        b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999999\r\n\r\n",
        400,
    ),
    "upgrade-with-a-body": (
        b"POST /echo HTTP/1.1\r\n" + H + b"Connection: upgrade\r\nUpgrade: h2c\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc",
        400,
    ),
}


def _created(gateway: Gateway) -> int:
    client = gateway.client()
    client.send(b"GET /tickets HTTP/1.1\r\nHost: x\r\n\r\n")
    status, body = client.json()
    client.close()
    assert status == 200
    return int(body["created"])


@pytest.mark.parametrize(("raw", "status"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_or_ambiguous_request_gets_a_json_4xx_and_the_connection_closes(
    gateway, raw, status
):
    before = _created(gateway)
    client = gateway.client()
    client.send(raw)
    got, body = client.json()
    assert got == status, body
    assert set(body) == {"code", "message"} and body["message"]
    assert client.closed()
    assert _created(gateway) == before  # nothing hidden behind it ran


def test_transfer_codings_other_than_chunked_are_not_implemented(gateway):
    client = gateway.client()
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    )
    status, body = client.json()
    assert (status, body["code"]) == (501, "NOT_IMPLEMENTED")
    assert client.closed()


def test_earlier_pipelined_requests_are_answered_before_the_error(gateway):
    before = _created(gateway)
    client = gateway.client()
    client.send(
        b"GET /echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /echo?n=2 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /echo HTTP/1.1\r\nHost: x\r\nX-A: a\x00\r\n\r\n" + SMUGGLED
    )
    assert [client.json()[1]["query"]["n"] for _ in range(2)] == ["1", "2"]
    status, body = client.json()
    assert (status, body["code"]) == (400, "BAD_REQUEST")
    assert client.closed()
    assert _created(gateway) == before


def test_a_hundred_pipelined_requests_are_answered_in_order_on_one_connection(gateway):
    client = gateway.client()
    client.send(b"".join(b"GET /echo?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in range(100)))
    assert [client.json()[1]["query"]["n"] for _ in range(100)] == [str(n) for n in range(100)]
    client.send(b"GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n")  # and it stays open
    assert client.json() == (200, {"item": "1"})


def test_a_request_split_into_single_bytes_is_answered(gateway):
    client = gateway.client()
    raw = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 5\r\n\r\nhello"
    )
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for byte in raw:
        client.send(bytes([byte]))
    status, body = client.json()
    assert (status, body["body"]) == (200, "hello")


def test_an_endless_header_value_is_refused_and_never_held_in_memory(gateway):
    rss = gateway.rss_mb()
    client = gateway.client()
    client.send(b"GET /echo HTTP/1.1\r\nHost: x\r\nX-A: ")
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        for _ in range(256):  # 16 MiB, far past the limit of 32 KiB
            client.send(b"a" * 65536)
    status, body = client.json()
    assert (status, body["code"]) == (431, "REQUEST_HEADER_FIELDS_TOO_LARGE")
    assert gateway.rss_mb() - rss < 4


def test_an_unread_body_over_the_limit_is_refused_before_it_is_sent(gateway):
    client = gateway.client()
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n"
    )
    status, body = client.json()  # no 100 Continue: the body is refused unread
    assert (status, body["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert client.closed()


def test_the_server_keeps_answering_after_every_kind_of_abuse(gateway):
    for raw, _ in MALFORMED.values():
        client = gateway.client()
        client.send(raw)
        client.sock.close()  # without reading the answer
    client = gateway.client()
    started = time.monotonic()
    client.send(b"GET /items/2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert client.json() == (200, {"item": "2"})
    assert time.monotonic() - started < 2
