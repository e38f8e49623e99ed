"""A long-lived publisher that pipelines messages from many threads over one confirm channel.

Request threads hand their messages over and wait for the broker's confirms; the publisher's
own thread runs pika's asynchronous connection, so confirms for many requests arrive in one
frame (`multiple=True`) instead of one round trip per message. Confirmed messages are handed to
`on_confirmed` (the outbox is cleared in batches). A message nacked, returned as unroutable, or
in flight when the connection drops raises PublishError for its caller; it stays in the outbox
for the relay. Suited to a long-running process; on AWS Lambda the synchronous
ConfirmingPublisher is used, since nothing runs between invocations.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import pika
import pika.channel
import pika.exceptions
from pika.frame import Method
from pika.spec import Basic

from credit import topology
from credit.errors import PublishError
from credit.messages import RuleMessage
from credit.oneshot import OneShot
from credit.publisher import connection_parameters, describe, properties

LOGGER = logging.getLogger(__name__)
CONFIRM_TIMEOUT_SECONDS = 5.0
RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0)
# Requests (of a ticket's messages) held for the next connection when confirms are not awaited.
RETAINED_REQUESTS = 50_000


@dataclass(eq=False)
class _Request:
    messages: Sequence[RuleMessage]
    done: OneShot = field(default_factory=OneShot)
    outstanding: int = 0
    error: str | None = None

    def settle(self, error: str | None = None) -> None:
        if error and not self.error:
            self.error = error
        self.outstanding -= 1
        if self.outstanding <= 0:
            self.done.set()

    def fail(self, error: str) -> None:
        self.error = self.error or error
        self.done.set()


class _BatchingConnection(pika.SelectConnection):
    """A SelectConnection that can hold its output and write it to the socket in one send.

    pika hands every frame to its transport separately, and the transport sends each with a
    syscall of its own: three per message. Held while a batch is published, the batch's
    frames leave together.
    """

    _held: list[bytes] | None = None

    def _adapter_emit_data(self, data: bytes) -> None:
        if self._held is None:
            super()._adapter_emit_data(data)
        else:
            self._held.append(data)

    @contextlib.contextmanager
    def held_output(self) -> Iterator[None]:
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            if held:
                super()._adapter_emit_data(b"".join(held))


class PipelinedPublisher:
    """Thread-safe publish() with confirms, over one connection owned by a background thread."""

    def __init__(
        self,
        url: str | None = None,
        exchange: str = topology.EXCHANGE,
        on_confirmed: Callable[[Sequence[RuleMessage]], None] | None = None,
        confirm_timeout: float = CONFIRM_TIMEOUT_SECONDS,
        wait: bool = True,
    ) -> None:
        """With wait=False, publish() returns once the messages are handed to the connection:
        for callers whose messages are already durable in the outbox, where a lost or nacked
        message is published again by the relay."""
        self._wait = wait
        self._url = url
        self._exchange = exchange
        self._on_confirmed = on_confirmed
        self._confirm_timeout = confirm_timeout
        self._connection: _BatchingConnection | None = None
        self._channel: pika.channel.Channel | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._tag = 0
        self._pending: dict[int, tuple[_Request, RuleMessage]] = {}
        self._returned: set[str] = set()
        # Requests handed over by other threads; one wake-up of the I/O loop sends them all.
        self._outgoing: deque[_Request] = deque()
        self._flush_scheduled = False
        self._thread = threading.Thread(target=self._run, name="amqp-publisher", daemon=True)
        self._thread.start()

    # --- called from request threads -------------------------------------------------------
    def publish(self, messages: Sequence[RuleMessage]) -> None:
        if not self._wait:
            self._hand_over(messages)
            return
        wait = 0.5 if not self._stopping.is_set() else 0
        if not self._ready.is_set() and not (wait and self._ready.wait(wait)):
            raise PublishError(f"RabbitMQ is not connected at {describe(self._url)}")
        request = _Request(messages, outstanding=len(messages))
        connection = self._connection
        if connection is None:
            raise PublishError(f"RabbitMQ is not connected at {describe(self._url)}")
        self._outgoing.append(request)
        # Checked after the append: a flush that has not yet cleared the flag sends it.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            try:
                connection.ioloop.add_callback_threadsafe(self._flush)
            except (pika.exceptions.AMQPError, RuntimeError, AttributeError) as exc:
                self._flush_scheduled = False
                with contextlib.suppress(ValueError):
                    self._outgoing.remove(request)
                raise PublishError(f"RabbitMQ connection is closing: {exc!r}") from exc
        if not request.done.wait(self._confirm_timeout):
            raise PublishError(f"no confirm within {self._confirm_timeout}s")
        if request.error:
            raise PublishError(request.error)

    def _hand_over(self, messages: Sequence[RuleMessage]) -> None:
        """Without waiting for confirms, nothing waits for a connection either: the caller's
        messages are already in the outbox, and a POST must not stall while the broker is
        away. They are sent as soon as a channel is open (now, or after the reconnect), and
        sent again if the connection drops before their confirm; past RETAINED_REQUESTS
        waiting, the oldest are left to the relay."""
        if self._stopping.is_set():
            raise PublishError("publisher stopped")
        self._outgoing.append(_Request(messages, outstanding=len(messages)))
        while len(self._outgoing) > RETAINED_REQUESTS:
            self._outgoing.popleft()  # still in the outbox: the relay publishes it
        connection = self._connection
        if self._ready.is_set() and connection is not None and not self._flush_scheduled:
            self._flush_scheduled = True
            try:
                connection.ioloop.add_callback_threadsafe(self._flush)
            except (pika.exceptions.AMQPError, RuntimeError, AttributeError):
                self._flush_scheduled = False  # the reconnect flushes it

    def ping(self) -> None:
        if not self._ready.is_set():
            raise PublishError(f"RabbitMQ is not connected at {describe(self._url)}")

    def close(self) -> None:
        self._stopping.set()
        connection = self._connection
        if connection is not None:
            with contextlib.suppress(pika.exceptions.AMQPError, RuntimeError):
                connection.ioloop.add_callback_threadsafe(self._close_connection)
        self._thread.join(10)

    # --- the publisher thread ----------------------------------------------------------------
    def _run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            self._connection = _BatchingConnection(
                connection_parameters(self._url),
                on_open_callback=self._on_connection_open,
                on_open_error_callback=self._on_connection_lost,
                on_close_callback=self._on_connection_lost,
            )
            self._connection.ioloop.start()
            self._ready.clear()
            if self._stopping.is_set():
                break
            delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
            attempt = 0 if self._tag else attempt + 1
            self._stopping.wait(delay)
        self._fail_pending("publisher stopped")
        while self._outgoing:
            self._outgoing.popleft().fail("publisher stopped")

    def _on_connection_open(self, connection: pika.SelectConnection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_channel_open(self, channel: pika.channel.Channel) -> None:
        self._channel = channel
        self._tag = 0
        channel.add_on_return_callback(self._on_return)
        channel.add_on_close_callback(self._on_channel_closed)
        channel.confirm_delivery(ack_nack_callback=self._on_confirm)
        self._ready.set()
        LOGGER.info("publisher connected to %s", describe(self._url))
        self._flush()  # anything handed over while the previous connection was dying

    def _on_channel_closed(self, _: pika.channel.Channel, reason: Exception) -> None:
        LOGGER.warning("publisher channel closed: %r", reason)
        self._ready.clear()
        self._fail_pending(f"channel closed: {reason!r}")
        if self._connection is not None and self._connection.is_open:
            self._connection.close()

    def _on_connection_lost(self, connection: pika.SelectConnection, reason: object) -> None:
        self._ready.clear()
        self._fail_pending(f"connection lost: {reason!r}")
        if not self._stopping.is_set():
            LOGGER.warning("publisher lost %s: %r", describe(self._url), reason)
        connection.ioloop.stop()

    def _close_connection(self) -> None:
        if self._connection is not None and self._connection.is_open:
            self._connection.close()
        elif self._connection is not None:
            self._connection.ioloop.stop()

    def _flush(self) -> None:
        self._flush_scheduled = False
        connection, channel = self._connection, self._channel
        if connection is None or not self._outgoing:
            return
        if channel is None or not channel.is_open:
            if self._wait:
                while self._outgoing:
                    self._outgoing.popleft().fail("channel is not open")
            return  # without waiting callers, they wait for the next channel
        with connection.held_output():
            while self._outgoing:
                self._send(self._outgoing.popleft())

    def _send(self, request: _Request) -> None:
        channel = self._channel
        assert channel is not None  # _flush checked it is open
        for message in request.messages:
            self._tag += 1
            self._pending[self._tag] = (request, message)
            channel.basic_publish(
                self._exchange, message.rule, message.body, properties(message), mandatory=True
            )

    def _on_return(
        self,
        _: pika.channel.Channel,
        method: Basic.Return,
        props: pika.BasicProperties,
        body: bytes,
    ) -> None:
        self._returned.add(props.message_id or "")
        LOGGER.error("message %s unroutable: %s", props.message_id, method.reply_text)

    def _on_confirm(self, frame: Method) -> None:
        method = frame.method
        tags = (
            # self._pending is in tag order: stop at the first tag past the confirmed one
            list(itertools.takewhile(lambda tag: tag <= method.delivery_tag, self._pending))
            if method.multiple
            else [method.delivery_tag]
        )
        confirmed: list[RuleMessage] = []
        for tag in tags:
            entry = self._pending.pop(tag, None)
            if entry is None:
                continue
            request, message = entry
            if isinstance(method, Basic.Nack):
                request.settle(f"broker nacked message {message.message_id}")
            elif message.message_id in self._returned:
                self._returned.discard(message.message_id)
                request.settle(f"message {message.message_id} unroutable on {self._exchange!r}")
            else:
                request.settle()
                confirmed.append(message)
        if confirmed and self._on_confirmed is not None:
            self._on_confirmed(confirmed)

    def _fail_pending(self, error: str) -> None:
        """The connection or channel is gone with these messages unconfirmed. A caller that
        waits is told; otherwise they go out again on the next connection (a duplicate is
        harmless: a verdict is keyed by ticket and rule)."""
        pending, self._pending = self._pending, {}
        if not self._wait and not self._stopping.is_set():
            again = [message for _, message in pending.values()]
            if again:
                self._outgoing.appendleft(_Request(again, outstanding=len(again)))
        else:
            for request, _ in pending.values():
                request.fail(error)
        self._returned.clear()
