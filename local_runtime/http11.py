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
    # Larger bodies are refused unread: API Gateway's payload limit, or the function's own
    # (Metadata: LocalRuntime: MaxBodyBytes in its template).
    max_body_bytes: int = 10 * 1024 * 1024
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
        return error_response(self.status, self.code, str(self))


def error_response(status: int, code: str, message: str) -> Response:
    """The server's own answers: JSON with a stable code and a message a person can act on."""
    body = json.dumps({"code": code, "message": message}).encode()
    return status, {"Content-Type": "application/json"}, body


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
    """A `RequestReader` over llhttp, one parser per connection (llhttp is incremental).

    Its callbacks run for every request, so they are written for speed: limits are read once
    into plain attributes, and the checks a plain request never needs sit behind one test.
    """

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
        "_max_body",
        "_max_head",
        "_max_headers",
        "_max_target",
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
        self._max_body, self._max_head = limits.max_body_bytes, limits.max_head_bytes
        self._max_headers, self._max_target = limits.max_headers, limits.max_target_bytes
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
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] | None = None
        self._count = self._head_bytes = self._body_size = self._body_wire = 0
        self._method = self._target = ""

    def feed(self, data: bytes, now: float) -> None:
        """Parse what arrived; complete requests are appended to `requests`."""
        if self._ended:
            self.trailing = True
            return
        self._now = now
        phase = self.phase
        if phase is Phase.IDLE:  # the usual case: a read that starts with a new request
            try:
                self._parser.feed_data(data)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
                self._recover(data, exc)
            return
        seq, head_bytes, body_wire = self._seq, self._head_bytes, self._body_wire
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._recover(data, exc)
        if self.phase is phase and self._seq == seq:
            # The whole read belongs to the message still arriving: count all of it. (A read
            # in which a message begins counts what its callbacks saw: one read less at most.)
            self._charge(phase, len(data), head_bytes, body_wire)

    def _charge(self, phase: Phase, size: int, head_bytes: int, body_wire: int) -> None:
        if phase is Phase.HEAD:
            self._head_bytes = head_bytes + size
            if self._head_bytes > self._max_head:
                self._refuse(head_too_large(f"the request head is over {self._max_head} bytes"))
        else:
            self._body_wire = body_wire + size
            if self._body_wire > 8 * self._max_body:  # chunked framing overhead
                self._refuse(too_large(self._limits))

    def _recover(self, data: bytes, exc: Exception) -> None:
        """What an exception out of llhttp means; raises `ProtocolError` unless it is benign."""
        while isinstance(exc, httptools.HttpParserUpgrade):
            # The request asked to switch protocols; it is answered in HTTP/1.1 (a server may
            # ignore Upgrade), so what follows its head is the next request.
            data = data[exc.args[0] :]
            if not data:
                return
            try:
                self._parser.feed_data(data)
                return
            except (httptools.HttpParserError, httptools.HttpParserUpgrade) as again:
                exc = again
        if isinstance(exc, httptools.HttpParserCallbackError) and self._failure is not None:
            self._refuse(self._failure)
        if self._ended:  # bytes after a request that ends the connection: dropped
            self.trailing = True
            return
        self._refuse(_malformed(str(exc), self._parser.get_http_version()))

    def _refuse(self, error: ProtocolError) -> NoReturn:
        self._ended = True
        self._failure = error
        raise error

    def _fail(self, error: ProtocolError) -> NoReturn:
        """Raise from a callback; llhttp then stops and `feed` raises this same error."""
        self._failure = error
        raise error

    # --- llhttp callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = None
        self._count = self._head_bytes = self._body_size = self._body_wire = 0
        self._seq += 1
        self.phase = Phase.HEAD
        self.started = self._now

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)
        if len(self._url) > self._max_target:
            message = f"the request target is over {self._max_target} bytes"
            self._fail(ProtocolError(414, "URI_TOO_LONG", message))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count += 1
        self._head_bytes += len(name) + len(value) + 4
        if self._count > self._max_headers or self._head_bytes > self._max_head:
            self._fail(
                head_too_large(f"over {self._max_headers} header fields")
                if self._count > self._max_headers
                else head_too_large(f"the request head is over {self._max_head} bytes")
            )
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
        parser, headers = self._parser, self._headers
        version = parser.get_http_version()
        if version != "1.1":
            if version != "1.0":
                self._fail(version_not_supported(version))
        elif "host" not in headers:
            self._fail(bad_request("an HTTP/1.1 request needs a Host header field"))
        self._method = method = parser.get_method().decode("ascii")
        target = self._url.decode("latin-1")
        if target[:1] != "/" or "#" in target:
            target = self._other_form(method, target)
        self._target = target
        self.phase = Phase.BODY
        self.started = self._now
        if "content-length" in headers or "transfer-encoding" in headers:
            self._framing(version, headers)

    def _framing(self, version: str, headers: dict[str, str]) -> None:
        """Check a declared body; llhttp has already refused ambiguous framing."""
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
        else:
            length = int(headers["content-length"] or 0)  # llhttp admits digits only
            if length > self._max_body:
                self._fail(too_large(self._limits))
            if not length:
                return
        if self._parser.should_upgrade():
            # llhttp hands the bytes after an Upgrade request's head to the new protocol,
            # so its body could not be read as one: refuse rather than answer without it.
            self._fail(bad_request("a request asking for Upgrade cannot carry a body"))
        self.expects_continue = (
            version == "1.1" and headers.get("expect", "").lower() == "100-continue"
        )

    def _other_form(self, method: str, target: str) -> str:
        """A target that is not a plain path: "*", or absolute-form, whose authority becomes
        Host (RFC 9112 3.2.2); anything else is refused."""
        if target == "*":
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
        if self._body_size > self._max_body:
            self._fail(too_large(self._limits))
        if self._body is None:
            self._body = [body]
        else:
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
    """The bytes of one response, head and body together, so it goes out in one send.

    Content-Length and Connection are the server's to set: the app's own are left out.
    """
    parts = [_STATUS_LINES.get(status) or f"HTTP/1.1 {status} \r\n"]
    for name, value in headers.items():
        if name in _FRAMING or name.lower() in _FRAMING:
            continue
        if isinstance(value, list):
            parts.extend(f"{name}: {item}\r\n" for item in value)
        else:
            parts.append(f"{name}: {value}\r\n")
    if "Content-Type" not in headers:
        parts.append("Content-Type: application/json\r\n")
    parts.append(
        f"Content-Length: {len(body)}\r\n\r\n"
        if keep_alive
        else f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    head = "".join(parts).encode("latin-1")
    return head if method == "HEAD" else head + body


_STATUS_LINES = {code: f"HTTP/1.1 {code} {phrase}\r\n" for code, phrase in REASONS.items()}
_FRAMING = frozenset(
    {"content-length", "connection", "transfer-encoding"}
    | {"Content-Length", "Connection", "Transfer-Encoding"}  # found without lower()
)
