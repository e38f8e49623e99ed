"""Measures the runtime's own costs with test functions against the real broker.

    .venv/bin/python -m tests.runtime.bench_runtime [--messages 3000]

    .venv/bin/python -m tests.runtime.bench_runtime --records-only

Prints: the consumer thread's CPU per message to decode a content header and encode its
record, beside pika's own decoding of the same header; cold start of a no-op handler, the
round trip of one invocation, throughput of the event source mapping with a no-op handler at
batch size 1 and 100, and the time from publishing one message to its handler starting
(batching window 0).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import statistics
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pika.frame
import pika.spec

from local_runtime import pika_properties
from local_runtime.environment import ExecutionEnvironment
from local_runtime.events import Delivery, broker_arn, build_event
from local_runtime.mapping import BatchReport, EventSourceMapping
from tests.helpers import TEST_URLS
from tests.runtime.conftest import TEST_EXCHANGE, declare_queue, load_spec, read_records

AMQP_URL = TEST_URLS["AMQP_URL"]


def summary(values: list[float], unit: str) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (
        f"median {statistics.median(ordered):.2f} {unit}, min {ordered[0]:.2f}, "
        f"p95 {p95:.2f}, n={len(ordered)}"
    )


RECORD_HEADERS: dict[str, dict[str, object] | None] = {
    "no headers": None,
    "x-delivery-count": {"x-delivery-count": 1},
    "four headers": {"trace": "abc-123", "attempt": 2, "source": "api", "tags": ["a", "b"]},
}


def record_costs(messages: int = 100_000, rounds: int = 5) -> None:
    """CPU per message (best of `rounds`) of what the consumer thread does with a content
    header: pika's frame decoding with our properties class and the record's encoding,
    against pika's frame decoding with its own BasicProperties and nothing else."""
    body = b'{"ticket":"x","age":20}'
    for name, headers in RECORD_HEADERS.items():
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            message_id=str(uuid.uuid4()),
            timestamp=int(time.time()),
            app_id="bench",
            headers=headers,
        )
        frame = _header_frame(properties, len(body))
        ours = functools.partial(_decode_and_encode, frame, body)
        pika_alone = functools.partial(pika.frame.decode_frame, frame)
        pika_properties.install()
        ours_us = _cpu_per_call(ours, messages, rounds)
        pika.spec.props[pika.spec.BasicProperties.INDEX] = pika.spec.BasicProperties
        try:
            pika_us = _cpu_per_call(pika_alone, messages, rounds)
        finally:
            pika_properties.install()
        print(
            f"record, {name}: decode + encode {ours_us:.2f} µs/msg; "
            f"pika's decoding alone {pika_us:.2f} µs/msg"
        )


def _header_frame(properties: pika.BasicProperties, body_size: int) -> bytes:
    payload = struct.pack(">HHQ", pika.spec.BasicProperties.INDEX, 0, body_size)
    payload += b"".join(properties.encode())
    return struct.pack(">BHL", pika.spec.FRAME_HEADER, 1, len(payload)) + payload + b"\xce"


def _decode_and_encode(frame: bytes, body: bytes) -> None:
    _, header = pika.frame.decode_frame(frame)
    assert isinstance(header, pika.frame.Header)
    _ = Delivery(body, header.properties).event_size


def _cpu_per_call(call: Callable[[], object], calls: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        began = time.thread_time()
        for _ in range(calls):
            call()
        best = min(best, (time.thread_time() - began) / calls * 1e6)
    return best


def cold_starts(rounds: int) -> None:
    spec = load_spec("noop", "bench.unused")
    init, spawn = [], []
    for _ in range(rounds):
        environment = ExecutionEnvironment(spec.function, output=io.StringIO())
        began = time.perf_counter()
        init.append(environment.start())
        spawn.append((time.perf_counter() - began) * 1000)
        environment.stop()
    print(f"cold start, Init Duration (import of handler.py): {summary(init, 'ms')}")
    print(f"cold start, process spawn to ready:              {summary(spawn, 'ms')}")


def round_trips(rounds: int) -> None:
    spec = load_spec("noop", "bench.unused")
    environment = ExecutionEnvironment(spec.function, output=io.StringIO())
    arn = broker_arn("127.0.0.1", 5672)
    for size in (1, 100):
        deliveries = [Delivery(b'{"ticket": "x", "age": 20}', pika.BasicProperties())] * size
        event = build_event("bench", deliveries, arn)
        environment.invoke(event)  # cold start outside the measurement
        times = []
        for _ in range(rounds):
            began = time.perf_counter()
            environment.invoke(event)
            times.append((time.perf_counter() - began) * 1000)
        print(f"invoke round trip, {size:>3} message event:           {summary(times, 'ms')}")
    environment.stop()


@contextlib.contextmanager
def bench_queue(channel: pika.adapters.blocking_connection.BlockingChannel) -> Iterator[str]:
    name = f"test.bench.{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        for queue in (name, f"{name}.dlq"):
            channel.queue_delete(queue)


@contextlib.contextmanager
def mapping_running(mapping: EventSourceMapping) -> Iterator[None]:
    thread = threading.Thread(target=mapping.run, daemon=True)
    thread.start()
    assert mapping.connected.wait(15)
    try:
        yield
    finally:
        mapping.stop()
        thread.join(30)


def throughput(
    channel: pika.adapters.blocking_connection.BlockingChannel, messages: int, batch_size: int
) -> None:
    with bench_queue(channel) as queue:
        window = 0.0 if batch_size == 1 else 0.5
        spec = load_spec("noop", queue, batch_size=batch_size, maximum_batching_window=window)
        declare_queue(channel, spec)
        for number in range(messages):
            channel.basic_publish(TEST_EXCHANGE, queue, b'{"n": %d}' % number)
        done = threading.Event()
        reports: list[tuple[float, BatchReport]] = []

        def observe(report: BatchReport) -> None:
            reports.append((time.perf_counter(), report))
            if sum(r.size for _, r in reports) >= messages:
                done.set()

        mapping = EventSourceMapping(
            spec.function, spec.source, AMQP_URL, output=io.StringIO(), observer=observe
        )
        with mapping_running(mapping):
            assert done.wait(300), "not every message was processed"
        first_at, first = reports[0]  # the first batch pays the cold start; leave it out
        elapsed = reports[-1][0] - first_at
        counted = messages - first.size
        per_invocation = elapsed / (len(reports) - 1) * 1000
        print(
            f"mapping, no-op handler, batch size {batch_size:>3}: {counted / elapsed:,.0f} "
            f"messages/s, {len(reports) - 1} invocations, {per_invocation:.2f} ms each"
        )


def publish_to_start(
    channel: pika.adapters.blocking_connection.BlockingChannel, rounds: int
) -> None:
    with bench_queue(channel) as queue, tempfile.TemporaryDirectory() as folder:
        records = Path(folder) / "records.jsonl"
        spec = load_spec("recorder", queue, records, batch_size=100, maximum_batching_window=0)
        declare_queue(channel, spec)
        mapping = EventSourceMapping(spec.function, spec.source, AMQP_URL, output=io.StringIO())
        latencies = []
        with mapping_running(mapping):
            for number in range(rounds + 1):
                published = time.time()
                channel.basic_publish(TEST_EXCHANGE, queue, b"ping")
                while len(read_records(records, "invoke")) <= number:
                    time.sleep(0.002)
                started = read_records(records, "invoke")[-1]["started"]
                if number:  # the first one includes the cold start
                    latencies.append((started - published) * 1000)
                time.sleep(0.05)
        print(f"publish (confirmed) to handler start, window 0: {summary(latencies, 'ms')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--records-only", action="store_true", help="only the record costs")
    args = parser.parse_args()
    record_costs()
    if args.records_only:
        return
    cold_starts(10)
    round_trips(300)
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.confirm_delivery()
    try:
        throughput(channel, args.messages, 1)
        throughput(channel, args.messages * 10, 100)
        publish_to_start(channel, 50)
    finally:
        connection.close()


if __name__ == "__main__":
    main()
