"""Poison in message properties, published among good tickets: it is dead-lettered alone, and
the consumer's connection neither loops nor takes good messages down with it."""

from __future__ import annotations

import time
import uuid

import pika
import pytest

from tests.e2e.conftest import System
from tests.faults import headers
from tests.faults.audit import consumer_connections
from tests.helpers import TEST_VHOST, delete_vhost

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# pika's decoder raises on these inside the consumer's connection (RecursionError,
# OverflowError, ValueError); the broker itself forwards them.
KINDS = ("headers nested 1,000 deep", "arrays nested 1,000 deep", "header timestamp 2**63")
TICKETS = 20
DECIDED_SECONDS = 20.0


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory, services_ready):
    running = System(vhost=f"{TEST_VHOST}-headers-{uuid.uuid4().hex[:8]}")
    running.start(tmp_path_factory.mktemp("headers") / "runtime.log")
    yield running
    assert running.stop() == 0
    delete_vhost(running.vhost)


def _connect(system: System) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(system.amqp_url))


def test_header_poison_is_dead_lettered_alone_and_good_tickets_are_decided(poisoned):
    log = headers.HeaderPoisonLog()
    for index, kind in enumerate(KINDS):
        headers.publish_one(lambda: _connect(poisoned), kind, index * 2, log)  # all to rule.age
    tickets = [poisoned.post({"age": 30, "value": 500})[2]["ticket"] for _ in range(TICKETS)]
    deadline = time.monotonic() + DECIDED_SECONDS
    statuses = [poisoned.ticket(ticket)["status"] for ticket in tickets]
    while "PENDING" in statuses and time.monotonic() < deadline:
        time.sleep(0.2)
        statuses = [poisoned.ticket(ticket)["status"] for ticket in tickets]
    time.sleep(1)  # whatever the broker dead-letters has arrived
    connection = _connect(poisoned)
    try:
        depth = connection.channel().queue_declare("rule.age.dlq", passive=True).method
    finally:
        connection.close()
    assert poisoned.log_path is not None
    lines = poisoned.log_path.read_text(errors="replace").splitlines()
    found = (statuses.count("APPROVED"), depth.message_count, consumer_connections(lines))
    assert found == (TICKETS, log.queued["rule.age"], {"AgeRule": 1, "ValueRule": 1})
