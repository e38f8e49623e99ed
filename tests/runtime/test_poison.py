"""Poison in a message's properties is one bad message: set aside alone, the connection kept.

Real poison goes to the real broker: pika cannot encode most of it, so the properties are
hand-made bytes (tests/runtime/amqp_wire.py). Whatever the broker accepts must reach the DLQ
alone, and every good message around it must be invoked exactly once.
"""

from __future__ import annotations

import logging
import struct

import pika
import pika.exceptions
import pytest

from local_runtime.amqp_fields import MAX_DEPTH
from local_runtime.pika_properties import RawProperties
from tests.runtime import amqp_wire as wire
from tests.runtime.conftest import TEST_EXCHANGE, load_spec, read_records, running, wait_until

pytestmark = pytest.mark.integration


def headers_of(name: str, *entries: tuple[bytes, bytes]) -> bytes:
    return wire.with_headers(name.encode(), *entries)


POISON = {
    "deep": headers_of("deep", (b"n", wire.nested(1000))),  # pika: RecursionError
    "one-too-deep": headers_of("one-too-deep", (b"n", wire.nested(MAX_DEPTH))),
    "header-2**63": headers_of("header-2**63", (b"t", b"T" + struct.pack(">Q", 2**63))),
    "timestamp-2**63": wire.properties(
        message_id=b"timestamp-2**63", timestamp=struct.pack(">Q", 2**63)
    ),
    "tag-B": headers_of("tag-B", (b"b", b"B\x05")),  # RabbitMQ's; unknown to the Java client
    "tag-i": headers_of("tag-i", (b"i", b"i" + struct.pack(">I", 5))),
    # RabbitMQ 3.13 refuses these at publish time; another broker may pass them on
    "tag-Z": headers_of("tag-Z", (b"z", b"Z\x00")),
    "truncated": wire.properties(
        headers=struct.pack(">I", 50) + wire.short(b"a") + b"I\x00\x00", message_id=b"truncated"
    ),
    "array-4GB": headers_of("array-4GB", (b"a", b"A" + struct.pack(">I", 0xFFFFFFF0) + b"V")),
    "nan": headers_of("nan", (b"d", b"d" + struct.pack(">d", float("nan")))),
}
# Hostile but valid: the Java client reads these, so AWS delivers them, and so do we.
ODD = {
    "utf8": wire.properties(
        headers=wire.table((b"k\xff", wire.long_string(b"\xfe"))), message_id=b"id-\xff"
    ),
    "big-array": headers_of("big-array", (b"a", wire.array([b"t\x01"] * 30_000))),
    "big-bytes": headers_of("big-bytes", (b"x", wire.byte_array(bytes(range(256)) * 400))),
    "deepest": headers_of("deepest", (b"n", wire.nested(MAX_DEPTH - 1))),
}


def publish_poison(amqp_url: str, queue: str) -> list[str]:
    """Publish each poison message on a connection of its own (the broker closes one it
    refuses); returns the names it accepted."""
    accepted = []
    for name, raw in POISON.items():
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish(
                TEST_EXCHANGE, queue, f"poison-{name}".encode(), RawProperties(raw), mandatory=True
            )
            accepted.append(name)
        except pika.exceptions.AMQPError:
            continue
        finally:
            if connection.is_open:
                connection.close()
    return accepted


def invocations(record_file):
    """(body, redelivered, event or None) of every message the function was invoked with."""
    return [
        (body, redelivered, invocation["event"])
        for invocation in read_records(record_file, "invoke")
        for body, redelivered in zip(invocation["bodies"], invocation["redelivered"], strict=True)
    ]


def test_poison_among_good_messages_is_dead_lettered_alone_and_the_connection_stays_up(
    broker, amqp_url, record_file, caplog
):
    queue = broker.new_queue()
    spec = load_spec("recorder", queue, record_file, batch_size=1, maximum_batching_window=0)
    broker.declare(spec)
    caplog.set_level(logging.ERROR, logger="local_runtime.mapping")
    good = [f"good-{n}" for n in range(40)]

    with running(spec, amqp_url) as run:
        for index, body in enumerate(good[:20]):
            broker.publish(queue, body.encode(), message_id=body)
            if index == 2:
                accepted = publish_poison(amqp_url, queue)
        for name, raw in ODD.items():
            broker.publish_raw(queue, f"odd-{name}".encode(), raw)
        for body in good[20:]:
            broker.publish(queue, body.encode(), message_id=body)
        expected = good + [f"odd-{name}" for name in ODD]
        wait_until(lambda: len(invocations(record_file)) >= len(expected), timeout=30)
        wait_until(lambda: broker.count(f"{queue}.dlq") >= len(accepted), timeout=10)
        connections = run.mapping.connections
        reports = list(run.reports)

    assert {"deep", "header-2**63", "timestamp-2**63", "tag-B"} <= set(accepted)
    seen = invocations(record_file)
    assert sorted(body for body, _, _ in seen) == sorted(expected), "each exactly once"
    assert not any(redelivered for _, redelivered, _ in seen)
    assert all(report.ok for report in reports)
    assert connections == 1, "the mapping never reconnected"
    dead = sorted(body.decode() for _, _, body in broker.get_all(f"{queue}.dlq"))
    assert dead == sorted(f"poison-{name}" for name in accepted)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for name in accepted:
        assert f"message {name} " in logged
    assert "deeper than 200 levels" in logged and "outside the years 1-9999" in logged

    [utf8_event] = [event for body, _, event in seen if body == "odd-utf8"]
    [record] = next(iter(utf8_event["rmqMessagesByQueue"].values()))
    assert record["basicProperties"]["messageId"] == "id-\ufffd"
    assert record["basicProperties"]["headers"]["k\ufffd"] == {"bytes": [-2]}


def test_a_poison_message_inside_a_batch_leaves_its_batch_mates_one_invocation(
    broker, amqp_url, record_file
):
    queue = broker.new_queue()
    spec = load_spec("recorder", queue, record_file, batch_size=9, maximum_batching_window=5)
    broker.declare(spec)
    bodies = [f"mate-{n}" for n in range(9)]
    for body in bodies[:4]:
        broker.publish(queue, body.encode())
    broker.publish_raw(queue, b"poison-deep", POISON["deep"])
    for body in bodies[4:]:
        broker.publish(queue, body.encode())

    with running(spec, amqp_url) as run:
        [report] = run.wait_for_reports(1)
        wait_until(lambda: broker.count(f"{queue}.dlq") == 1)
        connections = run.mapping.connections

    assert report.ok and report.size == 9
    [invocation] = read_records(record_file, "invoke")
    assert invocation["bodies"] == bodies and not any(invocation["redelivered"])
    assert connections == 1
    assert [body for _, _, body in broker.get_all(f"{queue}.dlq")] == [b"poison-deep"]
