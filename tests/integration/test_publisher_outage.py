"""The long-lived publisher rides out a broker outage: what it was handed goes out afterwards.

A private broker on its own port is killed and started again; the machine's shared one is
never touched.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator

import pika
import pytest

from credit import topology
from credit.async_publisher import PipelinedPublisher
from credit.domain import CreditRequest
from credit.messages import split_request
from tests.support.services import PrivateRabbitMQ

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not PrivateRabbitMQ.available(), reason="RabbitMQ is not installed"),
]


@pytest.fixture
def rabbit() -> Iterator[PrivateRabbitMQ]:
    with PrivateRabbitMQ() as server:
        connection = pika.BlockingConnection(server.connection_parameters())
        with contextlib.closing(connection):
            topology.declare(connection.channel(), [topology.queue_for_rule("age")])
        yield server


def tickets_in(rabbit: PrivateRabbitMQ) -> set[str]:
    connection = pika.BlockingConnection(rabbit.connection_parameters())
    found = set()
    with contextlib.closing(connection):
        channel = connection.channel()
        while True:
            method, _, body = channel.basic_get("rule.age", auto_ack=True)
            if method is None:
                return found
            found.add(json.loads(body)["ticket"])


def wait_for(condition, timeout: float = 30) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_messages_handed_over_while_the_broker_is_down_go_out_when_it_is_back(rabbit):
    confirmed: list[object] = []
    publisher = PipelinedPublisher(rabbit.url, on_confirmed=confirmed.extend, wait=False)
    try:
        assert wait_for(lambda: _connected(publisher))
        time.sleep(3)  # the quorum queue's registry reaches disk before the kill
        rabbit.kill()
        sent = [str(uuid.uuid4()) for _ in range(20)]
        for ticket in sent:
            publisher.publish(split_request(ticket, CreditRequest(30, 5), ("age",)))
        rabbit.start()
        assert wait_for(lambda: len(confirmed) >= 20), f"{len(confirmed)} of 20 confirmed"
    finally:
        publisher.close()
    assert tickets_in(rabbit) == set(sent), "every message handed over reached its queue"


def _connected(publisher: PipelinedPublisher) -> bool:
    try:
        publisher.ping()
    except Exception:
        return False
    return True
