"""Request framing over llhttp, without sockets: what one connection's bytes become."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local_runtime.http11 import (
    HttptoolsReader,
    Limits,
    Phase,
    ProtocolError,
    Request,
    encode_response,
)

STREAM = (
    b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\nX-Many: 1\r\nX-Many:  2  \r\n\r\n"
    b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
    b"PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"2;ext=1\r\nde\r\n1\r\nf\r\n0\r\nX-Trailer: dropped\r\n\r\n"
    b"GET /d HTTP/1.0\r\n\r\n"
)
EXPECTED = [
    Request("GET", "/a?x=1", {"host": "h", "x-many": "1, 2"}, b"", True, "c"),
    Request("POST", "/b", {"host": "h", "content-length": "3"}, b"abc", True, "c"),
    Request("PUT", "/c", {"host": "h", "transfer-encoding": "chunked"}, b"def", True, "c"),
    Request("GET", "/d", {}, b"", False, "c"),
]


def _read(*chunks: bytes, limits: Limits | None = None) -> HttptoolsReader:
    reader = HttptoolsReader(limits or Limits(), "c")
    for chunk in chunks:
        reader.feed(chunk, 0.0)
    return reader


def test_a_pipelined_stream_becomes_its_requests_in_order():
    assert list(_read(STREAM).requests) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=30))
def test_however_the_stream_is_split_into_reads_the_requests_are_the_same(cuts):
    points = sorted({0, len(STREAM), *cuts})
    chunks = [STREAM[a:b] for a, b in itertools.pairwise(points)]
    assert list(_read(*chunks).requests) == EXPECTED


def test_bytes_after_a_request_that_ends_the_connection_are_dropped():
    reader = _read(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /x HTTP/1.1\r\n")
    assert [r.target for r in reader.requests] == ["/"] and reader.trailing
    reader.feed(b"anything at all\r\n\r\n", 0.0)  # ignored, not an error
    assert len(reader.requests) == 1


def test_phases_and_when_the_current_message_began():
    reader = HttptoolsReader(Limits(), "c")
    reader.feed(b"POST / HTTP/1.1\r\nHo", 5.0)
    assert (reader.phase, reader.started) == (Phase.HEAD, 5.0)
    reader.feed(b"st: h\r\nContent-Length: 2\r\n\r\n", 6.0)
    assert (reader.phase, reader.started) == (Phase.BODY, 6.0)
    reader.feed(b"{}", 7.0)
    assert reader.phase is Phase.IDLE and reader.requests[0].body == b"{}"


def test_expect_100_continue_is_flagged_until_the_body_starts():
    reader = _read(
        b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    )
    assert reader.expects_continue
    reader.feed(b"{", 0.0)
    assert not reader.expects_continue


def test_a_head_growing_across_reads_is_refused_once_past_the_limit():
    limits = Limits(max_head_bytes=1000)
    reader = HttptoolsReader(limits, "c")
    reader.feed(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: ", 0.0)
    with pytest.raises(ProtocolError) as refused:
        for _ in range(100):
            reader.feed(b"a" * 100, 0.0)
    assert refused.value.status == 431
    reader.feed(b"a" * 100, 0.0)  # after a refusal nothing more is read


def test_an_absolute_target_becomes_origin_form_and_names_the_host():
    (request,) = _read(b"GET http://user@api:81/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n").requests
    assert (request.target, request.headers["host"]) == ("/p?q=1", "api:81")


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            "BAD_REQUEST",
        ),
        (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, "HTTP_VERSION_NOT_SUPPORTED"),
        (b"GET /" + b"a" * 9000, 414, "URI_TOO_LONG"),
        (
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10485761\r\n\r\n",
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            501,
            "NOT_IMPLEMENTED",
        ),
    ],
)
def test_refusals_carry_their_status_and_code(raw, status, code):
    with pytest.raises(ProtocolError) as refused:
        _read(raw)
    assert (refused.value.status, refused.value.code) == (status, code)
    got_status, headers, body = refused.value.response()
    assert got_status == status and headers["Content-Type"] == "application/json"
    assert code.encode() in body


def test_a_chunked_body_with_small_chunks_counts_its_framing():
    limits = Limits(max_body_bytes=100)  # 8x for framing: 800 bytes on the wire at most
    chunks = [b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"]
    chunks += [b"1;" + b"e" * 50 + b"\r\nx\r\n"] * 30
    with pytest.raises(ProtocolError) as refused:
        _read(*chunks, limits=limits)
    assert refused.value.status == 413


def test_a_response_is_one_buffer_and_head_omits_the_body():
    headers = {"Set-Cookie": ["a=1", "b=2"]}
    raw = encode_response("GET", 200, dict(headers), b"{}", keep_alive=False)
    assert raw == (
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    assert encode_response("HEAD", 200, dict(headers), b"{}", True).endswith(b"2\r\n\r\n")
