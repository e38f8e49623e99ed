"""Events match AWS's `aws:rmq` sample key for key, and parse with Powertools' data class."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pika
import pytest
from aws_lambda_powertools.utilities.data_classes.rabbit_mq_event import RabbitMQEvent

from credit.rmq_event import records
from local_runtime.amqp_fields import render_value, timestamp_text
from local_runtime.events import Delivery, broker_arn, build_event
from tests.helpers import TEST_VHOST
from tests.runtime.conftest import load_spec, one_at_a_time, read_records, running

SAMPLE_PATH = Path(__file__).resolve().parent.parent / "events" / "aws-rmq-sample.json"
SAMPLE: dict[str, Any] = json.loads(SAMPLE_PATH.read_text())
[(SAMPLE_KEY, [SAMPLE_RECORD])] = SAMPLE["rmqMessagesByQueue"].items()
SAMPLE_BODY = base64.b64decode(SAMPLE_RECORD["data"])
ARN = re.compile(r"arn:aws:mq:[a-z0-9-]+:\d{12}:broker:[\w-]+:b-[0-9a-f-]{36}")


def sample_properties(user_id: str) -> pika.BasicProperties:
    """The properties behind AWS's sample record, as a publisher would set them."""
    return pika.BasicProperties(
        content_type="text/plain",
        headers={"header1": "value1", "header2": "value2", "numberInHeader": 10},
        delivery_mode=1,
        priority=34,
        expiration="60000",
        timestamp=2021,
        user_id=user_id,
    )


def key_paths(value: object, path: str = "") -> list[str]:
    """Every key of a JSON document, in document order, with the path leading to it."""
    if isinstance(value, dict):
        paths = []
        for key, item in value.items():
            paths.append(f"{path}/{key}")
            paths.extend(key_paths(item, f"{path}/{key}"))
        return paths
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in key_paths(item, f"{path}[{index}]")]
    return []


def normalised(event: dict[str, Any]) -> dict[str, Any]:
    """The event with the queue key renamed to the sample's, so documents compare whole."""
    [(_, messages)] = event["rmqMessagesByQueue"].items()
    return {**event, "rmqMessagesByQueue": {SAMPLE_KEY: messages}}


@pytest.mark.integration
def test_an_event_from_the_broker_matches_aws_sample_key_for_key(broker, amqp_url, record_file):
    queue, spec = one_at_a_time(broker, record_file)
    broker.publish(queue, SAMPLE_BODY, **vars(sample_properties(user_id="guest")))

    with running(spec, amqp_url) as run:
        run.wait_for_reports(1)

    [invocation] = read_records(record_file, "invoke")
    event = invocation["event"]
    assert list(event["rmqMessagesByQueue"]) == [f"{queue}::{TEST_VHOST}"], (
        "queue::vhost names the virtual host actually consumed"
    )
    assert key_paths(normalised(event)) == key_paths(SAMPLE), "same keys, same order"
    assert ARN.fullmatch(event["eventSourceArn"]) and ARN.fullmatch(SAMPLE["eventSourceArn"])
    [record] = next(iter(event["rmqMessagesByQueue"].values()))
    expected = json.loads(json.dumps(SAMPLE_RECORD))
    expected["basicProperties"].update(userId="guest", bodySize=len(SAMPLE_BODY))
    assert record == expected
    assert record["data"] == SAMPLE_RECORD["data"]
    properties = record["basicProperties"]
    assert properties["timestamp"] == "Jan 1, 1970, 12:33:41 AM"
    assert properties["headers"]["header1"] == {"bytes": [118, 97, 108, 117, 101, 49]}
    assert type(properties["headers"]["numberInHeader"]) is int
    assert type(properties["deliveryMode"]) is int and type(properties["bodySize"]) is int
    assert properties["correlationId"] is None and properties["messageId"] is None


def test_a_built_event_equals_aws_sample_apart_from_the_body_size_aws_made_up():
    delivery = Delivery(SAMPLE_BODY, sample_properties(user_id="AIDACKCEVSQ6C2EXAMPLE"))
    event = build_event("test", [delivery], SAMPLE["eventSourceArn"])
    expected = json.loads(json.dumps(SAMPLE))
    expected["rmqMessagesByQueue"]["test::/"][0]["basicProperties"]["bodySize"] = 43
    assert json.dumps(event) == json.dumps(expected), "byte for byte, key order included"


@pytest.mark.integration
def test_header_types_survive_the_broker_as_aws_renders_them(broker, amqp_url, record_file):
    queue, spec = one_at_a_time(broker, record_file)
    headers = {
        "text": "café",
        "count": 7,
        "negative": -3,
        "flag": True,
        "table": {"inner": "v"},
        "list": ["a", 1],
        "price": Decimal("1.5"),
    }
    broker.publish(queue, b"{}", headers=headers, message_id="m-1", app_id="tests")

    with running(spec, amqp_url) as run:
        run.wait_for_reports(1)

    [invocation] = read_records(record_file, "invoke")
    [record] = next(iter(invocation["event"]["rmqMessagesByQueue"].values()))
    assert record["basicProperties"]["headers"] == {
        "text": {"bytes": [99, 97, 102, -61, -87]},  # Java's signed bytes for UTF-8 "é"
        "count": 7,
        "negative": -3,
        "flag": True,
        "table": {"inner": {"bytes": [118]}},
        "list": [{"bytes": [97]}, 1],
        "price": 1.5,
    }
    assert record["basicProperties"]["messageId"] == "m-1"
    assert record["basicProperties"]["appId"] == "tests"
    assert record["basicProperties"]["deliveryMode"] == 2


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (2021, "Jan 1, 1970, 12:33:41 AM"),
        (0, "Jan 1, 1970, 12:00:00 AM"),
        (43_200, "Jan 1, 1970, 12:00:00 PM"),
        (1_700_000_000, "Nov 14, 2023, 10:13:20 PM"),
        (None, None),
    ],
)
def test_timestamps_are_written_like_aws(seconds, text):
    assert timestamp_text(seconds) == text


def as_sent_by_pika(value: object) -> object:
    """A header value as it reaches a handler once pika has put it on the wire."""
    pieces: list[bytes] = []
    pika.data.encode_value(pieces, value)
    return render_value(b"".join(pieces))


def test_header_dates_and_bytes_are_rendered_like_aws():
    moment = datetime(2024, 2, 29, 13, 5, 9, tzinfo=UTC)
    assert as_sent_by_pika(moment) == "Feb 29, 2024, 1:05:09 PM"
    # pika sends bytes as a byte array ('x'): a Java byte[], which Gson writes as a bare array
    assert as_sent_by_pika(b"\x00\x7f\x80\xff") == [0, 127, -128, -1]
    assert as_sent_by_pika("é") == {"bytes": [-61, -87]}  # a long string: a LongString


@pytest.mark.integration
def test_events_from_the_broker_parse_with_powertools_rabbitmq_event(broker, amqp_url, record_file):
    queue = broker.new_queue()
    spec = load_spec("recorder", queue, record_file, batch_size=2, maximum_batching_window=0.3)
    broker.declare(spec)
    bodies = [json.dumps({"ticket": f"t-{n}", "age": 20 + n}).encode() for n in range(2)]
    for number, body in enumerate(bodies):
        broker.publish(
            queue,
            body,
            content_type="application/json",
            message_id=f"id-{number}",
            headers={"attempt": number},
            timestamp=1_700_000_000,
        )

    with running(spec, amqp_url) as run:
        run.wait_for_reports(1)

    [invocation] = read_records(record_file, "invoke")
    parsed = RabbitMQEvent(invocation["event"])
    assert parsed.event_source == "aws:rmq"
    assert ARN.fullmatch(parsed.event_source_arn)
    [(key, messages)] = parsed.rmq_messages_by_queue.items()
    assert key == f"{queue}::{TEST_VHOST}"
    assert [m.json_data for m in messages] == [json.loads(b) for b in bodies]
    assert [m.decoded_data for m in messages] == [b.decode() for b in bodies]
    assert [m.basic_properties.message_id for m in messages] == ["id-0", "id-1"]
    assert [m.basic_properties.headers for m in messages] == [{"attempt": 0}, {"attempt": 1}]
    first = messages[0]
    assert first.basic_properties.content_type == "application/json"
    assert first.basic_properties.delivery_mode == 2
    assert first.basic_properties.body_size == len(bodies[0])
    assert first.basic_properties.timestamp == "Nov 14, 2023, 10:13:20 PM"
    assert first.basic_properties.get_type is None
    assert first.redelivered is False
    # and with the project's own reader, which the rule functions use
    assert [r.body for r in records(invocation["event"])] == bodies
    assert {r.queue for r in records(invocation["event"])} == {queue}


def test_the_broker_arn_is_stable_and_aws_shaped():
    arn = broker_arn("127.0.0.1", 5672)
    assert arn == broker_arn("127.0.0.1", 5672) != broker_arn("127.0.0.1", 5673)
    assert ARN.fullmatch(arn)
