"""A raw HTTP/1.1 client: bytes out, responses read as the wire carries them."""

from __future__ import annotations

import json
import socket
from typing import Any


class NoAnswer(AssertionError):
    """The server closed the connection (or stayed silent) instead of answering."""


class RawClient:
    """One TCP connection to a gateway; every read gives up after `timeout` seconds."""

    def __init__(self, address: tuple[str, int], timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.file = self.sock.makefile("rb")

    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """The next response: status, headers (repeated ones joined with ", "), body."""
        try:
            line = self.file.readline()
        except (TimeoutError, ConnectionError) as exc:
            raise NoAnswer(f"no answer: {exc!r}") from exc
        if not line:
            raise NoAnswer("the connection closed without an answer")
        status = int(line.split()[1])
        headers: dict[str, str] = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            key = name.lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        body = self.file.read(int(headers.get("content-length", 0)))
        return status, headers, body

    def json(self) -> tuple[int, Any]:
        status, _, body = self.response()
        return status, json.loads(body)

    def closed(self) -> bool:
        """The server closed the connection (EOF, or a reset) within the timeout."""
        try:
            return self.file.read(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.file.close()
        self.sock.close()
