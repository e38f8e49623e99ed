"""A read-only view of the `aws:rmq` event Lambda's Amazon MQ event source mapping sends."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RabbitMQRecord:
    """One message of the batch, with the queue it came from."""

    queue: str
    raw: Mapping[str, Any]

    @property
    def body(self) -> bytes:
        """The raw message body; an undecodable `data` field reads as empty."""
        try:
            return base64.b64decode(self.raw.get("data") or "", validate=True)
        except (binascii.Error, ValueError):
            return b""

    @property
    def properties(self) -> Mapping[str, Any]:
        props = self.raw.get("basicProperties")
        return props if isinstance(props, Mapping) else {}

    @property
    def message_id(self) -> str | None:
        value = self.properties.get("messageId")
        return value if isinstance(value, str) else None

    @property
    def redelivered(self) -> bool:
        return bool(self.raw.get("redelivered"))


def records(event: Mapping[str, Any]) -> Iterator[RabbitMQRecord]:
    """Every message of the event, queue by queue, in delivery order."""
    by_queue = event.get("rmqMessagesByQueue") or {}
    for queue_key, messages in by_queue.items():
        queue = queue_key.split("::", 1)[0]
        for message in messages or ():
            yield RabbitMQRecord(queue=queue, raw=message)
