"""Fixtures for the local runtime's tests: the test vhost, throwaway queues, running mappings."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from declarations.model import Broker as DeclaredBroker
from declarations.model import Function, MqSource
from declarations.reader import read
from local_runtime import pika_properties
from local_runtime.backoff import Backoff
from local_runtime.mapping import BatchReport, EventSourceMapping
from local_runtime.pika_properties import RawProperties
from tests.helpers import TEST_URLS, ensure_vhost

FUNCTIONS_DIR = Path(__file__).resolve().parent / "functions"
TEST_EXCHANGE = "local-runtime.tests"
DEAD_LETTER_EXCHANGE = "local-runtime.tests.dlx"
TEST_BROKER = DeclaredBroker(
    "arn:aws:mq:us-east-1:000000000000:broker:tests:b-6b7e0b0e-8f2e-4c1e-9c1a-2f0f0c0e7a11"
)
# How each test function's mapping batches by default, and its queue's delivery limit.
MAPPINGS = {
    "env_a": {"batch_size": 1, "maximum_batching_window": 0},
    "env_b": {"batch_size": 1, "maximum_batching_window": 0},
    "noop": {"batch_size": 10, "maximum_batching_window": 0.1},
    "recorder": {"batch_size": 10, "maximum_batching_window": 0.2},
    "sleeper": {"batch_size": 5, "maximum_batching_window": 0.1},
    "ticker": {"batch_size": 1, "maximum_batching_window": 0},
}
DELIVERY_LIMITS = {"noop": 3, "recorder": 2, "sleeper": 3}


@dataclass(frozen=True)
class Declared:
    """A test function and the mapping that feeds it from a queue of the test's own."""

    function: Function
    source: MqSource
    delivery_limit: int = 10

    @property
    def name(self) -> str:
        return self.function.name

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.source.queue}.dlq"


def wait_until(predicate: Callable[[], Any], timeout: float = 10, interval: float = 0.02) -> Any:
    """Poll until predicate() is truthy and return its value; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)


def read_records(path: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The JSON lines a test function wrote, optionally only those of one kind."""
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [line for line in lines if kind is None or line.get("kind") == kind]


def load_function(name: str) -> Function:
    """A test function as tests/runtime/functions/template.yaml declares it."""
    return read(FUNCTIONS_DIR).function(name)


def load_spec(
    name: str,
    queue: str,
    record_file: Path | None = None,
    *,
    environment: dict[str, str] | None = None,
    timeout: float | None = None,
    concurrency: int | None = None,
    delivery_limit: int | None = None,
    **source_changes: Any,
) -> Declared:
    """A test function fed by a queue of its own; keyword arguments change its mapping
    (batch_size=..., maximum_batching_window=...)."""
    function = load_function(name)
    env = dict(function.environment)
    if record_file is not None:
        env["RECORD_FILE"] = str(record_file)
    env.update(environment or {})
    changes: dict[str, Any] = {"environment": env}
    if timeout is not None:
        changes["timeout"] = timeout
    if concurrency is not None:
        changes["concurrency"] = concurrency
    source = MqSource(
        logical_id=f"{function.logical_id}Queue",
        function=function.logical_id,
        broker=TEST_BROKER,
        queue=queue,
        **{**MAPPINGS[name], **source_changes},
    )
    return Declared(dataclasses.replace(function, **changes), source, DELIVERY_LIMITS.get(name, 10))


def one_at_a_time(
    broker: Broker, record_file: Path, name: str = "recorder"
) -> tuple[str, Declared]:
    """A test function on a declared queue of its own, invoked for each message at once
    (batch size 1, no batching window); returns the queue and the declaration."""
    queue = broker.new_queue()
    spec = load_spec(name, queue, record_file, batch_size=1, maximum_batching_window=0)
    broker.declare(spec)
    return queue, spec


def frame(lines: list[str], function: str, request_id: str) -> tuple[int, int]:
    """Where one invocation's START and END lines stand in the runtime's output."""
    start = lines.index(f"[{function}] START RequestId: {request_id} Version: $LATEST")
    end = lines.index(f"[{function}] END RequestId: {request_id}")
    return start, end


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The test vhost on the machine's broker, created if missing."""
    url = TEST_URLS["AMQP_URL"]
    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
    except pika.exceptions.AMQPError:
        ensure_vhost()
    return url


def declare_queue(channel: BlockingChannel, spec: Declared) -> None:
    """A test function's queue as the credit app declares its own: a quorum queue with a
    delivery limit, dead-lettered to `<queue>.dlq`, bound to the test exchange by its name."""
    queue = spec.source.queue
    channel.exchange_declare(TEST_EXCHANGE, "topic", durable=True)
    channel.exchange_declare(DEAD_LETTER_EXCHANGE, "direct", durable=True)
    quorum = {"x-queue-type": "quorum"}
    channel.queue_declare(spec.dead_letter_queue, durable=True, arguments=quorum)
    channel.queue_bind(spec.dead_letter_queue, DEAD_LETTER_EXCHANGE, spec.dead_letter_queue)
    arguments = {
        **quorum,
        "x-delivery-limit": spec.delivery_limit,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": spec.dead_letter_queue,
    }
    channel.queue_declare(queue, durable=True, arguments=arguments)
    channel.queue_bind(queue, TEST_EXCHANGE, queue)


@dataclass
class Broker:
    """A confirm-mode channel on the test vhost, and the queues a test made (deleted after)."""

    channel: BlockingChannel
    queues: list[str] = field(default_factory=list)

    def new_queue(self) -> str:
        name = f"test.{uuid.uuid4().hex[:12]}"
        self.queues.append(name)
        return name

    def declare(self, spec: Declared) -> None:
        declare_queue(self.channel, spec)

    def publish(self, queue: str, body: bytes, **properties: Any) -> None:
        properties.setdefault("delivery_mode", 2)
        self.channel.basic_publish(
            TEST_EXCHANGE, queue, body, pika.BasicProperties(**properties), mandatory=True
        )

    def publish_raw(
        self, queue: str, body: bytes, raw: bytes, exchange: str = TEST_EXCHANGE
    ) -> None:
        """Publish with hand-made properties bytes (see tests/runtime/amqp_wire.py)."""
        self.channel.basic_publish(exchange, queue, body, RawProperties(raw), mandatory=True)

    def count(self, queue: str) -> int:
        return int(self.channel.queue_declare(queue, passive=True).method.message_count)

    def get_all(self, queue: str) -> list[tuple[Any, Any, bytes]]:
        """Take every message now in a queue (acked)."""
        taken = []
        while True:
            method, properties, body = self.channel.basic_get(queue, auto_ack=True)
            if method is None:
                return taken
            taken.append((method, properties, body))


@pytest.fixture
def broker(amqp_url: str) -> Iterator[Broker]:
    pika_properties.install()  # the tests' own channel reads poison as the runtime does
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    state = Broker(channel)
    try:
        yield state
    finally:
        for name in state.queues:
            for queue in (name, f"{name}.dlq"):
                with contextlib.suppress(pika.exceptions.AMQPError):
                    if not channel.is_open:
                        channel = connection.channel()
                    channel.queue_delete(queue)
        connection.close()


@dataclass
class Running:
    """A mapping consuming in a background thread, with its log lines and batch reports."""

    mapping: EventSourceMapping
    output: io.StringIO
    reports: list[BatchReport]

    @property
    def lines(self) -> list[str]:
        return self.output.getvalue().splitlines()

    def wait_for_reports(self, count: int, timeout: float = 10) -> list[BatchReport]:
        wait_until(lambda: len(self.reports) >= count, timeout)
        return list(self.reports)


@contextlib.contextmanager
def running(spec: Declared, amqp_url: str, **kwargs: Any) -> Iterator[Running]:
    """Run a mapping for the duration of a with block; stops it and its workers after."""
    output = io.StringIO()
    reports: list[BatchReport] = []
    kwargs.setdefault("failure_backoff", Backoff(initial=0.05, cap=0.2))
    kwargs.setdefault("virtual_host", pika.URLParameters(amqp_url).virtual_host)
    mapping = EventSourceMapping(
        spec.function,
        spec.source,
        amqp_url,
        output=output,
        observer=reports.append,
        **kwargs,
    )
    thread = threading.Thread(target=mapping.run, name=f"test-{spec.name}", daemon=True)
    thread.start()
    try:
        assert mapping.connected.wait(15), "the mapping never connected"
        yield Running(mapping, output, reports)
    finally:
        mapping.stop()
        thread.join(30)
        assert not thread.is_alive(), "the mapping did not stop"


@pytest.fixture
def record_file(tmp_path: Path) -> Path:
    return tmp_path / "records.jsonl"
