"""The broker topology, declared once: exchange, per-rule quorum queues, dead-lettering."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel

from credit import settings

EXCHANGE = "credit-requests"
EXCHANGE_TYPE = "topic"
DEAD_LETTER_EXCHANGE = "credit-requests.dlx"
DEAD_LETTER_EXCHANGE_TYPE = "direct"
DEFAULT_DELIVERY_LIMIT = 10


@dataclass(frozen=True)
class RuleQueue:
    """A quorum queue fed by one routing key, with its own dead-letter queue."""

    name: str
    routing_key: str
    exchange: str = EXCHANGE
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.name}.dlq"

    @property
    def arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": self.dead_letter_queue,
        }


def queue_for_rule(rule: str, delivery_limit: int | None = None) -> RuleQueue:
    """A rule's queue: `rule.<name>`, fed by routing key `<name>`; the delivery limit is
    RULE_DELIVERY_LIMIT's when not given (10 by default)."""
    limit = settings.get_int(settings.DELIVERY_LIMIT, delivery_limit)
    return RuleQueue(name=f"rule.{rule}", routing_key=rule, delivery_limit=limit)


def declare(channel: BlockingChannel, queues: list[RuleQueue]) -> None:
    """Declare exchanges, queues, DLQs and bindings; safe to run again with the same shape."""
    channel.exchange_declare(EXCHANGE, EXCHANGE_TYPE, durable=True)
    channel.exchange_declare(DEAD_LETTER_EXCHANGE, DEAD_LETTER_EXCHANGE_TYPE, durable=True)
    exchanges = {queue.exchange for queue in queues} - {EXCHANGE}
    for exchange in sorted(exchanges):
        channel.exchange_declare(exchange, EXCHANGE_TYPE, durable=True)
    for queue in queues:
        channel.queue_declare(
            queue.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        channel.queue_bind(queue.dead_letter_queue, DEAD_LETTER_EXCHANGE, queue.dead_letter_queue)
        channel.queue_declare(queue.name, durable=True, arguments=queue.arguments)
        channel.queue_bind(queue.name, queue.exchange, queue.routing_key)


def definitions(queues: list[RuleQueue], vhost: str = "/") -> dict[str, Any]:
    """The same topology as a RabbitMQ definitions document, loadable at broker start."""
    exchanges = [
        {"name": EXCHANGE, "type": EXCHANGE_TYPE},
        {"name": DEAD_LETTER_EXCHANGE, "type": DEAD_LETTER_EXCHANGE_TYPE},
    ]
    doc_queues: list[dict[str, Any]] = []
    bindings: list[dict[str, Any]] = []
    for queue in queues:
        doc_queues.append(
            {"name": queue.dead_letter_queue, "arguments": {"x-queue-type": "quorum"}}
        )
        doc_queues.append({"name": queue.name, "arguments": queue.arguments})
        bindings.append(
            _binding(DEAD_LETTER_EXCHANGE, queue.dead_letter_queue, queue.dead_letter_queue)
        )
        bindings.append(_binding(queue.exchange, queue.name, queue.routing_key))
    return {
        "vhosts": [{"name": vhost}],
        "exchanges": [
            {
                **e,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
            for e in exchanges
        ],
        "queues": [
            {**q, "vhost": vhost, "durable": True, "auto_delete": False} for q in doc_queues
        ],
        "bindings": [{**b, "vhost": vhost} for b in bindings],
    }


def _binding(exchange: str, queue: str, key: str) -> dict[str, Any]:
    return {
        "source": exchange,
        "destination": queue,
        "destination_type": "queue",
        "routing_key": key,
        "arguments": {},
    }
