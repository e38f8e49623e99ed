"""Redrive: dead-lettered messages go back to their queue, unchanged but for the death marks;
what it cannot move stays where it was, reported one by one."""

import struct
import time
import uuid

import pika
import pytest

from credit import topology
from local_runtime import pika_properties
from local_runtime.amqp_fields import render_properties
from local_runtime.pika_properties import RawProperties, wire_bytes
from local_runtime.redrive import redrive
from tests.runtime import amqp_wire as wire

pytestmark = pytest.mark.integration


@pytest.fixture
def source(services_ready):
    pika_properties.install()  # so this test's own channel reads properties as bytes too
    name = f"test.redrive.{uuid.uuid4().hex[:8]}"
    event_source = topology.RuleQueue(name=name, routing_key=name)
    connection = pika.BlockingConnection(pika.URLParameters(services_ready["AMQP_URL"]))
    channel = connection.channel()
    channel.confirm_delivery()  # every message is in the DLQ before redrive looks
    topology.declare(channel, [event_source])
    yield event_source, channel
    channel.queue_delete(name)
    channel.queue_delete(f"{name}.dlq")
    connection.close()


def take_all(channel, queue, render=True):
    """(body, rendered basicProperties without the broker's delivery count) of each message."""
    taken = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return taken
        if not render:
            taken.append((body, None))
            continue
        rendered = render_properties(wire_bytes(properties), len(body))
        if rendered["headers"] is not None:
            rendered["headers"].pop("x-delivery-count", None)  # quorum queues add it
        taken.append((body, rendered))


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
    assert (
        redrive(
            event_source.name, event_source.dead_letter_queue, services_ready["AMQP_URL"], limit=2
        ).moved
        == 2
    )
    assert (
        redrive(event_source.name, event_source.dead_letter_queue, services_ready["AMQP_URL"]).moved
        == 1
    )
    assert channel.queue_declare(dlq, passive=True).method.message_count == 0
    received = [
        (body, p["messageId"], p["headers"]) for body, p in take_all(channel, event_source.name)
    ]
    assert received == [
        (f"message {i}".encode(), f"m{i}", {"trace": {"bytes": list(b"kept")}}) for i in range(3)
    ]


def test_redrive_keeps_every_header_type_pika_would_have_lost(source, services_ready):
    event_source, channel = source
    dlq = event_source.dead_letter_queue
    raw = wire.with_headers(
        b"typed",
        (b"x-death", wire.array([b"F" + wire.table((b"queue", wire.long_string(b"q")))])),
        (b"ratio", b"d" + struct.pack(">d", 1.5)),  # pika decodes a double as the integer 1
        (b"small", b"f" + struct.pack(">f", 0.25)),
        (b"blob", wire.byte_array(b"\x00\xff")),  # pika reads it back as a long string
    )
    channel.basic_publish("", dlq, b"{}", RawProperties(raw))

    report = redrive(event_source.name, event_source.dead_letter_queue, services_ready["AMQP_URL"])

    assert (report.moved, report.unmoved) == (1, [])
    [(_, rendered)] = take_all(channel, event_source.name)
    assert rendered["headers"] == {"ratio": 1.5, "small": 0.25, "blob": [0, -1]}


def test_poison_at_the_head_of_the_dlq_stays_there_reported_and_the_rest_moves(
    source, services_ready
):
    event_source, channel = source
    dlq = event_source.dead_letter_queue
    poison = {
        b"deep": wire.with_headers(b"p-deep", (b"n", wire.nested(1000))),
        b"far future": wire.with_headers(b"p-time", (b"t", b"T" + struct.pack(">Q", 2**63))),
        b"unsigned byte": wire.with_headers(b"p-tag", (b"b", b"B\x05")),
    }
    for body, raw in poison.items():
        channel.basic_publish("", dlq, body, RawProperties(raw))
    for index in range(3):
        channel.basic_publish(
            "", dlq, f"good {index}".encode(), pika.BasicProperties(message_id=f"g{index}")
        )

    began = time.monotonic()
    report = redrive(event_source.name, event_source.dead_letter_queue, services_ready["AMQP_URL"])
    again = redrive(
        event_source.name, event_source.dead_letter_queue, services_ready["AMQP_URL"]
    )  # tries each once, never loops
    took = time.monotonic() - began

    assert report.moved == 3
    assert [(u.position, u.message_id) for u in report.unmoved] == [
        (1, "p-deep"),
        (2, "p-time"),
        (3, "p-tag"),
    ]
    reasons = [u.reason for u in report.unmoved]
    assert all(r.startswith("the runtime would set it aside again") for r in reasons)
    assert "deeper than 200 levels" in reasons[0]
    assert "outside the years 1-9999" in reasons[1]
    assert "field type 'B'" in reasons[2]
    assert (again.moved, [u.message_id for u in again.unmoved]) == (
        0,
        ["p-deep", "p-time", "p-tag"],
    )
    assert took < 10
    assert [body for body, _ in take_all(channel, event_source.name)] == [
        b"good 0",
        b"good 1",
        b"good 2",
    ]
    assert sorted(body for body, _ in take_all(channel, dlq, render=False)) == sorted(poison)
