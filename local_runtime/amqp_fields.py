"""A message's AMQP properties, decoded from their bytes and rendered as AWS's poller renders them.

Lambda's Amazon MQ poller reads a message with the RabbitMQ Java client and writes the event
with Gson, so each AMQP field type arrives as the Java object it becomes, serialised by Gson
(`com.rabbitmq.client.impl.ValueReader` and `ContentHeaderPropertyReader`):

| tag | Java value | in the event |
|---|---|---|
| `S` long string | `LongString` | `{"bytes": [signed bytes]}` |
| `x` byte array | `byte[]` | `[signed bytes]` |
| `b` `s` `u` `I` `l` | Byte, Short, Integer (unsigned short), Integer, Long | the number |
| `d` `f` | Double, Float | the number (a Float by its shortest decimal) |
| `D` decimal | `BigDecimal` | a number with the BigDecimal's exact digits |
| `t` | Boolean (any non-zero octet is true) | `true` / `false` |
| `T` | `Date` of the signed seconds | Gson's default format, UTC: `"Jan 1, 1970, 12:33:41 AM"` |
| `F` `A` | `Map`, `List` | object, array |
| `V` | null | `null` |

Any other tag (pika's `B` `U` `i` `L` included) is a `MalformedFrameException` for the Java
client. Short strings (the string properties and table keys) are decoded as UTF-8 with
replacement characters, like Java's `new String(bytes, "utf-8")`; of duplicate table keys the
first wins, as in `ValueReader.readTable`.

What cannot become an event raises PropertiesError with a reason a person can act on: a
malformed or truncated structure, an unknown tag, NaN or an infinity (Gson refuses them),
a date outside the years 1-9999, or nesting deeper than MAX_DEPTH. Nothing here raises
anything else, whatever the bytes.

Why a decoder of our own: pika's, the AMQP library the runtime uses, raises inside its frame
decoder (which fails the connection, see pika_properties) and reads doubles and floats as
integers; and what an event must show is the Java client's reading (its set of tags, the
first of duplicate keys, signed timestamps, LongString apart from byte[]), which no Python
AMQP library reproduces. It is also cheaper: decoding a content header and encoding its
record took 4.2-4.5 µs of CPU per message, where pika's decoding and the record built from
its result took 5.5 µs (properties as the rule functions get them; 5.1 against 7.1 µs with
one header, 8.6 against 12 µs with four; interleaved runs, best of 5 x 100,000 messages).
`python -m tests.runtime.bench_runtime --records-only` measures it beside pika's decoding
alone.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

# orjson writes at most 254 levels of nesting and the event puts five around the headers table
# (event, rmqMessagesByQueue, the queue's list, the record, basicProperties); 200 leaves room
# and is far beyond what any real header carries.
MAX_DEPTH = 200

FLAG_CONTINUATION = 0x0001
FLAG_HEADERS = 0x2000
# AWS's order of basicProperties, which is also the order of the fields on the wire.
STRING, TABLE, OCTET, DATE = "string", "table", "octet", "date"
PROPERTIES: tuple[tuple[str, int, str], ...] = (
    ("contentType", 0x8000, STRING),
    ("contentEncoding", 0x4000, STRING),
    ("headers", FLAG_HEADERS, TABLE),
    ("deliveryMode", 0x1000, OCTET),
    ("priority", 0x0800, OCTET),
    ("correlationId", 0x0400, STRING),
    ("replyTo", 0x0200, STRING),
    ("expiration", 0x0100, STRING),
    ("messageId", 0x0080, STRING),
    ("timestamp", 0x0040, DATE),
    ("type", 0x0020, STRING),
    ("userId", 0x0010, STRING),
    ("appId", 0x0008, STRING),
    ("clusterId", 0x0004, STRING),
)

_U32 = struct.Struct(">I").unpack_from
_I64 = struct.Struct(">q").unpack_from
_F32 = struct.Struct(">f")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# java.util.GregorianCalendar switches from the Julian calendar at this instant (UTC).
_GREGORIAN_CUTOVER = -12_219_292_800
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

Reader = Callable[[bytes, int, int, int], tuple[Any, int]]


class PropertiesError(ValueError):
    """A message's properties cannot be rendered as AWS renders them; the message is set aside."""


def render_properties(raw: bytes, body_size: int) -> dict[str, Any]:
    """The record's `basicProperties`: every field in AWS's order, unset ones None.

    Decimal headers are orjson Fragments holding their exact digits, so the result is meant
    for orjson. Raises PropertiesError for anything the event cannot carry.
    """
    try:
        return _render(raw, body_size)
    except (IndexError, struct.error) as exc:
        raise PropertiesError("the properties end in the middle of a field") from exc


def _render(raw: bytes, body_size: int) -> dict[str, Any]:
    flags = raw[0] << 8 | raw[1]
    if flags & FLAG_CONTINUATION:
        raise PropertiesError(
            "the properties announce a second flag word, which the Java client refuses"
        )
    rendered: dict[str, Any] = {}
    offset = 2
    end = len(raw)
    for name, flag, kind in PROPERTIES:
        if not flags & flag:
            rendered[name] = None
        elif kind is STRING:
            rendered[name], offset = _short_string(raw, offset, end)
        elif kind is OCTET:
            rendered[name] = raw[offset]
            offset += 1
        elif kind is DATE:
            rendered[name] = date_text(_I64(raw, offset)[0])
            offset += 8
        else:
            rendered[name], offset = _table(raw, offset, end, 1)
    rendered["bodySize"] = body_size
    return rendered


def render_value(encoded: bytes) -> Any:
    """One encoded field value (tag and data) as it appears in the event."""
    try:
        value, offset = _value(encoded, 0, len(encoded), 1)
    except (IndexError, struct.error) as exc:
        raise PropertiesError("the value ends in the middle of a field") from exc
    if offset != len(encoded):
        raise PropertiesError("bytes follow the value")
    return value


def message_id(raw: bytes) -> str | None:
    """The message id, for log lines about a message whose other fields may be unreadable;
    None when it is unset or cannot be found."""
    try:
        flags = raw[0] << 8 | raw[1]
        offset = 2
        for name, flag, kind in PROPERTIES:
            if not flags & flag:
                continue
            if name == "messageId":
                return _short_string(raw, offset, len(raw))[0]
            if kind is STRING:
                offset += 1 + raw[offset]
            elif kind is OCTET:
                offset += 1
            else:  # the headers table, skipped whole by its length
                offset += 4 + _U32(raw, offset)[0]
    except (IndexError, struct.error, PropertiesError):
        return None
    return None


def without_headers(raw: bytes, names: frozenset[str]) -> bytes:
    """The same properties, byte for byte, less the named top-level headers; the headers
    field is dropped when nothing is left in it."""
    try:
        return _without_headers(raw, {name.encode() for name in names})
    except (IndexError, struct.error) as exc:
        raise PropertiesError("the properties end in the middle of a field") from exc


def _without_headers(raw: bytes, names: set[bytes]) -> bytes:
    flags = raw[0] << 8 | raw[1]
    if not flags & FLAG_HEADERS:
        return raw
    offset = 2
    for _, flag, _ in PROPERTIES[:2]:  # the two short strings before the headers
        if flags & flag:
            offset += 1 + raw[offset]
    start = offset + 4
    end = _within(start + _U32(raw, offset)[0], len(raw))
    kept: list[bytes] = []
    entry = start
    while entry < end:
        key_end = _within(entry + 1 + raw[entry], end)
        _, value_end = _value(raw, key_end, end, 1)
        if raw[entry + 1 : key_end] not in names:
            kept.append(raw[entry:value_end])
        entry = value_end
    table = b"".join(kept)
    if not table:
        head = (flags & ~FLAG_HEADERS).to_bytes(2, "big") + raw[2:offset]
        return head + raw[end:]
    return raw[:offset] + struct.pack(">I", len(table)) + table + raw[end:]


def _within(offset: int, limit: int) -> int:
    if offset > limit:
        raise PropertiesError("a field runs past the end of the table or array that holds it")
    return offset


def _short_string(raw: bytes, offset: int, limit: int) -> tuple[str, int]:
    end = _within(offset + 1 + raw[offset], limit)
    return raw[offset + 1 : end].decode("utf-8", "replace"), end


def _table(raw: bytes, offset: int, limit: int, depth: int) -> tuple[dict[str, Any], int]:
    if depth > MAX_DEPTH:
        raise PropertiesError(f"the headers nest tables and arrays deeper than {MAX_DEPTH} levels")
    start = offset + 4
    end = _within(start + _U32(raw, offset)[0], limit)
    table: dict[str, Any] = {}
    offset = start
    while offset < end:
        key, offset = _short_string(raw, offset, end)
        value, offset = _value(raw, offset, end, depth)
        table.setdefault(key, value)  # the Java client keeps the first of duplicate keys
    return table, end


def _array(raw: bytes, offset: int, limit: int, depth: int) -> tuple[list[Any], int]:
    if depth > MAX_DEPTH:
        raise PropertiesError(f"the headers nest tables and arrays deeper than {MAX_DEPTH} levels")
    start = offset + 4
    end = _within(start + _U32(raw, offset)[0], limit)
    items: list[Any] = []
    offset = start
    while offset < end:
        item, offset = _value(raw, offset, end, depth)
        items.append(item)
    return items, end


def _value(raw: bytes, offset: int, limit: int, depth: int) -> tuple[Any, int]:
    reader = _READERS.get(raw[offset])
    if reader is None:
        raise PropertiesError(
            f"a header has field type {chr(raw[offset])!r}, which the Java client AWS uses "
            "rejects as a malformed frame"
        )
    value, end = reader(raw, offset + 1, limit, depth)
    return value, _within(end, limit)


def _fixed(layout: str) -> Reader:
    unpack = struct.Struct(layout).unpack_from
    size = struct.calcsize(layout)

    def read(raw: bytes, offset: int, limit: int, depth: int) -> tuple[Any, int]:
        return unpack(raw, offset)[0], offset + size

    return read


def _bytes(raw: bytes, offset: int, limit: int) -> tuple[bytes, int]:
    end = _within(offset + 4 + _U32(raw, offset)[0], limit)
    return raw[offset + 4 : end], end


def _long_string(raw: bytes, offset: int, limit: int, depth: int) -> tuple[dict[str, Any], int]:
    data, end = _bytes(raw, offset, limit)
    return {"bytes": java_bytes(data)}, end


def _byte_array(raw: bytes, offset: int, limit: int, depth: int) -> tuple[list[int], int]:
    data, end = _bytes(raw, offset, limit)
    return java_bytes(data), end


def _boolean(raw: bytes, offset: int, limit: int, depth: int) -> tuple[bool, int]:
    return raw[offset] != 0, offset + 1


def _double(raw: bytes, offset: int, limit: int, depth: int) -> tuple[float, int]:
    value = struct.unpack_from(">d", raw, offset)[0]
    return _finite(value, "double"), offset + 8


def _float(raw: bytes, offset: int, limit: int, depth: int) -> tuple[float, int]:
    value = _finite(_F32.unpack_from(raw, offset)[0], "float")
    return shortest_float32(value), offset + 4


def _decimal(raw: bytes, offset: int, limit: int, depth: int) -> tuple[orjson.Fragment, int]:
    scale, unscaled = struct.unpack_from(">Bi", raw, offset)
    # Decimal and java.math.BigDecimal write a number alike: plain digits, or d.dddE-n once
    # the exponent falls below -6; the scale is unsigned, so no positive exponent occurs.
    text = str(Decimal(unscaled).scaleb(-scale))
    return orjson.Fragment(text.encode("ascii")), offset + 5


def _date(raw: bytes, offset: int, limit: int, depth: int) -> tuple[str, int]:
    return date_text(_I64(raw, offset)[0]), offset + 8


def _nested_table(raw: bytes, offset: int, limit: int, depth: int) -> tuple[dict[str, Any], int]:
    return _table(raw, offset, limit, depth + 1)


def _nested_array(raw: bytes, offset: int, limit: int, depth: int) -> tuple[list[Any], int]:
    return _array(raw, offset, limit, depth + 1)


def _void(raw: bytes, offset: int, limit: int, depth: int) -> tuple[None, int]:
    return None, offset


_READERS: dict[int, Reader] = {
    ord("S"): _long_string,
    ord("I"): _fixed(">i"),
    ord("D"): _decimal,
    ord("T"): _date,
    ord("F"): _nested_table,
    ord("A"): _nested_array,
    ord("b"): _fixed(">b"),
    ord("d"): _double,
    ord("f"): _float,
    ord("l"): _fixed(">q"),
    ord("s"): _fixed(">h"),
    ord("u"): _fixed(">H"),
    ord("t"): _boolean,
    ord("x"): _byte_array,
    ord("V"): _void,
}


def _finite(value: float, kind: str) -> float:
    if not math.isfinite(value):
        raise PropertiesError(f"a {kind} header is {value}, which JSON cannot hold")
    return value


def shortest_float32(value: float) -> float:
    """The float32 `value` as Java's Float.toString writes it: the shortest decimal that reads
    back as the same float32, so 1.1f arrives as 1.1, not 1.100000023841858."""
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        try:
            if _F32.unpack(_F32.pack(float(text)))[0] == value:
                return float(text)
        except OverflowError:  # rounding up past the largest float32
            continue
    return value


def java_bytes(data: bytes) -> list[int]:
    """Bytes as Gson writes a Java byte[]: Java's byte is signed, so -128..127."""
    if data.isascii():
        return list(data)
    return [byte - 256 if byte > 127 else byte for byte in data]


def timestamp_text(seconds: int | None) -> str | None:
    """An AMQP timestamp (signed seconds) as Gson writes the Java client's Date, in UTC:
    'Jan 1, 1970, 12:33:41 AM'. Before 15 October 1582 java.util's calendar is the Julian
    one, and so is this date."""
    return None if seconds is None else date_text(seconds)


@functools.lru_cache(maxsize=4096)
def date_text(seconds: int) -> str:
    """timestamp_text of a timestamp that is set."""
    try:
        moment = _EPOCH + timedelta(seconds=seconds)
    except OverflowError as exc:
        raise PropertiesError(
            f"timestamp {seconds} s is outside the years 1-9999 that the runtime renders"
        ) from exc
    year, month, day = moment.year, moment.month, moment.day
    if seconds < _GREGORIAN_CUTOVER:
        year, month, day = _julian_date(moment.toordinal())
    hour = moment.hour % 12 or 12
    noon = "PM" if moment.hour >= 12 else "AM"
    clock = f"{hour}:{moment.minute:02}:{moment.second:02} {noon}"
    return f"{_MONTHS[month - 1]} {day}, {year}, {clock}"


def _julian_date(ordinal: int) -> tuple[int, int, int]:
    """The Julian calendar's (year, month, day) of a proleptic Gregorian day number."""
    c = ordinal + 1_721_425 + 32_082  # the Julian day number, shifted to a 4800 BC epoch
    d = (4 * c + 3) // 1461
    e = c - 1461 * d // 4
    m = (5 * e + 2) // 153
    return d - 4800 + m // 10, m + 3 - 12 * (m // 10), e - (153 * m + 2) // 5 + 1
