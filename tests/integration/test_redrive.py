"""Redrive: dead-lettered messages go back to their queue, unchanged but for the death marks."""

import uuid

import pika
import pytest

from credit import topology
from local_runtime.redrive import redrive

pytestmark = pytest.mark.integration


@pytest.fixture
def source(services_ready):
    name = f"test.redrive.{uuid.uuid4().hex[:8]}"
    event_source = topology.RuleQueue(name=name, routing_key=name)
    connection = pika.BlockingConnection(pika.URLParameters(services_ready["AMQP_URL"]))
    channel = connection.channel()
    topology.declare(channel, [event_source])
    yield event_source, channel
    channel.queue_delete(name)
    channel.queue_delete(f"{name}.dlq")
    connection.close()


def test_redrive_moves_every_message_back_without_its_death_history(source, services_ready):
    event_source, channel = source
    dlq = event_source.dead_letter_queue
    for index in range(3):
        channel.basic_publish(
            "",
            dlq,
            f"message {index}".encode(),
            pika.BasicProperties(
                message_id=f"m{index}",
                headers={"x-death": [{"queue": event_source.name}], "trace": "kept"},
            ),
        )
    assert redrive(event_source.name, dlq, services_ready["AMQP_URL"], limit=2) == 2
    assert redrive(event_source.name, dlq, services_ready["AMQP_URL"]) == 1
    assert channel.queue_declare(dlq, passive=True).method.message_count == 0
    received = []
    for _ in range(3):
        _, properties, body = channel.basic_get(event_source.name, auto_ack=True)
        headers = dict(properties.headers)
        headers.pop("x-delivery-count", None)  # added by the quorum queue on delivery
        received.append((body, properties.message_id, headers))
    assert received == [(f"message {i}".encode(), f"m{i}", {"trace": "kept"}) for i in range(3)]
