"""Poison in AMQP message properties and headers, hand-encoded since pika will not encode it."""

from __future__ import annotations

import itertools
import logging
import math
import struct
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pika
import pika.exceptions

from credit import topology

LOGGER = logging.getLogger(__name__)
RULES = ("age", "value")
PREFIX = "poison-header-"
NESTING = 1000

# Property flags of basic.properties, in wire order (AMQP 0-9-1, section 4.2.6.1).
CONTENT_TYPE, HEADERS, DELIVERY_MODE, MESSAGE_ID, TIMESTAMP = (
    1 << 15,
    1 << 13,
    1 << 12,
    1 << 7,
    1 << 6,
)

Connect = Callable[[], pika.BlockingConnection]


class RawProperties(pika.BasicProperties):
    """basic.properties whose wire form is given as bytes.

    pika refuses to encode most poison (a header of an unknown type, a timestamp past what a
    datetime holds, invalid UTF-8 in a short string), and a broker only forwards what some
    client sent. pika builds the content header frame from `properties.encode()`
    (pika.frame.Header.marshal), so returning hand-made bytes from it publishes any property
    list. test_headers checks that pika still builds the frame this way and decodes what
    `properties()` writes, so an upgrade that changes either fails there first.
    """

    def __init__(self, wire: bytes) -> None:
        super().__init__()
        self.wire = wire

    def encode(self) -> list[bytes]:
        return [self.wire]


def short_string(raw: bytes) -> bytes:
    return struct.pack("B", len(raw)) + raw


def table(*fields: bytes) -> bytes:
    """A field table of already encoded `name + type + value` fields."""
    content = b"".join(fields)
    return struct.pack(">I", len(content)) + content


def entry(name: bytes, kind: bytes, value: bytes) -> bytes:
    return short_string(name) + kind + value


def long_string(raw: bytes) -> bytes:
    return struct.pack(">I", len(raw)) + raw


def nested_tables(depth: int) -> bytes:
    inner = table()
    for _ in range(depth):
        inner = table(entry(b"n", b"F", inner))
    return inner


def nested_arrays(depth: int) -> bytes:
    inner = struct.pack(">I", 0)
    for _ in range(depth):
        inner = struct.pack(">I", len(inner) + 1) + b"A" + inner
    return table(entry(b"a", b"A", inner))


def properties(
    message_id: str,
    headers: bytes | None = None,
    timestamp: int | None = None,
    content_type: bytes = b"application/json",
) -> RawProperties:
    """The wire form of content_type, headers, delivery_mode 2, message_id and timestamp."""
    flags = CONTENT_TYPE | DELIVERY_MODE | MESSAGE_ID
    fields = short_string(content_type)
    if headers is not None:
        flags |= HEADERS
        fields += headers
    fields += b"\x02" + short_string(message_id.encode())
    if timestamp is not None:
        flags |= TIMESTAMP
        fields += struct.pack(">Q", timestamp)
    return RawProperties(struct.pack(">H", flags) + fields)


POISON: dict[str, Callable[[str], RawProperties]] = {
    "headers nested 1,000 deep": lambda mid: properties(mid, nested_tables(NESTING)),
    "arrays nested 1,000 deep": lambda mid: properties(mid, nested_arrays(NESTING)),
    "header timestamp 2**63": lambda mid: properties(
        mid, table(entry(b"t", b"T", struct.pack(">Q", 2**63)))
    ),
    "header double NaN": lambda mid: properties(
        mid, table(entry(b"d", b"d", struct.pack(">d", math.nan)))
    ),
    "header float infinity": lambda mid: properties(
        mid, table(entry(b"f", b"f", struct.pack(">f", math.inf)))
    ),
    "header of an unknown type": lambda mid: properties(mid, table(entry(b"u", b"Z", b"abcd"))),
    "header name and value not UTF-8": lambda mid: properties(
        mid, table(entry(b"\xff\xfe", b"S", long_string(b"\xc3\x28")))
    ),
    "content type not UTF-8": lambda mid: properties(mid, content_type=b"application/\xff\xfe"),
    "timestamp 2**63": lambda mid: properties(mid, timestamp=2**63),
}


@dataclass
class HeaderPoisonLog:
    """What was published where; what the broker itself refused never reached a queue."""

    queued: Counter[str] = field(default_factory=Counter)  # rule queue -> poison confirmed
    kinds: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # kind -> refused by the broker
    ids: set[str] = field(default_factory=set)

    def describe(self) -> str:
        refused = ", ".join(f"{k} x{n}" for k, n in sorted(self.refused.items())) or "none"
        return (
            f"header poison queued {sum(self.queued.values())} "
            f"({', '.join(f'{q} {n}' for q, n in sorted(self.queued.items()))}); "
            f"refused by the broker: {refused}"
        )


def poison_body(rule: str) -> bytes:
    """A well-formed rule message for a ticket that does not exist: only its properties are bad."""
    return f'{{"ticket": "{uuid.uuid4()}", "{rule}": 40}}'.encode()


def publish_one(connect: Connect, kind: str, index: int, log: HeaderPoisonLog) -> None:
    """Publish one poison message with confirms on a connection of its own."""
    rule = RULES[index % len(RULES)]
    message_id = f"{PREFIX}{index}"
    connection = connect()
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            topology.EXCHANGE, rule, poison_body(rule), POISON[kind](message_id), mandatory=True
        )
    except (pika.exceptions.ConnectionClosedByBroker, pika.exceptions.ChannelClosedByBroker) as exc:
        LOGGER.info("broker refused poison %r: %r", kind, exc)
        log.refused[kind] += 1
        return
    finally:
        if connection.is_open:
            connection.close()
    log.queued[f"rule.{rule}"] += 1
    log.kinds[kind] += 1
    log.ids.add(message_id)


def publish_all(connect: Connect, count: int, wait: Callable[[float], object]) -> HeaderPoisonLog:
    """`count` poison messages, every kind in turn, spread over the run by `wait(share)`."""
    log = HeaderPoisonLog()
    kinds = itertools.cycle(POISON)
    for index in range(count):
        wait(index / count)
        publish_one(connect, next(kinds), index, log)
    return log


def dead_letter_problems(
    log: HeaderPoisonLog, depths: dict[str, int], rejected_ids: set[str]
) -> list[str]:
    """Each rule's DLQ must hold exactly the poison queued to it that was not set aside.

    Poison cannot be read back with pika (that is the point of it), so the DLQ is counted,
    not read: more messages than poison means good ones were dead-lettered beside it.
    """
    problems = []
    set_aside = Counter(
        f"rule.{RULES[int(mid.rsplit('-', 1)[1]) % len(RULES)]}" for mid in rejected_ids
    )
    for queue in (f"rule.{rule}" for rule in RULES):
        expected = log.queued[queue] - set_aside[queue]
        found = depths.get(f"{queue}.dlq", -1)
        if found > expected:
            problems.append(
                f"{queue}.dlq holds {found} messages, {found - expected} more than the poison "
                "sent there: good messages were dead-lettered"
            )
        elif found < expected:
            problems.append(f"{queue}.dlq holds {found} of {expected} poison messages")
    return problems
