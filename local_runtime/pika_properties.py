"""pika's decoding of message properties, replaced by one that keeps their bytes and never raises.

pika decodes a content header inside its frame decoder (`pika.frame.decode_frame` calls
`spec.props[class_id]().decode(...)`), so a header it cannot decode (tables nested a thousand
deep: RecursionError; a timestamp of 2**63: OverflowError) fails the whole connection, and
every unacknowledged message on it goes back to the queue with it: the runtime reconnected
over and over and good messages burnt their delivery limit. It also decodes doubles and
floats as integers (1.5 arrives as 1) and both byte arrays and non-UTF-8 long strings as
bytes, so the event could not render them as AWS does. pika offers no public hook here;
`spec.props` is the registry its frame decoder reads, and install() puts ReceivedProperties
there. tests/runtime/test_amqp_fields.py fails if a pika upgrade stops calling it.
"""

from __future__ import annotations

from typing import Any

import pika.spec

# The attributes pika's BasicProperties sets, decoded on first use (see ReceivedProperties).
FIELDS = frozenset(
    (
        "content_type",
        "content_encoding",
        "headers",
        "delivery_mode",
        "priority",
        "correlation_id",
        "reply_to",
        "expiration",
        "message_id",
        "timestamp",
        "type",
        "user_id",
        "app_id",
        "cluster_id",
    )
)


class UndecodableProperties(ValueError):
    """pika's own decoder cannot read these properties (read `raw` instead)."""


class ReceivedProperties(pika.spec.BasicProperties):
    """A received message's properties as their wire bytes, in `raw`.

    Decoding them is left to whoever reads them: the runtime renders `raw` itself
    (local_runtime.amqp_fields); any other pika user in the process still reads
    `properties.headers` and the rest, which pika decodes on first access, and which raise
    UndecodableProperties for properties pika cannot decode.
    """

    def __init__(self) -> None:  # the frame decoder builds it with no arguments
        self.raw = b""

    def decode(self, encoded: bytes, offset: int = 0) -> ReceivedProperties:
        """Keep the bytes; never raises, whatever they hold."""
        self.raw = bytes(encoded[offset:]) if offset else bytes(encoded)
        return self

    def __getattr__(self, name: str) -> Any:
        # Called only for attributes not yet set, so only until the first decode.
        if name not in FIELDS:
            raise AttributeError(name)
        try:
            pika.spec.BasicProperties.decode(self, self.raw)
        except Exception as exc:  # RecursionError, OverflowError, struct.error, ...
            for field in FIELDS:
                self.__dict__.pop(field, None)
            raise UndecodableProperties(f"pika cannot decode these properties: {exc!r}") from exc
        return self.__dict__[name]


class RawProperties(pika.spec.BasicProperties):
    """Properties published as the given wire bytes, exactly: pika builds a content header
    from `encode()`. Redrive republishes what arrived without pika's lossy round trip."""

    def __init__(self, raw: bytes) -> None:
        super().__init__()
        self.raw = raw

    def encode(self) -> list[bytes]:
        return [self.raw]


def install() -> None:
    """Make every pika connection in this process receive ReceivedProperties (idempotent)."""
    pika.spec.props[pika.spec.BasicProperties.INDEX] = ReceivedProperties


def wire_bytes(properties: pika.spec.BasicProperties) -> bytes:
    """Any properties as they travel: the bytes received, or those pika would send."""
    if isinstance(properties, (ReceivedProperties, RawProperties)):
        return bytes(properties.raw)
    return b"".join(properties.encode())
