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

from credit import topology
from local_runtime import declaration, pika_properties
from local_runtime.backoff import Backoff
from local_runtime.declaration import FunctionSpec
from local_runtime.mapping import BatchReport, EventSourceMapping
from local_runtime.pika_properties import RawProperties
from tests.helpers import TEST_URLS, ensure_vhost

FUNCTIONS_DIR = Path(__file__).resolve().parent / "functions"
TEST_EXCHANGE = "local-runtime.tests"


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


def load_spec(
    name: str,
    queue: str,
    record_file: Path | None = None,
    *,
    environment: dict[str, str] | None = None,
    timeout: float | None = None,
    **source_changes: Any,
) -> FunctionSpec:
    """A test function's declaration, pointed at a queue of its own; keyword arguments
    change its event source (batch_size=..., maximum_batching_window=...)."""
    spec = declaration.load(FUNCTIONS_DIR / name)
    assert spec.event_source is not None
    source = dataclasses.replace(
        spec.event_source, queue=queue, routing_key=queue, exchange=TEST_EXCHANGE, **source_changes
    )
    env = dict(spec.environment)
    if record_file is not None:
        env["RECORD_FILE"] = str(record_file)
    env.update(environment or {})
    spec = dataclasses.replace(spec, event_source=source, environment=env)
    return spec if timeout is None else dataclasses.replace(spec, timeout=timeout)


def one_at_a_time(
    broker: Broker, record_file: Path, name: str = "recorder"
) -> tuple[str, FunctionSpec]:
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


@dataclass
class Broker:
    """A confirm-mode channel on the test vhost, and the queues a test made (deleted after)."""

    channel: BlockingChannel
    queues: list[str] = field(default_factory=list)

    def new_queue(self) -> str:
        name = f"test.{uuid.uuid4().hex[:12]}"
        self.queues.append(name)
        return name

    def declare(self, spec: FunctionSpec) -> None:
        assert spec.event_source is not None
        topology.declare(self.channel, [spec.event_source.rule_queue])

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
def running(spec: FunctionSpec, amqp_url: str, **kwargs: Any) -> Iterator[Running]:
    """Run a mapping for the duration of a with block; stops it and its workers after."""
    output = io.StringIO()
    reports: list[BatchReport] = []
    kwargs.setdefault("failure_backoff", Backoff(initial=0.05, cap=0.2))
    mapping = EventSourceMapping(
        spec, amqp_url=amqp_url, output=output, observer=reports.append, **kwargs
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
