"""Properties decoded from their bytes as the Java client AWS uses reads them, and the pika seam.

The expected values follow com.rabbitmq.client.impl.ValueReader (readFieldValue, readTable,
readArray, readTimestamp) and ContentHeaderPropertyReader, rendered as Gson renders those Java
objects; no broker is needed here (test_field_types.py sends the same bytes through one).
"""

from __future__ import annotations

import inspect
import json
import random
import struct

import orjson
import pika
import pika.frame
import pika.spec
import pytest

from local_runtime import pika_properties
from local_runtime.amqp_fields import (
    MAX_DEPTH,
    PropertiesError,
    message_id,
    render_properties,
    render_value,
    shortest_float32,
    timestamp_text,
    without_headers,
)
from local_runtime.pika_properties import (
    RawProperties,
    ReceivedProperties,
    UndecodableProperties,
    wire_bytes,
)
from tests.runtime import amqp_wire as wire


def header_frame(raw: bytes, body_size: int = 2) -> bytes:
    """A content-header frame on channel 1 carrying these properties."""
    payload = struct.pack(">HHQ", pika.spec.BasicProperties.INDEX, 0, body_size) + raw
    return struct.pack(">BHL", pika.spec.FRAME_HEADER, 1, len(payload)) + payload + b"\xce"


def rendered_headers(*entries: tuple[bytes, bytes]) -> object:
    return render_properties(wire.with_headers(b"m", *entries), 0)["headers"]


def as_json(value: object) -> object:
    """What a handler parses: the rendering written by orjson and read back."""
    return json.loads(orjson.dumps(value))


# --- the seam in pika --------------------------------------------------------------------------


def test_pika_hands_the_frame_decoder_our_properties_and_their_bytes_untouched():
    """Fails when a pika upgrade stops building properties from spec.props or changes what
    decode() receives: then poison would fail the consumer connection again."""
    pika_properties.install()
    poison = wire.with_headers(b"deep", (b"n", wire.nested(1000)))
    consumed, frame = pika.frame.decode_frame(header_frame(poison) + b"trailing")
    assert consumed == len(header_frame(poison))
    assert isinstance(frame, pika.frame.Header) and frame.body_size == 2
    assert isinstance(frame.properties, ReceivedProperties)
    assert frame.properties.raw == poison
    assert wire_bytes(frame.properties) == poison


def test_pika_basic_properties_still_has_the_fields_we_decode_lazily():
    parameters = set(inspect.signature(pika.spec.BasicProperties.__init__).parameters) - {"self"}
    assert parameters == pika_properties.FIELDS


def test_received_properties_read_like_pika_s_own_for_other_pika_users():
    sent = pika.BasicProperties(message_id="m-1", headers={"n": 3, "s": "x"}, delivery_mode=2)
    received = ReceivedProperties().decode(wire_bytes(sent))
    assert received.message_id == "m-1"
    assert received.headers == {"n": 3, "s": "x"}
    assert received.delivery_mode == 2 and received.app_id is None


def test_received_properties_pika_cannot_decode_raise_a_clear_error_on_access():
    received = ReceivedProperties().decode(wire.with_headers(b"x", (b"n", wire.nested(1000))))
    with pytest.raises(UndecodableProperties, match="RecursionError"):
        _ = received.headers
    with pytest.raises(UndecodableProperties):  # every time, never a silent None
        _ = received.message_id
    with pytest.raises(AttributeError):
        _ = received.no_such_field


def test_raw_properties_are_sent_byte_for_byte():
    raw = wire.with_headers(b"id", (b"d", b"d" + struct.pack(">d", 1.5)))
    marshalled = pika.frame.Header(1, 2, RawProperties(raw)).marshal()
    assert marshalled == header_frame(raw)


# --- every field type as the Java client yields it ---------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        # 'S' -> LongString; Gson writes its one field, byte[] bytes, as signed numbers
        (wire.long_string("café".encode()), {"bytes": [99, 97, 102, -61, -87]}),
        (wire.long_string(b"\xff\xfe"), {"bytes": [-1, -2]}),  # not UTF-8: the same shape
        # 'x' -> byte[]; Gson writes a bare array
        (wire.byte_array(b"\x00\x7f\x80\xff"), [0, 127, -128, -1]),
        (b"b" + struct.pack(">b", -5), -5),  # readByte
        (b"s" + struct.pack(">h", -300), -300),  # readShort
        (b"u" + struct.pack(">H", 65535), 65535),  # readUnsignedShort
        (b"I" + struct.pack(">i", -(2**31)), -(2**31)),  # readInt
        (b"l" + struct.pack(">q", 2**63 - 1), 2**63 - 1),  # readLong
        (b"d" + struct.pack(">d", 1.5), 1.5),  # readDouble: pika gave 1
        (b"d" + struct.pack(">d", -0.0), -0.0),
        (b"f" + struct.pack(">f", 1.1), 1.1),  # readFloat; Float.toString is "1.1"
        (b"t\x00", False),
        (b"t\x02", True),  # readBoolean: any non-zero octet
        (b"T" + struct.pack(">q", 2021), "Jan 1, 1970, 12:33:41 AM"),  # new Date(s * 1000)
        (b"T" + struct.pack(">q", -1), "Dec 31, 1969, 11:59:59 PM"),  # signed, unlike pika
        (b"V", None),
        (b"F" + wire.table(), {}),
        (b"F" + wire.table((b"a", b"V"), (b"b", b"t\x01")), {"a": None, "b": True}),
        (
            wire.array([b"V", b"I" + struct.pack(">i", 7), wire.long_string(b"a")]),
            [None, 7, {"bytes": [97]}],
        ),
        (wire.array([]), []),
    ],
)
def test_each_field_type_is_what_the_java_client_reads_as_gson_writes_it(encoded, expected):
    value = render_value(encoded)
    assert as_json(value) == expected
    assert type(as_json(value)) is type(expected)


@pytest.mark.parametrize(
    ("scale", "unscaled", "text"),
    [
        (2, 150, "1.50"),  # new BigDecimal(150, 2): the digits exactly, trailing zero kept
        (0, -42, "-42"),
        (3, 5, "0.005"),
        (10, 15, "1.5E-9"),  # BigDecimal.toString turns scientific below 10**-6
        (2, 0, "0.00"),
        (10, 0, "0E-10"),
    ],
)
def test_decimals_keep_the_exact_digits_bigdecimal_writes(scale, unscaled, text):
    encoded = b"D" + struct.pack(">Bi", scale, unscaled)
    assert orjson.dumps({"v": render_value(encoded)}) == b'{"v":' + text.encode() + b"}"


def test_a_float_is_written_with_the_shortest_digits_of_its_32_bits():
    for value in (0.1, 1 / 3, 3.4028234663852886e38, 1e-45, 16777216.0):
        bits = struct.unpack(">f", struct.pack(">f", value))[0]
        shortest = shortest_float32(bits)
        assert struct.unpack(">f", struct.pack(">f", shortest))[0] == bits
        assert len(repr(shortest)) <= len(repr(bits))


def test_duplicate_keys_keep_the_first_value_and_bad_utf8_keys_get_replacement_characters():
    headers = rendered_headers(
        (b"a", b"I" + struct.pack(">i", 1)),
        (b"a", b"I" + struct.pack(">i", 2)),
        (b"k\xff", b"V"),
    )
    assert headers == {"a": 1, "k\ufffd": None}


def test_string_properties_that_are_not_utf8_get_replacement_characters_like_java():
    raw = wire.properties(message_id=b"id-\xff", content_type=wire.short(b"\xfe"))
    rendered = render_properties(raw, 3)
    assert rendered["messageId"] == "id-\ufffd" and rendered["contentType"] == "\ufffd"
    assert rendered["bodySize"] == 3


def test_properties_render_in_aws_order_with_unset_ones_null():
    rendered = render_properties(wire.properties(message_id=b"m"), 0)
    assert list(rendered) == [
        "contentType", "contentEncoding", "headers", "deliveryMode", "priority", "correlationId",
        "replyTo", "expiration", "messageId", "timestamp", "type", "userId", "appId",
        "clusterId", "bodySize",
    ]  # fmt: skip
    assert [k for k, v in rendered.items() if v is not None] == ["messageId", "bodySize"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1_700_000_000, "Nov 14, 2023, 10:13:20 PM"),
        (-12_219_292_800, "Oct 15, 1582, 12:00:00 AM"),  # GregorianCalendar's cutover
        (-12_219_292_801, "Oct 4, 1582, 11:59:59 PM"),  # the Julian day before it
        (-62_135_596_800, "Jan 3, 1, 12:00:00 AM"),  # 1 Jan 1 (proleptic) in Julian terms
        (253_402_300_799, "Dec 31, 9999, 11:59:59 PM"),
    ],
)
def test_dates_follow_java_util_calendars(seconds, text):
    assert timestamp_text(seconds) == text


# --- what cannot become an event -----------------------------------------------------------


def arrays(depth: int) -> bytes:
    """An array value nesting `depth` arrays."""
    value = wire.array([])
    for _ in range(depth - 1):
        value = wire.array([value])
    return value


def headers_of(*entries: tuple[bytes, bytes]) -> bytes:
    return wire.with_headers(b"poison", *entries)


POISON = {
    # the headers table is level 1, so nested(n) inside it reaches level n + 1
    "tables nested 1,000 deep": (headers_of((b"n", wire.nested(1000))), "deeper than 200"),
    "tables one level too deep": (headers_of((b"n", wire.nested(MAX_DEPTH))), "deeper than"),
    "arrays one level too deep": (headers_of((b"n", arrays(MAX_DEPTH))), "deeper than"),
    "a header timestamp of 2**63": (
        headers_of((b"t", b"T" + struct.pack(">Q", 2**63))),
        "outside the years 1-9999",
    ),
    "a timestamp property of 2**63": (
        wire.properties(message_id=b"poison", timestamp=struct.pack(">Q", 2**63)),
        "outside the years 1-9999",
    ),
    "a timestamp past year 9999": (
        headers_of((b"t", b"T" + struct.pack(">q", 253_402_300_800))),
        "outside the years 1-9999",
    ),
    "pika's unsigned byte tag B": (headers_of((b"b", b"B\x05")), "field type 'B'"),
    "pika's unsigned int tag i": (headers_of((b"i", b"i" + struct.pack(">I", 5))), "'i'"),
    "pika's short tag U": (headers_of((b"u", b"U\x00\x05")), "'U'"),
    "pika's long tag L": (headers_of((b"l", b"L" + struct.pack(">q", 5))), "'L'"),
    "an unknown tag": (headers_of((b"z", b"Z\x00")), "field type 'Z'"),
    "a NaN double": (headers_of((b"d", b"d" + struct.pack(">d", float("nan")))), "nan"),
    "an infinite double": (headers_of((b"d", b"d" + struct.pack(">d", float("inf")))), "inf"),
    "a NaN float": (headers_of((b"f", b"f" + struct.pack(">f", float("nan")))), "nan"),
    "a table longer than the properties": (
        wire.properties(headers=struct.pack(">I", 50) + wire.short(b"a") + b"I\x00\x00"),
        "runs past",
    ),
    "an array claiming 4 GB": (
        headers_of((b"a", b"A" + struct.pack(">I", 0xFFFFFFF0) + b"V")),
        "runs past",
    ),
    "a long string claiming 4 GB": (
        headers_of((b"s", b"S" + struct.pack(">I", 0xFFFFFFFF) + b"abc")),
        "runs past",
    ),
    "a value running past its table": (
        wire.properties(headers=struct.pack(">I", 3) + wire.short(b"a") + b"I\x00\x00\x00\x01"),
        "runs past",
    ),
    "a key running past its table": (
        wire.properties(headers=struct.pack(">I", 2) + wire.short(b"abc") + b"V"),
        "runs past",
    ),
    "a message id cut short": (struct.pack(">H", wire.MESSAGE_ID) + b"\x09abc", "runs past"),
    "properties ending before their timestamp": (
        struct.pack(">H", wire.TIMESTAMP) + b"\x00\x01",
        "end in the middle",
    ),
    "a second flag word": (
        struct.pack(">HH", wire.MESSAGE_ID | 1, 0) + wire.short(b"x"),
        "flag word",
    ),
    "no flags at all": (b"", "end in the middle"),
}


@pytest.mark.parametrize("name", list(POISON))
def test_poison_raises_properties_error_with_its_reason(name):
    raw, reason = POISON[name]
    with pytest.raises(PropertiesError, match=reason.replace("*", r"\*")):
        render_properties(raw, 0)


def nesting(value: object) -> int:
    """Levels of objects and arrays in a parsed JSON value."""
    if isinstance(value, dict):
        return 1 + max(map(nesting, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(nesting, value), default=0)
    return 0


def test_the_deepest_nesting_allowed_still_makes_an_event():
    raw = headers_of((b"n", wire.nested(MAX_DEPTH - 1)), (b"a", arrays(MAX_DEPTH - 1)))
    headers = render_properties(raw, 0)["headers"]
    event = {"e": {"q": [{"r": {"p": headers}}]}}  # the five levels an event puts around them
    parsed = json.loads(orjson.dumps(event))["e"]["q"][0]["r"]["p"]
    assert nesting(parsed) == MAX_DEPTH


def test_arbitrary_bytes_raise_nothing_but_properties_error():
    """Whatever a publisher sends, decoding either renders it or gives a reason."""
    chance = random.Random(20240229)
    seeds = [raw for raw, _ in POISON.values()] + [
        headers_of(
            (b"s", wire.long_string(b"text")),
            (b"t", b"F" + wire.table((b"d", b"D\x02\x00\x00\x00\x96"), (b"x", b"T" + bytes(8)))),
            (b"a", wire.array([b"f\x3f\x80\x00\x00", b"d" + bytes(8), b"u\x00\x01"])),
        )
    ]
    outcomes = {"rendered": 0, "set aside": 0}
    for _ in range(20_000):
        raw = bytearray(chance.choice(seeds))
        for _ in range(chance.randint(1, 4)):
            if raw:
                raw[chance.randrange(len(raw))] = chance.randrange(256)
        raw = raw[: chance.randint(0, len(raw))] if chance.random() < 0.2 else raw
        try:
            orjson.dumps(render_properties(bytes(raw), 0))
            outcomes["rendered"] += 1
        except PropertiesError:
            outcomes["set aside"] += 1
    assert min(outcomes.values()) > 200, outcomes  # both paths were exercised


def test_message_id_is_found_past_headers_that_cannot_be_rendered():
    raw = wire.properties(headers=wire.table((b"n", wire.nested(1000))), message_id=b"m-7")
    assert message_id(raw) == "m-7"
    assert message_id(wire.properties(headers=wire.table())) is None
    assert message_id(b"\xff") is None


# --- death headers stripped for redrive ------------------------------------------------------


def test_without_headers_drops_only_the_named_top_level_headers_byte_for_byte():
    kept = (b"d", b"d" + struct.pack(">d", 1.5))
    raw = wire.properties(
        content_type=wire.short(b"text/plain"),
        headers=wire.table(
            (b"x-death", wire.array([b"V"])), kept, (b"x-delivery-count", b"l" + bytes(8))
        ),
        message_id=b"m",
    )
    stripped = without_headers(raw, frozenset({"x-death", "x-delivery-count"}))
    assert stripped == wire.properties(
        content_type=wire.short(b"text/plain"), headers=wire.table(kept), message_id=b"m"
    )
    assert without_headers(stripped, frozenset({"x-death"})) == stripped


def test_without_headers_drops_the_headers_field_when_nothing_is_left():
    raw = wire.properties(headers=wire.table((b"x-death", b"V")), message_id=b"m")
    assert without_headers(raw, frozenset({"x-death"})) == wire.properties(message_id=b"m")
    assert without_headers(wire.properties(message_id=b"m"), frozenset({"x"})) == (
        wire.properties(message_id=b"m")
    )


def test_without_headers_refuses_a_table_it_cannot_walk():
    with pytest.raises(PropertiesError):
        without_headers(POISON["a table longer than the properties"][0], frozenset({"x-death"}))
