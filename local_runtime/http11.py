"""HTTP/1.1 messages: strict request framing with httptools (Node's llhttp) and response bytes.

llhttp refuses what makes framing ambiguous (Content-Length with Transfer-Encoding, repeated
or non-digit Content-Length, bad chunk sizes and extensions, a final coding other than
chunked, bare CR or LF, obs-fold, control characters in names or values). What it leaves to
its user is checked here: the version (1.0 and 1.1 only), the request target, Host, the limits
on sizes, and Transfer-Encoding on HTTP/1.0. Every refusal is a `ProtocolError` that carries
the status to answer with; the connection closes after it.
"""

from __future__ import annotations

import enum
import json
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, NoReturn, Protocol
from urllib.parse import urlsplit

import httptools

REASONS = {status.value: status.phrase for status in HTTPStatus}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

Response = tuple[int, dict[str, Any], bytes]  # status, headers (a list value repeats it), body


@dataclass(frozen=True)
class Limits:
    """What one client may send, how long it may take, and how many may be connected."""

    max_connections: int = 1000  # beyond it a client gets 503 with Retry-After, then a close
    head_timeout: float = 10.0  # from a request's first byte (or the connect) to its blank line
    body_timeout: float = 30.0  # from the end of the head to the end of the body
    idle_timeout: float = 60.0  # a keep-alive connection silent this long after an answer
    send_timeout: float = 30.0  # a client that does not read its answer for this long
    linger: float = 2.0  # after an error answer, input is read and dropped for this long
    retry_after: int = 1  # seconds, told to a client refused over the connection cap
    max_body_bytes: int = 16 * 1024  # the API's own limit; larger bodies are refused unread
    max_target_bytes: int = 8 * 1024
    max_head_bytes: int = 32 * 1024  # request line and header fields together
    max_headers: int = 100

    @property
    def resolution(self) -> float:
        """How often deadlines need checking: a fraction of the shortest one."""
        shortest = min(self.head_timeout, self.body_timeout, self.idle_timeout, self.linger)
        return max(0.01, min(0.25, shortest / 5))


@dataclass(slots=True)
class Request:
    """One complete request: names lower-cased, repeated fields joined with ", "."""

    method: str
    target: str  # origin-form (path and query), or "*" for OPTIONS
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    client: str


class ProtocolError(Exception):
    """The bytes on the wire are not a request we can answer; the connection then closes."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    def response(self) -> Response:
        body = json.dumps({"code": self.code, "message": str(self)}).encode()
        return self.status, {"Content-Type": "application/json"}, body


def bad_request(message: str) -> ProtocolError:
    return ProtocolError(400, "BAD_REQUEST", message)


def too_large(limits: Limits) -> ProtocolError:
    return ProtocolError(
        413, "PAYLOAD_TOO_LARGE", f"body is larger than the limit of {limits.max_body_bytes} bytes"
    )


def head_too_large(message: str) -> ProtocolError:
    return ProtocolError(431, "REQUEST_HEADER_FIELDS_TOO_LARGE", message)


def version_not_supported(version: str) -> ProtocolError:
    return ProtocolError(
        505, "HTTP_VERSION_NOT_SUPPORTED", f"HTTP/{version} is not supported; use HTTP/1.1"
    )


class Phase(enum.Enum):
    IDLE = "idle"  # between messages
    HEAD = "head"  # a request line or header fields are arriving
    BODY = "body"  # the head is complete; the body (or its trailer fields) is arriving


class RequestReader(Protocol):
    """Turns one connection's bytes into complete requests, in order.

    Every implementation refuses an ambiguous or malformed message by raising
    `ProtocolError` from `feed`, after which it reads nothing more; it never holds more
    than the limits allow (plus one read) of any message.
    """

    requests: deque[Request]  # complete, not yet answered
    phase: Phase
    started: float  # when the message being read began (its head), or its body began
    expects_continue: bool  # the client waits for "100 Continue" before sending its body
    trailing: bool  # bytes came after a request that ends the connection (they are dropped)

    def feed(self, data: bytes, now: float) -> None: ...


class HttptoolsReader:
    """A `RequestReader` over llhttp, one parser per connection (llhttp is incremental)."""

    __slots__ = (
        "_body",
        "_body_size",
        "_body_wire",
        "_client",
        "_count",
        "_ended",
        "_failure",
        "_head_bytes",
        "_headers",
        "_limits",
        "_method",
        "_now",
        "_parser",
        "_seq",
        "_target",
        "_url",
        "expects_continue",
        "phase",
        "requests",
        "started",
        "trailing",
    )

    def __init__(self, limits: Limits, client: str) -> None:
        self._limits = limits
        self._client = client
        self._parser = httptools.HttpRequestParser(self)
        self.requests: deque[Request] = deque()
        self.phase = Phase.IDLE
        self.started = 0.0
        self.expects_continue = False
        self.trailing = False  # bytes came after a request that ends the connection
        self._ended = False
        self._failure: ProtocolError | None = None
        self._now = 0.0
        self._seq = 0
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._count = self._head_bytes = self._body_size = self._body_wire = 0
        self._method = self._target = ""

    def feed(self, data: bytes, now: float) -> None:
        """Parse what arrived; complete requests are appended to `requests`."""
        if self._ended:
            self.trailing = True
            return
        self._now = now
        phase, seq, head_bytes, body_wire = self.phase, self._seq, self._head_bytes, self._body_wire
        try:
            self._execute(data)
            if self.phase is phase is not Phase.IDLE and self._seq == seq:
                self._charge(phase, len(data), head_bytes, body_wire)
        except ProtocolError:
            self._ended = True
            raise

    def _charge(self, phase: Phase, size: int, head_bytes: int, body_wire: int) -> None:
        """The whole read belongs to the message still arriving: count all of it. (A read in
        which a message begins counts what its callbacks saw: at most one read less.)"""
        if phase is Phase.HEAD:
            self._head_bytes = head_bytes + size
            self._check_head()
        else:
            self._body_wire = body_wire + size
            if self._body_wire > 8 * self._limits.max_body_bytes:  # chunked framing overhead
                self._fail(too_large(self._limits))

    def _execute(self, data: bytes) -> None:
        view: bytes | memoryview = data
        while True:
            try:
                self._parser.feed_data(view)
                return
            except httptools.HttpParserUpgrade as upgrade:
                # The request asked to switch protocols; we answer it in HTTP/1.1 (a server
                # may ignore Upgrade), so what follows is the next request.
                view = memoryview(data)[len(data) - len(view) + upgrade.args[0] :]
                if not view:
                    return
            except httptools.HttpParserCallbackError as exc:
                raise self._failure or _malformed(str(exc), "0.0") from None
            except httptools.HttpParserError as exc:
                if self._ended:  # bytes after a request that ends the connection: ignored
                    self.trailing = True
                    return
                raise _malformed(str(exc), self._parser.get_http_version()) from None

    def _fail(self, error: ProtocolError) -> NoReturn:
        """Raise from a callback; llhttp then stops and `feed` raises this same error."""
        self._failure = error
        raise error

    def _check_head(self) -> None:
        if self._head_bytes > self._limits.max_head_bytes:
            limit = self._limits.max_head_bytes
            self._fail(head_too_large(f"the request head is larger than {limit} bytes"))

    # --- llhttp callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset()
        self._seq += 1
        self.phase = Phase.HEAD
        self.started = self._now

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)
        if len(self._url) > self._limits.max_target_bytes:
            limit = self._limits.max_target_bytes
            self._fail(
                ProtocolError(414, "URI_TOO_LONG", f"the request target is over {limit} bytes")
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count += 1
        self._head_bytes += len(name) + len(value) + 4
        if self._count > self._limits.max_headers:
            self._fail(head_too_large(f"more than {self._limits.max_headers} header fields"))
        self._check_head()
        if self.phase is Phase.BODY:
            return  # a trailer field of a chunked body: read and dropped
        key = name.decode("latin-1").lower()  # llhttp admits token characters only
        text = value.decode("latin-1").rstrip(" \t")  # llhttp strips the leading whitespace
        headers = self._headers
        if key in headers:
            if key == "host":
                self._fail(bad_request("more than one Host header field"))
            headers[key] = f"{headers[key]}, {text}"
        else:
            headers[key] = text

    def on_headers_complete(self) -> None:
        parser = self._parser
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            self._fail(version_not_supported(version))
        headers = self._headers
        self._method = method = parser.get_method().decode("ascii")
        self._target = self._origin_form(method, self._url.decode("latin-1"))
        if version == "1.1" and "host" not in headers:
            self._fail(bad_request("an HTTP/1.1 request needs a Host header field"))
        declared = self._framing(version, headers)
        if declared and parser.should_upgrade():
            # llhttp hands the bytes after an Upgrade request's head to the new protocol,
            # so its body could not be read as one: refuse rather than answer without it.
            self._fail(bad_request("a request asking for Upgrade cannot carry a body"))
        self.phase = Phase.BODY
        self.started = self._now
        self.expects_continue = (
            declared and version == "1.1" and headers.get("expect", "").lower() == "100-continue"
        )

    def _framing(self, version: str, headers: dict[str, str]) -> bool:
        """Whether a body follows; llhttp has already refused ambiguous framing."""
        coding = headers.get("transfer-encoding")
        if coding is not None:
            if version == "1.0":
                self._fail(bad_request("HTTP/1.0 has no Transfer-Encoding"))
            codings = [name.strip().lower() for name in coding.split(",")]
            if codings[-1] != "chunked":  # RFC 9112 6.3: the length cannot be known
                self._fail(
                    bad_request(f"Transfer-Encoding {coding[:40]!r} does not end in chunked")
                )
            if len(codings) > 1:  # RFC 9112 6.1: a coding the server does not understand
                message = f"Transfer-Encoding {coding[:40]!r}: only chunked is implemented"
                self._fail(ProtocolError(501, "NOT_IMPLEMENTED", message))
            return True
        length = headers.get("content-length")
        if not length:
            return False
        if int(length) > self._limits.max_body_bytes:  # llhttp admits digits only
            self._fail(too_large(self._limits))
        return int(length) > 0

    def _origin_form(self, method: str, target: str) -> str:
        """The target as path and query; absolute-form names the host (RFC 9112 3.2.2)."""
        if target.startswith("/"):
            if "#" not in target:
                return target
        elif target == "*":
            if method == "OPTIONS":
                return target
        elif target[:8].lower().startswith(("http://", "https://")):
            absolute = _absolute(target)
            if absolute is not None:
                self._headers["host"], target = absolute
                return target
        self._fail(bad_request(f"invalid request target {target[:100]!r}"))

    def on_body(self, body: bytes) -> None:
        self.expects_continue = False
        self._body_size += len(body)
        self._body_wire += len(body)
        if self._body_size > self._limits.max_body_bytes:
            self._fail(too_large(self._limits))
        self._body.append(body)

    def on_message_complete(self) -> None:
        keep_alive = self._parser.should_keep_alive()
        body = b"".join(self._body) if self._body else b""
        self.requests.append(
            Request(self._method, self._target, self._headers, body, keep_alive, self._client)
        )
        self.phase = Phase.IDLE
        self.expects_continue = False
        if not keep_alive:
            self._ended = True


def _absolute(target: str) -> tuple[str, str] | None:
    """(authority, path and query) of an absolute http(s) URL; None when it is not valid."""
    try:
        parts = urlsplit(target)
        _ = parts.port  # raises ValueError on a port that is not a number in range
    except ValueError:
        return None
    if not parts.hostname or "#" in target:
        return None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.netloc.rpartition("@")[2], path


def _malformed(reason: str, version: str) -> ProtocolError:
    """llhttp's own refusal; one in the version (HTTP/2's preface, HTTP/1.2) is a 505."""
    if version not in ("0.0", "1.0", "1.1"):
        return version_not_supported(version)
    return bad_request(f"malformed HTTP/1.1 request: {reason}")


def encode_response(
    method: str, status: int, headers: dict[str, Any], body: bytes, keep_alive: bool
) -> bytes:
    """The bytes of one response, head and body together, so it goes out in one send."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, '')}"]
    headers.setdefault("Content-Type", "application/json")
    headers["Content-Length"] = str(len(body))
    if not keep_alive:
        headers["Connection"] = "close"
    for name, value in headers.items():
        for item in value if isinstance(value, list) else (value,):
            lines.append(f"{name}: {item}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if method == "HEAD" else head + body
