"""Moving dead-lettered messages back to their queue once the cause is fixed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from local_runtime import pika_properties
from local_runtime.amqp_fields import PropertiesError, message_id, without_headers
from local_runtime.brokers import parameters
from local_runtime.events import Delivery, unfit
from local_runtime.pika_properties import RawProperties, wire_bytes

LOGGER = logging.getLogger(__name__)
# What the broker adds when it dead-letters or redelivers a message; a redriven message
# starts afresh without them.
DEATH_HEADERS = frozenset(
    (
        "x-death",
        "x-delivery-count",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
    )
)


@dataclass(frozen=True)
class Unmoved:
    """A message redrive left in the dead-letter queue, and why."""

    position: int  # its place among the messages this run took from the queue, from 1
    message_id: str | None
    reason: str


@dataclass
class RedriveReport:
    """What one redrive did: how many messages it moved, and each one it could not."""

    dead_letter_queue: str
    queue: str
    moved: int = 0
    unmoved: list[Unmoved] = field(default_factory=list)


def redrive(
    queue: str, dead_letter_queue: str, amqp_url: str, limit: int | None = None
) -> RedriveReport:
    """Republish up to `limit` messages from the DLQ to the function's queue.

    Each message is published with confirms straight to the queue (default exchange), its
    body and properties byte for byte as they arrived but for the broker's death headers,
    and only then removed from the DLQ: a failure part-way leaves it where it was. A message
    that cannot be moved (the runtime would set it aside again, the broker refuses it) stays
    in the DLQ and is reported; it is held until the run ends, so each message is tried once.
    """
    pika_properties.install()  # a message pika cannot decode must not end the run
    report = RedriveReport(dead_letter_queue, queue)
    connection = pika.BlockingConnection(parameters(amqp_url))
    try:
        _move_all(connection, report, limit)
    finally:
        if connection.is_open:
            connection.close()  # what it still holds goes back to the DLQ
    LOGGER.info(
        "moved %d message(s) from %s to %s; %d left",
        report.moved,
        report.dead_letter_queue,
        report.queue,
        len(report.unmoved),
    )
    return report


def _move_all(connection: BlockingConnection, report: RedriveReport, limit: int | None) -> None:
    taker = connection.channel()
    publisher = _Publisher(connection)
    taken = 0
    while limit is None or report.moved < limit:
        method, properties, body = taker.basic_get(report.dead_letter_queue, auto_ack=False)
        if method is None:
            return
        taken += 1
        reason = _move(publisher, report.queue, Delivery(body, properties))
        if reason is None:
            taker.basic_ack(method.delivery_tag)
            report.moved += 1
            continue
        raw = wire_bytes(properties)
        report.unmoved.append(Unmoved(taken, message_id(raw), reason))
        LOGGER.warning("left message %d (id %s) in the DLQ: %s", taken, message_id(raw), reason)


def _move(publisher: _Publisher, queue: str, delivery: Delivery) -> str | None:
    """Publish one message to the queue; None when it went, else why it did not."""
    reason = unfit(delivery)
    if reason is not None:
        return f"the runtime would set it aside again: it {reason}"
    try:
        raw = without_headers(wire_bytes(delivery.properties), DEATH_HEADERS)
    except PropertiesError as exc:
        return f"its headers cannot be read: {exc}"
    return publisher.publish(queue, delivery.body, raw)


class _Publisher:
    """A confirming channel to the queue, opened again when the broker closes it."""

    def __init__(self, connection: BlockingConnection) -> None:
        self._connection = connection
        self._channel: BlockingChannel | None = None

    def publish(self, queue: str, body: bytes, raw: bytes) -> str | None:
        if self._channel is None or not self._channel.is_open:
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
        try:
            self._channel.basic_publish("", queue, body, RawProperties(raw), mandatory=True)
        except pika.exceptions.UnroutableError:
            return f"no queue named {queue} took it (unroutable)"
        except pika.exceptions.NackError:
            return "the broker refused it (nack)"
        except pika.exceptions.ChannelClosed as exc:
            return f"the broker refused it: {exc}"
        return None
