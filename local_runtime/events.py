"""Builds the `aws:rmq` event exactly as Lambda's Amazon MQ event source mapping does."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pika

EVENT_SOURCE = "aws:rmq"
LOCAL_REGION = "us-east-1"
LOCAL_ACCOUNT = "000000000000"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # a synchronous invocation's payload limit
RECORD_OVERHEAD_BYTES = 512  # JSON of basicProperties and keys around each record's data


@dataclass(frozen=True)
class Delivery:
    """One message as the broker delivered it."""

    body: bytes
    properties: pika.BasicProperties
    redelivered: bool = False
    delivery_tag: int = 0

    @property
    def event_size(self) -> int:
        """Bytes this message adds to an event: base64 data plus the record's envelope."""
        return 4 * ((len(self.body) + 2) // 3) + RECORD_OVERHEAD_BYTES


def broker_arn(host: str, port: int, region: str = LOCAL_REGION, account: str = LOCAL_ACCOUNT) -> str:
    """A stable, AWS-shaped broker ARN for a local broker address."""
    broker_id = uuid.uuid5(uuid.NAMESPACE_URL, f"amqp://{host}:{port}")
    return f"arn:aws:mq:{region}:{account}:broker:local:b-{broker_id}"


def timestamp_text(seconds: int | None) -> str | None:
    """AMQP timestamp as AWS renders it: 'Jan 1, 1970, 12:33:41 AM' (UTC)."""
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    hour = moment.hour % 12 or 12
    return f"{moment:%b} {moment.day}, {moment.year}, {hour}:{moment:%M:%S} {moment:%p}"


def header_value(value: object) -> object:
    """Strings become {"bytes": [...]}, numbers and booleans stay, tables and lists recurse."""
    if isinstance(value, str):
        return {"bytes": list(value.encode())}
    if isinstance(value, bytes | bytearray):
        return {"bytes": list(value)}
    if isinstance(value, Mapping):
        return {str(k): header_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [header_value(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return timestamp_text(int(value.replace(tzinfo=value.tzinfo or timezone.utc).timestamp()))
    return value


def basic_properties(props: pika.BasicProperties, body_size: int) -> dict[str, Any]:
    """Every field AWS sends, in AWS's order, unset ones null."""
    return {
        "contentType": props.content_type,
        "contentEncoding": props.content_encoding,
        "headers": None if props.headers is None else header_value(props.headers),
        "deliveryMode": props.delivery_mode,
        "priority": props.priority,
        "correlationId": props.correlation_id,
        "replyTo": props.reply_to,
        "expiration": props.expiration,
        "messageId": props.message_id,
        "timestamp": timestamp_text(props.timestamp),
        "type": props.type,
        "userId": props.user_id,
        "appId": props.app_id,
        "clusterId": props.cluster_id,
        "bodySize": body_size,
    }


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
