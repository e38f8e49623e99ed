"""Every AMQP field type, sent through the real broker, arrives as AWS's poller renders it.

The expected values are what com.rabbitmq.client.impl.ValueReader.readFieldValue returns for
each tag (LongString, Integer, BigDecimal, Date, Map, List, Byte, Double, Float, Long, Short,
Integer for 'u', Boolean, byte[], null), written by Gson: a LongString as {"bytes": [...]},
a byte[] as a bare array, Java's bytes signed, a Date in Gson's default format (UTC).
"""

from __future__ import annotations

import struct

import pytest

from tests.runtime import amqp_wire as wire
from tests.runtime.conftest import one_at_a_time, read_records, running

pytestmark = pytest.mark.integration

EVERY_TYPE = (
    (b"S", wire.long_string("café".encode()), {"bytes": [99, 97, 102, -61, -87]}),
    (b"S-binary", wire.long_string(b"\x80\xff"), {"bytes": [-128, -1]}),
    (b"I", b"I" + struct.pack(">i", -7), -7),
    (b"D", b"D" + struct.pack(">Bi", 2, 150), 1.5),  # BigDecimal 1.50; JSON text checked below
    (b"T", b"T" + struct.pack(">q", 2021), "Jan 1, 1970, 12:33:41 AM"),
    (b"F", b"F" + wire.table((b"inner", wire.long_string(b"v"))), {"inner": {"bytes": [118]}}),
    (b"A", wire.array([wire.long_string(b"a"), b"I" + struct.pack(">i", 1)]), [{"bytes": [97]}, 1]),
    (b"b", b"b" + struct.pack(">b", -128), -128),
    (b"d", b"d" + struct.pack(">d", 1.5), 1.5),
    (b"f", b"f" + struct.pack(">f", 1.1), 1.1),
    (b"l", b"l" + struct.pack(">q", -(2**63)), -(2**63)),
    (b"s", b"s" + struct.pack(">h", -2), -2),
    (b"u", b"u" + struct.pack(">H", 65535), 65535),
    (b"t", b"t\x01", True),
    (b"x", wire.byte_array(b"\x00\x80"), [0, -128]),
    (b"V", b"V", None),
)


def test_every_field_type_arrives_as_the_java_client_and_gson_render_it(
    broker, amqp_url, record_file
):
    queue, spec = one_at_a_time(broker, record_file)
    raw = wire.properties(
        headers=wire.table(*((key, encoded) for key, encoded, _ in EVERY_TYPE)),
        message_id=b"typed",
        timestamp=struct.pack(">q", -86_400),  # signed, as the Java client reads it
    )
    broker.publish_raw(queue, b"{}", raw)

    with running(spec, amqp_url) as run:
        run.wait_for_reports(1)

    [invocation] = read_records(record_file, "invoke")
    [record] = next(iter(invocation["event"]["rmqMessagesByQueue"].values()))
    headers = record["basicProperties"]["headers"]
    headers.pop("x-delivery-count", None)  # the broker's own, when it redelivers
    assert headers == {key.decode(): expected for key, _, expected in EVERY_TYPE}
    for key, _, expected in EVERY_TYPE:
        assert type(headers[key.decode()]) is type(expected), key
    assert record["basicProperties"]["timestamp"] == "Dec 31, 1969, 12:00:00 AM"
    assert record["basicProperties"]["messageId"] == "typed"
