"""Messages the suite itself puts on the broker: copies of rule messages, and poison."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from credit import topology
from credit.domain import CreditRequest
from credit.messages import RuleMessage, split_request
from credit.publisher import properties
from tests.faults.load import Accepted

LOGGER = logging.getLogger(__name__)
RULES = ("age", "value")
POISON_PREFIX = "poison-"
REJECTED, DLQ = "rejected_messages", "rule.<name>.dlq"
POISON_ID = re.compile(rf"{POISON_PREFIX}[a-z0-9-]+?-\d+")
OVERSIZED_BYTES = 6 * 1024 * 1024 + 512 * 1024
LARGE_BYTES = 4 * 1024 * 1024
COPY_DELAY_SECONDS = 2.0

ChannelFactory = Callable[[], pika.BlockingConnection]


class _ConfirmingChannel:
    """A confirm-mode channel that reconnects and retries, so no copy or poison is dropped."""

    def __init__(self, connect: ChannelFactory) -> None:
        self._connect = connect
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def publish(self, routing_key: str, body: bytes, props: pika.BasicProperties) -> None:
        for attempt in itertools.count():
            try:
                channel = self._open()
                channel.basic_publish(topology.EXCHANGE, routing_key, body, props, mandatory=True)
                return
            except (pika.exceptions.AMQPError, OSError) as exc:
                self.close()
                if attempt >= 100:
                    raise
                LOGGER.debug("publish failed (%r), retrying", exc)
                time.sleep(min(2.0, 0.1 * (attempt + 1)))

    def _open(self) -> BlockingChannel:
        if self._channel is None or not self._channel.is_open:
            self._connection = self._connect()
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
        return self._channel

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                self._connection.close()
        self._connection = self._channel = None


class DuplicatePublisher:
    """Publishes an identical copy of each accepted ticket's rule messages.

    Copies go out after a random delay up to two seconds: some race their original into the
    same batch, some arrive after the ticket is decided. Body and properties are built by the
    same code the API uses: the body is byte for byte the original's, the message id the same.
    """

    def __init__(self, connect: ChannelFactory, seed: int = 1) -> None:
        self._channel = _ConfirmingChannel(connect)
        self._rng = random.Random(seed)
        self._due: list[tuple[float, int, RuleMessage]] = []
        self._order = itertools.count()
        self._lock = threading.Condition()
        self._closing = False
        self.published = 0
        self.last_published = 0.0
        self._thread = threading.Thread(target=self._run, name="duplicates", daemon=True)
        self._thread.start()

    def copy(self, accepted: Accepted) -> None:
        """Schedule copies of both of the ticket's messages (an `on_accepted` hook)."""
        request = CreditRequest(age=accepted.age, value=accepted.value)
        with self._lock:
            for message in split_request(accepted.ticket, request, RULES):
                due = time.monotonic() + self._rng.uniform(0, COPY_DELAY_SECONDS)
                heapq.heappush(self._due, (due, next(self._order), message))
            self._lock.notify()

    def close(self) -> None:
        """Publish every scheduled copy, then disconnect."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        self._thread.join()
        self._channel.close()

    def _run(self) -> None:
        while True:
            message = self._next()
            if message is None:
                return
            self._channel.publish(message.rule, message.body, properties(message))
            self.published += 1
            self.last_published = time.monotonic()

    def _next(self) -> RuleMessage | None:
        with self._lock:
            while True:
                if self._due and (self._closing or self._due[0][0] <= time.monotonic()):
                    return heapq.heappop(self._due)[2]
                if self._closing and not self._due:
                    return None
                wait = self._due[0][0] - time.monotonic() if self._due else None
                self._lock.wait(wait)


@dataclass(frozen=True)
class Poison:
    """One bad message: its kind, where it is expected to end, and what is sent."""

    kind: str
    expected: tuple[str, ...]  # where it may end: REJECTED and / or DLQ
    routing_key: str
    message_id: str
    body: bytes
    raw_message_id: bytes | None = None  # sent instead of message_id when set

    @property
    def properties(self) -> pika.BasicProperties:
        return pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            message_id=self.raw_message_id or self.message_id,
        )


def _json_ticket() -> str:
    return str(uuid.uuid4())


NON_UTF8_PROPERTY = "non-utf8-message-id"
POISON_KINDS: dict[str, tuple[tuple[str, ...], Callable[[int, str], bytes]]] = {
    "malformed-json": (
        (REJECTED,),
        lambda i, rule: f'{{"ticket": "{_json_ticket()}", "{rule}": {i}'.encode(),
    ),
    "not-an-object": ((REJECTED,), lambda i, rule: f'[{i}, "{rule}"]'.encode()),
    "wrong-type-field": (
        (REJECTED,),
        lambda i, rule: f'{{"ticket": "{_json_ticket()}", "{rule}": "abc-{i}"}}'.encode(),
    ),
    "wrong-type-ticket": (
        (REJECTED,),
        lambda i, rule: f'{{"ticket": {i}, "{rule}": 20}}'.encode(),
    ),
    "unknown-ticket": (
        (REJECTED,),
        lambda i, rule: f'{{"ticket": "{_json_ticket()}", "{rule}": 30}}'.encode(),
    ),
    "non-utf8": (
        (REJECTED,),
        lambda i, rule: b'{"ticket": "\xff\xfe' + str(i).encode() + b'\xc3\x28"}',
    ),
    "deeply-nested": ((REJECTED,), lambda i, rule: b"[" * 100_000 + str(i).encode()),
    "huge-number": (
        (REJECTED,),
        lambda i, rule: f'{{"ticket": "{_json_ticket()}", "{rule}": {i}{"9" * 5000}}}'.encode(),
    ),
    # A good body, but a message id that is not UTF-8 (AMQP short strings are bytes on the
    # wire; pika hands such a property over as bytes, not str).
    NON_UTF8_PROPERTY: (
        (REJECTED, DLQ),
        lambda i, rule: f'{{"ticket": "{_json_ticket()}", "{rule}": 40}}'.encode(),
    ),
}


def poison_set(count: int, oversized: int, large: int = 0) -> list[Poison]:
    """`count` distinct bad messages: `oversized` ones over 6 MB (dead-lettered by the runtime),
    `large` ones of 4 MB that fit an event but are no JSON, the rest spread over the kinds."""
    made: list[Poison] = []
    kinds = itertools.cycle(POISON_KINDS.items())
    for i in range(count):
        rule = RULES[i % 2]
        expected: tuple[str, ...]
        if i < oversized:
            kind, expected = "oversized", (DLQ,)
            body = b'{"ticket": "' + _json_ticket().encode() + b'", "x": "' + b"x" * OVERSIZED_BYTES
        elif i < oversized + large:
            kind, expected = "large", (REJECTED,)
            body = b"%d " % i + b"\x00" * LARGE_BYTES
        else:
            kind, (expected, make) = next(kinds)
            body = make(i, rule)
        message_id = f"{POISON_PREFIX}{kind}-{i}"
        raw = message_id.encode() + b"\xff\xfe" if kind == NON_UTF8_PROPERTY else None
        made.append(Poison(kind, expected, rule, message_id, body, raw))
    return made


class PoisonPublisher:
    """Publishes the poison spread over the run: message i once the load has done i/count."""

    def __init__(self, connect: ChannelFactory, poison: list[Poison]) -> None:
        self._channel = _ConfirmingChannel(connect)
        self.poison = poison
        self.last_published = 0.0

    def run(self, wait_progress: Callable[[float], bool]) -> None:
        for index, item in enumerate(self.poison):
            wait_progress(index / len(self.poison))
            self._channel.publish(item.routing_key, item.body, item.properties)
            self.last_published = time.monotonic()
        self._channel.close()


@dataclass
class PoisonReport:
    """Where each poison message went, and any good message found set aside."""

    sent: Counter[str] = field(default_factory=Counter)
    in_rejected: Counter[str] = field(default_factory=Counter)
    in_dlq: Counter[str] = field(default_factory=Counter)
    misplaced: list[str] = field(default_factory=list)
    good_set_aside: int = 0

    @property
    def missing(self) -> int:
        return sum(self.sent.values()) - sum(self.in_rejected.values()) - sum(self.in_dlq.values())

    def describe(self) -> str:
        def kinds(counter: Counter[str]) -> str:
            return ", ".join(f"{k} {n}" for k, n in sorted(counter.items())) or "none"

        return (
            f"poison sent {sum(self.sent.values())}; in rejected_messages "
            f"{sum(self.in_rejected.values())} ({kinds(self.in_rejected)}); in rule.<name>.dlq "
            f"{sum(self.in_dlq.values())} ({kinds(self.in_dlq)}); missing {self.missing}; "
            f"good messages set aside {self.good_set_aside}"
        )


def poison_id(message_id: str | bytes | None) -> str | None:
    """The poison id a message id carries (undecodable bytes dropped), None if not poison."""
    if isinstance(message_id, bytes):
        message_id = message_id.decode(errors="ignore")
    found = POISON_ID.search(message_id or "")
    return found.group(0) if found else None


def dead_lettered(
    channel: BlockingChannel, queues: tuple[str, ...]
) -> Iterator[str | bytes | None]:
    """Message ids in the dead-letter queues, read without acking (they go back on close)."""
    for queue in queues:
        while True:
            method, props, _ = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            yield props.message_id


def account(
    poison: list[Poison],
    rejected_ids: Sequence[str | bytes | None],
    dlq_ids: Sequence[str | bytes | None],
) -> PoisonReport:
    """Match what was sent with what MySQL set aside and what the broker dead-lettered."""
    report = PoisonReport(sent=Counter(p.kind for p in poison))
    sent = {p.message_id: p for p in poison}
    for place, ids, counter in (
        (REJECTED, rejected_ids, report.in_rejected),
        (DLQ, dlq_ids, report.in_dlq),
    ):
        for message_id in ids:
            item = sent.get(poison_id(message_id) or "")
            if item is None:
                report.good_set_aside += 1
                continue
            counter[item.kind] += 1
            if place not in item.expected:
                report.misplaced.append(f"{item.message_id} in {place}")
    return report
