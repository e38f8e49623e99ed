"""Hand-made AMQP content-header properties, for publishing what pika's encoder cannot."""

from __future__ import annotations

import struct
from collections.abc import Sequence

# Property flags (AMQP 0-9-1 basic class), highest bit first.
CONTENT_TYPE = 0x8000
HEADERS = 0x2000
DELIVERY_MODE = 0x1000
MESSAGE_ID = 0x0080
TIMESTAMP = 0x0040
APP_ID = 0x0008


def short(text: bytes) -> bytes:
    """A short string: one length octet, then the bytes (UTF-8 or not)."""
    return bytes([len(text)]) + text


def table(*entries: tuple[bytes, bytes]) -> bytes:
    """A field table of (key, encoded value) pairs, keys as raw bytes."""
    data = b"".join(short(key) + value for key, value in entries)
    return struct.pack(">I", len(data)) + data


def array(values: Sequence[bytes]) -> bytes:
    """A field array of encoded values (tag included)."""
    data = b"".join(values)
    return b"A" + struct.pack(">I", len(data)) + data


def long_string(data: bytes) -> bytes:
    return b"S" + struct.pack(">I", len(data)) + data


def byte_array(data: bytes) -> bytes:
    return b"x" + struct.pack(">I", len(data)) + data


def nested(depth: int) -> bytes:
    """A table value nesting `depth` tables (the innermost one empty)."""
    value = b"F" + table()
    for _ in range(depth - 1):
        value = b"F" + table((b"k", value))
    return value


def properties(
    headers: bytes | None = None, message_id: bytes | None = None, **more: bytes
) -> bytes:
    """Content-header properties with headers (an encoded table), a message id and, by flag
    name (timestamp=..., content_type=...), fields already encoded."""
    fields = {
        CONTENT_TYPE: more.pop("content_type", None),
        HEADERS: headers,
        DELIVERY_MODE: more.pop("delivery_mode", None),
        MESSAGE_ID: None if message_id is None else short(message_id),
        TIMESTAMP: more.pop("timestamp", None),
        APP_ID: more.pop("app_id", None),
    }
    assert not more, f"unknown fields {sorted(more)}"
    flags = 0
    data = b""
    for flag in sorted(fields, reverse=True):  # on the wire in flag order
        if fields[flag] is not None:
            flags |= flag
            data += fields[flag] or b""
    return struct.pack(">H", flags) + data


def with_headers(message_id: bytes, *entries: tuple[bytes, bytes]) -> bytes:
    """Properties holding only a message id and a headers table of the given entries."""
    return properties(headers=table(*entries), message_id=message_id)
