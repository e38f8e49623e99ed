"""Message properties that are not valid UTF-8 still make a JSON-serialisable event."""

import json
from decimal import Decimal

import pika

from local_runtime.events import Delivery, build_event, encode_event
from local_runtime.pika_properties import ReceivedProperties


def test_non_utf8_properties_are_decoded_with_replacement_characters():
    properties = pika.BasicProperties(message_id=b"id-\xff", correlation_id=b"\xfe", app_id="ok")
    event = build_event("rule.age", [Delivery(b"{}", properties)], "arn:aws:mq:x")
    record = event["rmqMessagesByQueue"]["rule.age::/"][0]["basicProperties"]
    assert record["messageId"] == "id-\ufffd"
    assert record["correlationId"] == "\ufffd"
    assert record["appId"] == "ok"
    json.dumps(event)
    assert Delivery(b"{}", properties).event_size > 0


def test_encoded_event_is_the_event_as_compact_json():
    properties = pika.BasicProperties(
        content_type="application/json",
        headers={"source": "api", "n": 3, "nested": {"é": ["x", Decimal("1.5")]}},
        message_id="m-1",
        timestamp=2021,
        delivery_mode=2,
    )
    deliveries = [
        Delivery(b'{"ticket":"t"}', properties, redelivered=True, delivery_tag=1),
        Delivery(b"\x00\xff binary", pika.BasicProperties(), delivery_tag=2),
    ]
    event = build_event("rule.age", deliveries, "arn:aws:mq:x", "credit")
    encoded = encode_event("rule.age", deliveries, "arn:aws:mq:x", "credit")
    assert encoded == json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    assert list(json.loads(encoded)) == ["eventSource", "eventSourceArn", "rmqMessagesByQueue"]
    # the sizes the batcher adds up are what the records take in the event
    empty = encode_event("rule.age", [], "arn:aws:mq:x", "credit")
    assert len(encoded) - len(empty) == sum(d.event_size for d in deliveries) - 1


def test_a_decimal_header_is_sent_with_the_exact_digits_gson_writes():
    """A BigDecimal 1.50 (unscaled 150, scale 2) is the JSON number 1.50 in the event bytes."""
    sent = pika.BasicProperties(headers={"price": Decimal("1.50"), "tiny": Decimal("0.0000001")})
    received = ReceivedProperties().decode(b"".join(sent.encode()))
    encoded = encode_event("rule.age", [Delivery(b"{}", received)], "arn:aws:mq:x")
    assert b'"headers":{"price":1.5,"tiny":1E-7}' in encoded  # pika normalises 1.50 to 1.5
    raw = b"".join(sent.encode()).replace(b"D\x01\x00\x00\x00\x0f", b"D\x02\x00\x00\x00\x96")
    encoded = encode_event("q", [Delivery(b"{}", ReceivedProperties().decode(raw))], "arn")
    assert b'"price":1.50' in encoded
