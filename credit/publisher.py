"""Publishing rule messages with publisher confirms and mandatory routing."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Protocol

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from credit import settings, topology
from credit.errors import PublishError
from credit.messages import APP_ID, CONTENT_TYPE, RuleMessage

LOGGER = logging.getLogger(__name__)


class Publisher(Protocol):
    """Publishes messages and returns only once the broker confirmed every one of them."""

    def publish(self, messages: Sequence[RuleMessage]) -> None: ...

    def ping(self) -> None: ...


def connection_parameters(url: str | None = None) -> pika.URLParameters:
    params = pika.URLParameters(settings.get(settings.AMQP_URL, url))
    params.connection_attempts = 1
    params.socket_timeout = 3
    params.blocked_connection_timeout = 10
    return params


def describe(url: str | None = None) -> str:
    params = connection_parameters(url)
    return f"amqp://{params.credentials.username}@{params.host}:{params.port}/{params.virtual_host}"


def properties(message: RuleMessage) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type=CONTENT_TYPE,
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=message.message_id,
        timestamp=int(time.time()),
        app_id=APP_ID,
    )


class ConfirmingPublisher:
    """One confirm-mode channel per thread; reconnects lazily after any broker error."""

    def __init__(self, url: str | None = None, exchange: str = topology.EXCHANGE) -> None:
        self._url = url
        self._exchange = exchange
        self._local = threading.local()

    def _channel(self) -> BlockingChannel:
        channel: BlockingChannel | None = getattr(self._local, "channel", None)
        if channel is not None and channel.is_open:
            return channel
        connection = BlockingConnection(connection_parameters(self._url))
        channel = connection.channel()
        channel.confirm_delivery()
        self._local.connection, self._local.channel = connection, channel
        return channel

    def publish(self, messages: Sequence[RuleMessage]) -> None:
        try:
            channel = self._channel()
            for message in messages:
                channel.basic_publish(
                    self._exchange,
                    message.rule,
                    message.body,
                    properties(message),
                    mandatory=True,
                )
        except pika.exceptions.UnroutableError as exc:
            raise PublishError(f"message unroutable on exchange {self._exchange!r}: {exc}") from exc
        except pika.exceptions.NackError as exc:
            raise PublishError(f"broker refused message: {exc}") from exc
        except (pika.exceptions.AMQPError, OSError) as exc:
            self.close()
            raise PublishError(f"RabbitMQ failed at {describe(self._url)}: {exc!r}") from exc

    def ping(self) -> None:
        try:
            self._channel()
        except (pika.exceptions.AMQPError, OSError) as exc:
            self.close()
            raise PublishError(
                f"RabbitMQ is not reachable at {describe(self._url)}: {exc!r}"
            ) from exc

    def close(self) -> None:
        connection: BlockingConnection | None = getattr(self._local, "connection", None)
        self._local.connection = self._local.channel = None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except (pika.exceptions.AMQPError, OSError):
                LOGGER.debug("closing a broken AMQP connection failed", exc_info=True)
