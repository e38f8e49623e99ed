"""Message properties that are not valid UTF-8 still make a JSON-serialisable event."""

import json

import pika

from local_runtime.events import Delivery, build_event


def test_non_utf8_properties_are_decoded_with_replacement_characters():
    properties = pika.BasicProperties(message_id=b"id-\xff", correlation_id=b"\xfe", app_id="ok")
    event = build_event("rule.age", [Delivery(b"{}", properties)], "arn:aws:mq:x")
    record = event["rmqMessagesByQueue"]["rule.age::/"][0]["basicProperties"]
    assert record["messageId"] == "id-\ufffd"
    assert record["correlationId"] == "\ufffd"
    assert record["appId"] == "ok"
    json.dumps(event)
    assert Delivery(b"{}", properties).event_size > 0
