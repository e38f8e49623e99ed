"""The stack's custom resource that declares the broker topology from inside the VPC.

CloudFormation sends Create, Update and Delete; crhelper answers it on the pre-signed URL,
with FAILED and the reason when declaring raises, and before the function times out, so a
stack never waits an hour for an answer that will not come. The broker is reached with the
AMQP_URL that credit.settings reads (the services secret, through CREDIT_SECRET_ID).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pika
import pika.exceptions
from crhelper import CfnResource

from credit import settings, topology

LOGGER = logging.getLogger(__name__)
RULES = "Rules"
CONNECT_TIMEOUT_SECONDS = 10

# Delete answers at once: crhelper would otherwise wait two minutes for the logs to flush.
helper = CfnResource(json_logging=False, log_level="INFO", sleep_on_delete=0)


class TopologyError(RuntimeError):
    """The topology could not be declared; its message is the reason CloudFormation shows."""


def rules_of(properties: Mapping[str, Any]) -> list[str]:
    """The rule names the resource's `Rules` property lists (one queue rule.<name> each)."""
    rules = properties.get(RULES)
    if not isinstance(rules, list) or not rules or not all(isinstance(r, str) for r in rules):
        raise TopologyError(f"{RULES} must be a non-empty list of rule names, got {rules!r}")
    return sorted(set(rules))


def physical_id(url: str) -> str:
    """One id per broker virtual host, so an update of the rules is not a replacement."""
    parameters = pika.URLParameters(url)
    return f"topology:{parameters.host}:{parameters.virtual_host}"


def apply(rules: Sequence[str], url: str | None = None) -> str:
    """Declare the exchange, the rules' quorum queues, their DLQs and bindings; idempotent."""
    amqp_url = settings.get(settings.AMQP_URL, url)
    parameters = pika.URLParameters(amqp_url)
    given = parse_qs(urlsplit(amqp_url).query)
    # Bounded, so a broker that does not answer fails the resource well inside the timeout.
    if "socket_timeout" not in given:
        parameters.socket_timeout = CONNECT_TIMEOUT_SECONDS
    if "stack_timeout" not in given:
        parameters.stack_timeout = CONNECT_TIMEOUT_SECONDS
    if "connection_attempts" not in given:
        parameters.connection_attempts = 3
    try:
        connection = pika.BlockingConnection(parameters)
    except pika.exceptions.AMQPError as exc:
        where = f"{parameters.host}:{parameters.port}{parameters.virtual_host}"
        raise TopologyError(f"cannot connect to the broker at {where}: {exc!r}") from exc
    try:
        topology.declare(connection.channel(), [topology.queue_for_rule(r) for r in rules])
    except pika.exceptions.AMQPError as exc:
        raise TopologyError(f"the broker refused the topology: {exc!r}") from exc
    finally:
        if connection.is_open:
            connection.close()
    LOGGER.info("declared the topology of rules %s", ", ".join(rules))
    return physical_id(amqp_url)


@helper.create
@helper.update
def declare(event: Mapping[str, Any], _context: Any) -> str:
    """Create and Update: declare what the rules need (queues are never deleted here)."""
    return apply(rules_of(event.get("ResourceProperties", {})))


@helper.delete
def keep(event: Mapping[str, Any], _context: Any) -> None:
    """Delete: leave the queues and the messages they hold; the broker goes with its stack,
    and a retained production broker keeps them for the next stack."""
    LOGGER.info("leaving the topology %s in place", event.get("PhysicalResourceId"))


def handler(event: dict[str, Any], context: Any) -> None:
    helper(event, context)
