"""Builds the `aws:rmq` event exactly as Lambda's Amazon MQ event source mapping does."""

from __future__ import annotations

import base64
import functools
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pika

EVENT_SOURCE = "aws:rmq"
LOCAL_REGION = "us-east-1"
LOCAL_ACCOUNT = "000000000000"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # a synchronous invocation's payload limit
# The event's own keys, source ARN and queue key; what is left of 6 MB is for the records.
EVENT_ENVELOPE_BYTES = 1024
RECORD_BUDGET_BYTES = MAX_PAYLOAD_BYTES - EVENT_ENVELOPE_BYTES


class Delivery:
    """One message as the broker delivered it; its record is encoded at most once."""

    __slots__ = ("_record_json", "body", "delivery_tag", "properties", "redelivered")

    def __init__(
        self,
        body: bytes,
        properties: pika.BasicProperties,
        redelivered: bool = False,
        delivery_tag: int = 0,
    ) -> None:
        self.body = body
        self.properties = properties
        self.redelivered = redelivered
        self.delivery_tag = delivery_tag
        self._record_json: bytes | None = None

    def __repr__(self) -> str:
        return f"Delivery(tag={self.delivery_tag}, {len(self.body)} bytes)"

    @property
    def record_json(self) -> bytes:
        """This message's record as compact JSON: sizing the batch and sending the event
        both use these bytes, so no record is serialised twice."""
        if self._record_json is None:
            self._record_json = _compact(record(self))
        return self._record_json

    @property
    def event_size(self) -> int:
        """Bytes this message adds to an event: its record and the comma before the next."""
        return len(self.record_json) + 1


def broker_arn(
    host: str, port: int, region: str = LOCAL_REGION, account: str = LOCAL_ACCOUNT
) -> str:
    """A stable, AWS-shaped broker ARN for a local broker address."""
    broker_id = uuid.uuid5(uuid.NAMESPACE_URL, f"amqp://{host}:{port}")
    return f"arn:aws:mq:{region}:{account}:broker:local:b-{broker_id}"


@functools.lru_cache(maxsize=4096)
def timestamp_text(seconds: int | None) -> str | None:
    """AMQP timestamp as AWS renders it: 'Jan 1, 1970, 12:33:41 AM' (UTC)."""
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    hour = moment.hour % 12 or 12
    return f"{moment:%b} {moment.day}, {moment.year}, {hour}:{moment:%M:%S} {moment:%p}"


def header_value(value: object) -> object:
    """Strings become {"bytes": [...]}, numbers and booleans stay, tables and lists recurse."""
    if isinstance(value, str):
        return {"bytes": java_bytes(value.encode())}
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": java_bytes(value)}
    if isinstance(value, Mapping):
        return {str(k): header_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [header_value(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return timestamp_text(int(value.replace(tzinfo=value.tzinfo or UTC).timestamp()))
    return value


def java_bytes(data: bytes | bytearray) -> list[int]:
    """Bytes as AWS's JVM-built event writes them: Java's byte is signed, so -128..127.

    The event is Gson's rendering of the RabbitMQ Java client's objects (a header string is
    a LongString whose `bytes` field is a byte[]; the timestamp is Gson's default Date
    format), so any byte above 127, as in non-ASCII UTF-8, comes out negative.
    """
    return [byte - 256 if byte > 127 else byte for byte in data]


def basic_properties(props: pika.BasicProperties, body_size: int) -> dict[str, Any]:
    """Every field AWS sends, in AWS's order, unset ones null."""
    return {
        "contentType": _text(props.content_type),
        "contentEncoding": _text(props.content_encoding),
        "headers": None if props.headers is None else header_value(props.headers),
        "deliveryMode": props.delivery_mode,
        "priority": props.priority,
        "correlationId": _text(props.correlation_id),
        "replyTo": _text(props.reply_to),
        "expiration": _text(props.expiration),
        "messageId": _text(props.message_id),
        "timestamp": timestamp_text(props.timestamp),
        "type": _text(props.type),
        "userId": _text(props.user_id),
        "appId": _text(props.app_id),
        "clusterId": _text(props.cluster_id),
        "bodySize": body_size,
    }


def _text(value: str | bytes | None) -> str | None:
    """A short-string property; pika hands over bytes when they are not UTF-8, and AWS's
    Java client decodes those with replacement characters."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return value


def record(delivery: Delivery) -> dict[str, Any]:
    return {
        "basicProperties": basic_properties(delivery.properties, len(delivery.body)),
        "redelivered": delivery.redelivered,
        "data": base64.b64encode(delivery.body).decode("ascii"),
    }


def build_event(
    queue: str, deliveries: Sequence[Delivery], arn: str, virtual_host: str = "/"
) -> dict[str, Any]:
    """The event for one batch of one queue."""
    return {
        "eventSource": EVENT_SOURCE,
        "eventSourceArn": arn,
        "rmqMessagesByQueue": {f"{queue}::{virtual_host}": [record(d) for d in deliveries]},
    }


def encode_event(
    queue: str, deliveries: Sequence[Delivery], arn: str, virtual_host: str = "/"
) -> bytes:
    """build_event's result as compact JSON, assembled from each record's encoded bytes."""
    head = _compact(
        {"eventSource": EVENT_SOURCE, "eventSourceArn": arn, "rmqMessagesByQueue": None}
    )
    key = _compact(f"{queue}::{virtual_host}")
    records = b",".join(delivery.record_json for delivery in deliveries)
    # head ends with `null}`: the queue's records take the place of that null.
    return b"".join((head[:-5], b"{", key, b":[", records, b"]}}"))


def _compact(value: object) -> bytes:
    """Compact JSON, non-ASCII text as UTF-8."""
    return orjson.dumps(value, default=str)
