"""The mapping outlives its broker: it reconnects with capped backoff and consumes again.

Uses a private broker on its own port: the machine's shared broker is never stopped.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pika
import pytest

from local_runtime.backoff import Backoff
from tests.runtime.conftest import (
    TEST_EXCHANGE,
    declare_queue,
    load_spec,
    read_records,
    running,
    wait_until,
)
from tests.support.services import PrivateRabbitMQ

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not PrivateRabbitMQ.available(), reason="RabbitMQ is not installed"),
]


@pytest.fixture
def private_broker() -> Iterator[PrivateRabbitMQ]:
    with PrivateRabbitMQ() as rabbit:
        yield rabbit


def publish(rabbit: PrivateRabbitMQ, queue: str, body: bytes) -> None:
    connection = pika.BlockingConnection(rabbit.connection_parameters())
    with contextlib.closing(connection):
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(TEST_EXCHANGE, queue, body, mandatory=True)


def test_the_mapping_resumes_consuming_after_the_broker_is_killed_and_restarted(
    private_broker, record_file
):
    queue = "test.reconnect"
    spec = load_spec("recorder", queue, record_file, batch_size=1, maximum_batching_window=0)
    backoff = Backoff(initial=0.1, cap=0.5)
    connection = pika.BlockingConnection(private_broker.connection_parameters())
    with contextlib.closing(connection):
        declare_queue(connection.channel(), spec)

    with running(spec, private_broker.url, reconnect=backoff) as run:
        publish(private_broker, queue, b"before")
        run.wait_for_reports(1)
        worker_pid = run.mapping.environments[0].pid
        # RabbitMQ 3.10 loses a quorum queue declared moments before a SIGKILL (its Ra
        # registry is not yet on disk; the queue never elects a leader after the restart),
        # so the broker is given a few quiet seconds first: the outage is what is tested.
        time.sleep(3)
        private_broker.kill()
        wait_until(lambda: not run.mapping.connected.is_set(), timeout=10)
        private_broker.start()
        assert run.mapping.connected.wait(20), "the mapping did not reconnect by itself"
        publish(private_broker, queue, b"after")
        reports = run.wait_for_reports(2)

    assert [r.ok for r in reports] == [True, True]
    invocations = read_records(record_file, "invoke")
    assert [i["bodies"] for i in invocations] == [["before"], ["after"]]
    assert invocations[1]["pid"] == worker_pid, "the execution environment survived the outage"
