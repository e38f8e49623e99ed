"""Publishing for real: confirmed, persistent, split per rule; unroutable is an error."""

import json
import uuid

import pika
import pytest

from credit import topology
from credit.domain import CreditRequest
from credit.errors import PublishError
from credit.messages import RuleMessage, split_request
from credit.publisher import ConfirmingPublisher

pytestmark = pytest.mark.integration


@pytest.fixture
def channel(services_ready):
    connection = pika.BlockingConnection(pika.URLParameters(services_ready["AMQP_URL"]))
    ch = connection.channel()
    topology.declare(ch, [topology.queue_for_rule("age"), topology.queue_for_rule("value")])
    ch.queue_purge("rule.age")
    ch.queue_purge("rule.value")
    yield ch
    connection.close()


def test_each_rule_gets_only_its_own_field_with_full_properties(channel, services_ready):
    ticket = str(uuid.uuid4())
    publisher = ConfirmingPublisher(services_ready["AMQP_URL"])
    publisher.publish(split_request(ticket, CreditRequest(20, 100000), ("age", "value")))
    publisher.close()
    _, props, body = channel.basic_get("rule.age", auto_ack=True)
    assert json.loads(body) == {"ticket": ticket, "age": 20}
    assert props.content_type == "application/json" and props.delivery_mode == 2
    assert props.message_id == f"{ticket}:age" and props.app_id == "credit-api" and props.timestamp
    _, props, body = channel.basic_get("rule.value", auto_ack=True)
    assert json.loads(body) == {"ticket": ticket, "value": 100000}


def test_an_unroutable_message_is_an_error_not_a_silent_drop(channel, services_ready):
    publisher = ConfirmingPublisher(services_ready["AMQP_URL"])
    with pytest.raises(PublishError, match="unroutable"):
        publisher.publish([RuleMessage(str(uuid.uuid4()), "no-such-rule", b"{}")])
    publisher.close()


def test_a_broker_that_cannot_be_reached_is_a_publish_error_naming_the_url():
    publisher = ConfirmingPublisher("amqp://guest:guest@127.0.0.1:1/%2F")
    with pytest.raises(PublishError, match=r"127\.0\.0\.1:1"):
        publisher.publish([RuleMessage(str(uuid.uuid4()), "age", b"{}")])


def test_the_topology_is_quorum_queues_with_delivery_limit_and_dead_lettering(channel):
    declared = channel.queue_declare("rule.age", passive=True)
    assert declared.method.queue == "rule.age"
    # Redeclaring with the same arguments is idempotent; with others the broker refuses.
    topology.declare(channel, [topology.queue_for_rule("age")])
    definitions = topology.definitions([topology.queue_for_rule("age")])
    args = next(q for q in definitions["queues"] if q["name"] == "rule.age")["arguments"]
    assert args == {
        "x-queue-type": "quorum",
        "x-delivery-limit": topology.DEFAULT_DELIVERY_LIMIT,
        "x-dead-letter-exchange": "credit-requests.dlx",
        "x-dead-letter-routing-key": "rule.age.dlq",
    }


@pytest.fixture
def pipelined(services_ready):
    from credit.async_publisher import PipelinedPublisher

    confirmed = []
    publisher = PipelinedPublisher(services_ready["AMQP_URL"], on_confirmed=confirmed.extend)
    yield publisher, confirmed
    publisher.close()


def test_the_pipelined_publisher_confirms_messages_from_many_threads(channel, pipelined):
    import threading

    publisher, confirmed = pipelined
    tickets = [str(uuid.uuid4()) for _ in range(200)]
    errors = []

    def send(chunk):
        for ticket in chunk:
            try:
                publisher.publish(split_request(ticket, CreditRequest(30, 5), ("age", "value")))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=send, args=(tickets[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(confirmed) == 400
    assert channel.queue_declare("rule.age", passive=True).method.message_count == 200


def test_the_pipelined_publisher_writes_a_request_in_one_send(channel, pipelined):
    import time

    publisher, confirmed = pipelined
    assert publisher._ready.wait(5)
    connection = publisher._connection
    assert connection is not None
    transport = connection._transport
    writes: list[bytes] = []
    original = transport.write

    def counting(data: bytes) -> None:
        writes.append(data)
        original(data)

    transport.write = counting  # what pika's own frame-by-frame path would call six times
    try:
        ticket = str(uuid.uuid4())
        publisher.publish(split_request(ticket, CreditRequest(30, 5), ("age", "value")))
    finally:
        transport.write = original
    assert len(writes) == 1  # method, header and body frames of both messages together
    assert writes[0].count(ticket.encode()) == 4  # in both messages: properties and body
    deadline = time.monotonic() + 5
    while len([m for m in confirmed if m.ticket == ticket]) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # the confirm callback runs just after publish() returns
    assert {m.rule for m in confirmed if m.ticket == ticket} == {"age", "value"}


def test_the_pipelined_publisher_reports_unroutable_messages(channel, pipelined):
    publisher, confirmed = pipelined
    message = RuleMessage(str(uuid.uuid4()), "no-such-rule", b"{}")
    with pytest.raises(PublishError, match="unroutable"):
        publisher.publish([message])
    assert message not in confirmed


def test_the_pipelined_publisher_fails_fast_without_a_broker():
    from credit.async_publisher import PipelinedPublisher

    publisher = PipelinedPublisher("amqp://guest:guest@127.0.0.1:1/%2F")
    with pytest.raises(PublishError, match="not connected"):
        publisher.publish([RuleMessage(str(uuid.uuid4()), "age", b"{}")])
    publisher.close()
