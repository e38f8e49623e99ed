"""Builds the `aws:rmq` event exactly as Lambda's Amazon MQ event source mapping does."""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
import pika

from local_runtime.amqp_fields import PropertiesError, render_properties
from local_runtime.pika_properties import wire_bytes

LOGGER = logging.getLogger(__name__)
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
        both use these bytes, so no record is serialised twice. Raises PropertiesError when
        the message cannot become a record."""
        if self._record_json is None:
            try:
                self._record_json = _compact(record(self))
            except orjson.JSONEncodeError as exc:
                raise PropertiesError(f"the record cannot be written as JSON: {exc}") from exc
        return self._record_json

    @property
    def event_size(self) -> int:
        """Bytes this message adds to an event: its record and the comma before the next."""
        return len(self.record_json) + 1


def unfit(delivery: Delivery) -> str | None:
    """Why a message can go into no event (to follow "message X"), or None when it can."""
    try:
        size = delivery.event_size
    except PropertiesError as exc:
        return f"cannot be turned into an event: {exc}"
    except Exception as exc:  # whatever a message holds, it must not fail its neighbours
        LOGGER.exception("rendering a record failed")
        return f"cannot be turned into an event: {exc!r}"
    if size > RECORD_BUDGET_BYTES:
        return f"of {len(delivery.body)} bytes cannot fit a 6 MB event"
    return None


def broker_arn(
    host: str, port: int, region: str = LOCAL_REGION, account: str = LOCAL_ACCOUNT
) -> str:
    """A stable, AWS-shaped broker ARN for a local broker address."""
    broker_id = uuid.uuid5(uuid.NAMESPACE_URL, f"amqp://{host}:{port}")
    return f"arn:aws:mq:{region}:{account}:broker:local:b-{broker_id}"


def record(delivery: Delivery) -> dict[str, Any]:
    """One message's record; raises PropertiesError when its properties cannot be rendered."""
    raw = wire_bytes(delivery.properties)
    return {
        "basicProperties": render_properties(raw, len(delivery.body)),
        "redelivered": delivery.redelivered,
        "data": base64.b64encode(delivery.body).decode("ascii"),
    }


def build_event(
    queue: str, deliveries: Sequence[Delivery], arn: str, virtual_host: str = "/"
) -> dict[str, Any]:
    """The event for one batch of one queue, as the handler reads it: encode_event's JSON,
    parsed (a decimal header's exact digits are in that JSON, a float here)."""
    loaded: dict[str, Any] = orjson.loads(encode_event(queue, deliveries, arn, virtual_host))
    return loaded


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
    return orjson.dumps(value)
