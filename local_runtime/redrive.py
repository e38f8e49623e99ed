"""Moving dead-lettered messages back to their queue once the cause is fixed."""

from __future__ import annotations

import logging

import pika
import pika.exceptions

from local_runtime.brokers import parameters

LOGGER = logging.getLogger(__name__)


def redrive(queue: str, dead_letter_queue: str, amqp_url: str, limit: int | None = None) -> int:
    """Republish up to `limit` messages from the DLQ to the function's queue; returns the count.

    Each message is published with confirms straight to the queue (default exchange), body and
    properties unchanged but for the broker's x-death and delivery-count headers, and only then
    removed from the DLQ: a failure part-way leaves it where it was.
    """
    connection = pika.BlockingConnection(parameters(amqp_url))
    moved = 0
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        while limit is None or moved < limit:
            method, properties, body = channel.basic_get(dead_letter_queue, auto_ack=False)
            if method is None:
                break
            headers = {
                k: v
                for k, v in (properties.headers or {}).items()
                if k
                not in (
                    "x-death",
                    "x-delivery-count",
                    "x-first-death-exchange",
                    "x-first-death-queue",
                    "x-first-death-reason",
                    "x-last-death-exchange",
                    "x-last-death-queue",
                    "x-last-death-reason",
                )
            }
            properties.headers = headers or None
            channel.basic_publish("", queue, body, properties, mandatory=True)
            channel.basic_ack(method.delivery_tag)
            moved += 1
    finally:
        if connection.is_open:
            connection.close()
    LOGGER.info("moved %d message(s) from %s to %s", moved, dead_letter_queue, queue)
    return moved
