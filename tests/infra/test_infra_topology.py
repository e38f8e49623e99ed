"""The broker topology comes from credit.topology: as a definitions document, and over AMQP."""

from __future__ import annotations

import dataclasses
import json
import socket
import ssl
import uuid
from pathlib import Path

import pika
import pytest

from credit import topology
from infra.config import BrokerCredentials
from infra.deploy import Options, deploy
from infra.plan import Action
from infra.resources import topology as broker_topology

LOCAL_AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"


def rabbitmq_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
    except OSError:
        return False
    return True


needs_rabbitmq = pytest.mark.skipif(not rabbitmq_up(), reason="no RabbitMQ on 127.0.0.1:5672")


def test_definitions_hold_quorum_queues_dead_lettering_and_bindings(specs):
    document = broker_topology.definitions(specs)

    queues = {queue["name"]: queue for queue in document["queues"]}
    assert set(queues) == {"rule.age", "rule.age.dlq", "rule.value", "rule.value.dlq"}
    assert queues["rule.age"]["arguments"] == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 10,
        "x-dead-letter-exchange": topology.DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": "rule.age.dlq",
    }
    exchanges = {exchange["name"]: exchange["type"] for exchange in document["exchanges"]}
    assert exchanges == {"credit-requests": "topic", "credit-requests.dlx": "direct"}
    bindings = {(b["source"], b["destination"], b["routing_key"]) for b in document["bindings"]}
    assert ("credit-requests", "rule.age", "age") in bindings
    assert ("credit-requests.dlx", "rule.value.dlq", "rule.value.dlq") in bindings


def test_definitions_are_the_ones_the_local_runtime_declares(specs):
    queues = [spec.event_source.rule_queue for spec in specs]

    assert broker_topology.definitions(specs) == topology.definitions(queues, "/")


def test_docker_compose_loads_the_same_definitions(specs):
    committed = (
        Path(broker_topology.__file__).resolve().parents[1] / "rabbitmq" / "definitions.json"
    )
    if not committed.is_file():
        pytest.skip("infra/rabbitmq/definitions.json is not in this checkout")

    assert json.loads(committed.read_text()) == broker_topology.definitions(specs)


def test_broker_parameters_use_tls_with_the_brokers_hostname():
    endpoint = "amqps://b-1234.mq.us-east-1.amazonaws.com:5671"

    parameters = broker_topology.broker_parameters(
        endpoint, BrokerCredentials("credit", "pw-123456789012"), "/"
    )

    assert (parameters.host, parameters.port, parameters.virtual_host) == (
        "b-1234.mq.us-east-1.amazonaws.com",
        5671,
        "/",
    )
    assert parameters.ssl_options is not None
    assert parameters.ssl_options.server_hostname == "b-1234.mq.us-east-1.amazonaws.com"
    assert parameters.ssl_options.context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.integration
@needs_rabbitmq
def test_deploy_applies_the_topology_once_then_reports_it_unchanged(
    specs, artifacts, config, clients, stubs
):
    suffix = uuid.uuid4().hex[:8]
    renamed = [
        dataclasses.replace(
            spec,
            event_source=dataclasses.replace(
                spec.event_source, queue=f"infra-test.{suffix}.{spec.event_source.routing_key}"
            ),
        )
        for spec in specs
    ]
    for spec in renamed:
        stubs.expect_create(config.function_name(spec.name), spec.event_source.queue)

    def connect(vhost: str) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.URLParameters(LOCAL_AMQP))

    try:
        first = deploy(
            renamed, artifacts, config, clients, Options(apply_topology=True, connect=connect)
        )
        for spec in renamed:
            stubs.expect_list(config.function_name(spec.name))
        second = deploy(
            renamed, artifacts, config, clients, Options(apply_topology=True, connect=connect)
        )
    finally:
        delete_queues(connect, renamed)

    created = first.find("broker-topology", "vhost /")
    assert created.action is Action.CREATE
    assert f"queue infra-test.{suffix}.age" in created.detail
    assert second.find("broker-topology", "vhost /").action is Action.UNCHANGED
    assert set(change.action for change in second.changes) == {Action.UNCHANGED}


@pytest.mark.integration
@needs_rabbitmq
def test_topology_dry_run_declares_nothing(specs):
    queue = f"infra-test.{uuid.uuid4().hex[:8]}.age"
    spec = dataclasses.replace(
        specs[0], event_source=dataclasses.replace(specs[0].event_source, queue=queue)
    )

    def connect(vhost: str) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.URLParameters(LOCAL_AMQP))

    [change] = broker_topology.ensure(connect, [spec], dry_run=True)

    assert change.action is Action.CREATE and f"queue {queue}" in change.detail
    connection = connect("/")
    try:
        assert f"queue {queue}" in broker_topology.missing(
            connection, [spec.event_source.rule_queue]
        )
    finally:
        connection.close()


def delete_queues(connect, specs) -> None:
    connection = connect("/")
    channel = connection.channel()
    for spec in specs:
        queue = spec.event_source.rule_queue
        channel.queue_delete(queue.name)
        channel.queue_delete(queue.dead_letter_queue)
    connection.close()


def test_definitions_cli_prints_the_document(capsys):
    from infra.cli import main

    assert main(["definitions"]) == 0

    document = json.loads(capsys.readouterr().out)
    assert {queue["name"] for queue in document["queues"]} >= {"rule.age", "rule.value"}
