"""Hand-encoded message properties: pika sends them as given, and the poison is poison to pika."""

from __future__ import annotations

import pika
import pika.frame
import pytest

from tests.faults import headers


def test_pika_sends_what_encode_returns_as_the_content_header():
    props = headers.properties(
        "poison-header-1",
        headers.table(headers.entry(b"k", b"S", headers.long_string(b"v"))),
        timestamp=5,
    )
    frame = pika.frame.Header(1, 3, props).marshal()
    assert frame[7:].startswith(b"\x00\x3c\x00\x00" + (3).to_bytes(8, "big") + props.wire)


def test_the_hand_made_bytes_are_what_pika_encodes_for_the_same_properties():
    props = headers.properties(
        "poison-header-1",
        headers.table(headers.entry(b"k", b"S", headers.long_string(b"v"))),
        timestamp=5,
    )
    same = pika.BasicProperties(
        content_type="application/json",
        headers={"k": "v"},
        delivery_mode=2,
        message_id="poison-header-1",
        timestamp=5,
    )
    assert b"".join(same.encode()) == props.wire
    decoded = pika.BasicProperties()
    decoded.decode(props.wire)
    assert (decoded.headers, decoded.message_id) == ({"k": "v"}, same.message_id)


@pytest.mark.parametrize(
    "kind",
    [
        "headers nested 1,000 deep",
        "arrays nested 1,000 deep",
        "header timestamp 2**63",
        "header double NaN",
        "header float infinity",
        "header of an unknown type",
    ],
)
def test_header_poison_breaks_pikas_decoder(kind):
    wire = headers.POISON[kind]("poison-header-1").wire
    with pytest.raises(Exception):  # noqa: B017 - each kind breaks it its own way
        pika.BasicProperties().decode(wire)


def test_a_dead_letter_queue_holding_more_than_its_poison_is_flagged():
    log = headers.HeaderPoisonLog()
    log.queued.update({"rule.age": 2, "rule.value": 1})
    depths = {"rule.age.dlq": 1, "rule.value.dlq": 4}
    problems = headers.dead_letter_problems(log, depths, {"poison-header-0"})
    assert problems == [
        "rule.value.dlq holds 4 messages, 3 more than the poison sent there: "
        "good messages were dead-lettered"
    ]
    assert headers.dead_letter_problems(log, {"rule.age.dlq": 2, "rule.value.dlq": 1}, set()) == []
