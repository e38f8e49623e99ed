"""The broker topology (exchange, quorum queues, DLX) applied from credit.topology over AMQP."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingConnection

from credit import topology
from infra.config import BrokerCredentials
from infra.errors import DeployError
from infra.plan import Action, Change
from local_runtime.declaration import FunctionSpec

LOGGER = logging.getLogger(__name__)
KIND = "broker-topology"
AMQPS_PORT = 5671
NOT_FOUND = 404

Connect = Callable[[str], BlockingConnection]
"""Opens a connection to the broker's given virtual host."""


def queues_by_vhost(specs: Sequence[FunctionSpec]) -> dict[str, list[topology.RuleQueue]]:
    """The declared rule queues, grouped by the virtual host their mapping reads from."""
    grouped: dict[str, list[topology.RuleQueue]] = {}
    for spec in specs:
        if spec.event_source is not None:
            source = spec.event_source
            grouped.setdefault(source.virtual_host, []).append(source.rule_queue)
    return grouped


def definitions(specs: Sequence[FunctionSpec]) -> dict[str, list[dict[str, Any]]]:
    """The broker definitions for every declared queue, merged across virtual hosts."""
    merged: dict[str, list[dict[str, Any]]] = {
        "vhosts": [],
        "exchanges": [],
        "queues": [],
        "bindings": [],
    }
    for vhost, queues in sorted(queues_by_vhost(specs).items()):
        document = topology.definitions(queues, vhost)
        for key in merged:
            merged[key] += document.get(key, [])
    return merged


def broker_parameters(
    endpoint: str, credentials: BrokerCredentials, vhost: str
) -> pika.ConnectionParameters:
    """TLS connection parameters for an Amazon MQ endpoint such as amqps://b-1.mq...:5671."""
    parts = urlsplit(endpoint)
    host = parts.hostname or endpoint
    return pika.ConnectionParameters(
        host=host,
        port=parts.port or AMQPS_PORT,
        virtual_host=vhost,
        credentials=pika.PlainCredentials(credentials.username, credentials.password),
        ssl_options=pika.SSLOptions(ssl.create_default_context(), server_hostname=host),
        connection_attempts=3,
        retry_delay=2,
    )


def amqp_url(endpoint: str, credentials: BrokerCredentials, vhost: str = "/") -> str:
    """The AMQP_URL credit.publisher opens (pika.URLParameters) for an amqps:// endpoint.

    The same host, port, user and virtual host as broker_parameters; TLS comes from the
    amqps scheme. User, password and vhost are percent-encoded.
    """
    parts = urlsplit(endpoint)
    host = parts.hostname or endpoint
    user = quote(credentials.username, safe="")
    password = quote(credentials.password, safe="")
    return f"amqps://{user}:{password}@{host}:{parts.port or AMQPS_PORT}/{quote(vhost, safe='')}"


def default_vhost(specs: Sequence[FunctionSpec]) -> str:
    """The virtual host publishers use: the one every event source reads from, else '/'."""
    vhosts = list(queues_by_vhost(specs))
    return vhosts[0] if len(vhosts) == 1 else "/"


def connector(endpoint: str, credentials: BrokerCredentials) -> Connect:
    """A Connect for the deployed broker."""

    def connect(vhost: str) -> BlockingConnection:
        return pika.BlockingConnection(broker_parameters(endpoint, credentials, vhost))

    return connect


def missing(connection: BlockingConnection, queues: Sequence[topology.RuleQueue]) -> list[str]:
    """Exchanges and queues of the topology the broker does not have (passive, changes nothing)."""
    exchanges = {topology.EXCHANGE, topology.DEAD_LETTER_EXCHANGE} | {q.exchange for q in queues}
    absent = [f"exchange {name}" for name in sorted(exchanges) if not _exists(connection, name)]
    for queue in queues:
        for name in (queue.name, queue.dead_letter_queue):
            if not _exists(connection, name, queue=True):
                absent.append(f"queue {name}")
    return absent


def ensure(connect: Connect, specs: Sequence[FunctionSpec], dry_run: bool) -> list[Change]:
    """Declare the topology on each virtual host; unchanged when everything already exists."""
    changes = []
    for vhost, queues in sorted(queues_by_vhost(specs).items()):
        connection = _open(connect, vhost)
        try:
            absent = missing(connection, queues)
            if not dry_run:
                _declare(connection, queues, vhost)
        finally:
            _close(connection)
        action = Action.CREATE if absent else Action.UNCHANGED
        changes.append(Change(KIND, f"vhost {vhost}", action, ", ".join(absent)))
    return changes


def _exists(connection: BlockingConnection, name: str, queue: bool = False) -> bool:
    channel = connection.channel()
    try:
        if queue:
            channel.queue_declare(name, passive=True)
        else:
            channel.exchange_declare(name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == NOT_FOUND:
            return False
        raise DeployError(f"broker refused to check {name}: {exc.reply_text}") from exc
    channel.close()
    return True


def _declare(
    connection: BlockingConnection, queues: Sequence[topology.RuleQueue], vhost: str
) -> None:
    channel = connection.channel()
    try:
        topology.declare(channel, list(queues))
    except pika.exceptions.ChannelClosedByBroker as exc:
        raise DeployError(
            f"broker refused the topology on vhost {vhost}: {exc.reply_text} "
            "(an existing queue with other arguments must be deleted first)"
        ) from exc
    channel.close()
    LOGGER.info("declared topology on vhost %s", vhost)


def _open(connect: Connect, vhost: str) -> BlockingConnection:
    try:
        return connect(vhost)
    except pika.exceptions.AMQPError as exc:
        raise DeployError(
            f"cannot reach the broker (vhost {vhost}): {exc!r}; a private broker is reachable "
            "only from inside its VPC"
        ) from exc


def _close(connection: BlockingConnection) -> None:
    if connection.is_open:
        connection.close()
