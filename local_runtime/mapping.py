"""The Amazon MQ event source mapping, emulated against a real RabbitMQ queue.

Messages are gathered into a batch that closes at the batch size, at the batching window
(counted from the batch's first message) or before the event would pass 6 MB; a message too
big for any event, or whose properties cannot be rendered as AWS renders them, is
dead-lettered at once, alone. Each batch becomes one `aws:rmq` event and one
invocation. On success the whole batch is acked; on any failure (error, timeout, crash) the
whole batch is returned to the queue, where it comes back with `redelivered: true` until the
quorum queue's delivery limit dead-letters it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.spec import Basic

from declarations import limits
from declarations.model import Function, MqSource
from local_runtime import pika_properties, priority
from local_runtime.amqp_fields import message_id
from local_runtime.backoff import Backoff
from local_runtime.brokers import describe, parameters
from local_runtime.environment import ExecutionEnvironment, InvocationFailed, Site
from local_runtime.events import RECORD_BUDGET_BYTES, Delivery, encode_event, unfit
from local_runtime.filters import Filters
from local_runtime.pika_properties import wire_bytes

LOGGER = logging.getLogger(__name__)
IDLE_POLL_SECONDS = 0.2
ENABLED, DISABLED = "Enabled", "Disabled"  # the states of an event source mapping
USER_INITIATED = "USER_INITIATED"  # StateTransitionReason of a change someone asked for
MISSING_QUEUE_ATTEMPTS = 3  # a queue still missing after this many connects is a config error
CONNECTION_ERRORS = (pika.exceptions.AMQPError, OSError)


@dataclass(frozen=True)
class BatchReport:
    """What happened to one batch, for observers (tests, benchmarks, the CLI)."""

    function: str
    size: int
    ok: bool
    error: str | None
    duration_ms: float
    redelivered: int


Observer = Callable[[BatchReport], None]


@dataclass(eq=False)
class _Batch:
    deliveries: list[Delivery]
    generation: int

    @property
    def first_tag(self) -> int:
        return self.deliveries[0].delivery_tag

    @property
    def last_tag(self) -> int:
        return self.deliveries[-1].delivery_tag


@dataclass
class EventSourceMapping:
    """Consumes one function's queue and invokes it, one batch per execution environment."""

    spec: Function
    source: MqSource
    amqp_url: str
    virtual_host: str = "/"  # as the events name it: the template's, or the URL's
    site: Site = field(default_factory=Site)
    output: TextIO | None = None
    observer: Observer | None = None
    reconnect: Backoff = field(default_factory=lambda: Backoff(initial=0.5, cap=2.0))
    failure_backoff: Backoff = field(default_factory=lambda: Backoff(initial=0.1, cap=5.0))
    nice: int = 0  # consumer threads and workers run this far below normal priority
    invocation_wait: float = limits.MQ_INVOCATION_WAIT_SECONDS

    def __post_init__(self) -> None:
        # Properties are rendered from their bytes, so one bad header is one bad message.
        pika_properties.install()
        self._stop = threading.Event()
        self._idle: queue.SimpleQueue[ExecutionEnvironment] = queue.SimpleQueue()
        self._environments = [self._environment() for _ in range(self.spec.concurrency)]
        for environment in self._environments:
            self._idle.put(environment)
        self._pool = ThreadPoolExecutor(self.spec.concurrency, thread_name_prefix=self.spec.name)
        self._buffer: list[Delivery] = []
        self._buffer_bytes = 0
        self._batch_opened = 0.0
        self._in_flight: list[_Batch] = []
        self._lock = threading.Lock()
        self._generation = 0
        self._resume_at = 0.0
        self._connection: BlockingConnection | None = None
        self.connected = threading.Event()
        self.event_source_arn = self.source.broker.arn
        self.filters = Filters.parse(self.source.filters)
        self.filtered = 0  # messages no filter matched: acknowledged and dropped, as on AWS
        self.state = ENABLED if self.source.enabled else DISABLED
        self.state_reason = USER_INITIATED
        self._enabled = threading.Event()
        if self.source.enabled:
            self._enabled.set()
        self._missing_queue = 0

    def _environment(self) -> ExecutionEnvironment:
        kwargs: dict[str, Any] = {"spec": self.spec, "site": self.site, "nice": self.nice}
        if self.output is not None:
            kwargs["output"] = self.output
        return ExecutionEnvironment(**kwargs)

    @property
    def connections(self) -> int:
        """Broker connections opened so far; more than one means the mapping reconnected."""
        return self._generation

    @property
    def environments(self) -> list[ExecutionEnvironment]:
        return list(self._environments)

    def update_function(self, function: Function) -> None:
        """Run `function` (new code or configuration) from the next batch on: each execution
        environment is replaced once it is idle, so a batch in flight finishes on the old one."""
        self.spec = function

    def _replaced(self, old: ExecutionEnvironment) -> ExecutionEnvironment:
        old.stop()
        new = self._environment()
        self._environments[self._environments.index(old)] = new
        return new

    def stop(self) -> None:
        """Ask the consumer loop to return its batches and exit; safe from any thread."""
        self._stop.set()
        self._wake()

    def disable(self, reason: str = USER_INITIATED) -> None:
        """Stop consuming (batches in flight finish, the rest go back to the queue) until
        enable(); AWS's state Disabled, with the reason as its StateTransitionReason."""
        self.state, self.state_reason = DISABLED, reason
        self._enabled.clear()
        self._wake()

    def enable(self) -> None:
        self.state, self.state_reason = ENABLED, USER_INITIATED
        self._missing_queue = 0
        self.reconnect.reset()
        self._enabled.set()

    def _wake(self) -> None:
        connection = self._connection
        if connection is not None:
            with contextlib.suppress(*CONNECTION_ERRORS):
                connection.add_callback_threadsafe(lambda: None)  # wake the loop

    def run(self) -> None:
        """Consume until stop(); reconnects with capped backoff when the broker goes away,
        and stops (Disabled, with the reason) on an error that retrying cannot cure."""
        priority.lower_thread(self.nice)  # the invoke threads it starts inherit it
        while not self._stop.is_set():
            if not self._enabled.wait(IDLE_POLL_SECONDS):
                continue
            try:
                self._consume()
            except CONNECTION_ERRORS as exc:
                self.connected.clear()
                self._drop_buffer()
                with self._lock:
                    self._in_flight.clear()  # their deliveries died with the channel
                if self._stop.is_set():
                    break
                self._failed(exc)
        self._finish()

    def _failed(self, exc: BaseException) -> None:
        """Disable on what AWS stops an Amazon MQ mapping for; else wait, and try again."""
        code = self._unrecoverable(exc)
        if code is not None:
            self.disable(f"{code}: {self._problem(exc)}")
            LOGGER.error(
                "%s: mapping %s stopped (%s); `credit-runtime enable %s` starts it again",
                self.spec.name,
                self.source.logical_id,
                self.state_reason,
                self.source.logical_id,
            )
            return
        delay = self.reconnect.next_delay()
        LOGGER.warning("%s: %s; reconnecting in %.1fs", self.spec.name, self._problem(exc), delay)
        self._stop.wait(delay)

    def _unrecoverable(self, exc: BaseException) -> str | None:
        """AWS's StateTransitionReason codes for a stopped Amazon MQ consumer."""
        if isinstance(
            exc, pika.exceptions.ProbableAuthenticationError | pika.exceptions.AuthenticationError
        ):
            return "EVENT_SOURCE_AUTHN_ERROR"
        if isinstance(exc, pika.exceptions.ProbableAccessDeniedError):
            return "EVENT_SOURCE_AUTHZ_ERROR"
        if isinstance(exc, pika.exceptions.ChannelClosedByBroker):
            if exc.reply_code == 403:
                return "EVENT_SOURCE_AUTHZ_ERROR"
            if exc.reply_code == 404:
                # A queue can be missing for a moment while a broker restarts: only one that
                # stays missing is the mapping's configuration.
                self._missing_queue += 1
                if self._missing_queue >= MISSING_QUEUE_ATTEMPTS:
                    return "ESM_CONFIG_NOT_VALID"
        return None

    def _problem(self, exc: BaseException) -> str:
        where = describe(self.amqp_url)
        if isinstance(exc, pika.exceptions.ChannelClosedByBroker) and exc.reply_code == 404:
            return f"queue {self.source.queue} does not exist at {where}"
        if isinstance(exc, pika.exceptions.ChannelClosedByBroker) and exc.reply_code == 403:
            return f"access to queue {self.source.queue} refused at {where}"
        if isinstance(exc, pika.exceptions.ProbableAuthenticationError):
            return f"the broker refused the credentials at {where}"
        if isinstance(exc, pika.exceptions.ProbableAccessDeniedError):
            return f"access to the virtual host refused at {where}"
        return f"broker unreachable at {where} ({exc!r})"

    def _consume(self) -> None:
        connection = BlockingConnection(parameters(self.amqp_url))
        self._connection = connection
        self._generation += 1
        try:
            channel = connection.channel()
            # The queue is the broker's topology, declared by whoever owns it; a missing one
            # fails here (404), and the mapping tries again after its backoff.
            channel.queue_declare(self.source.queue, passive=True)
            prefetch = self.source.batch_size * (self.spec.concurrency + 1)
            channel.basic_qos(prefetch_count=min(65535, prefetch))
            channel.basic_consume(self.source.queue, functools.partial(self._on_message, channel))
            self.reconnect.reset()
            self.connected.set()
            LOGGER.info(
                "%s: consuming %s at %s", self.spec.name, self.source.queue, describe(self.amqp_url)
            )
            self._missing_queue = 0
            while not self._stop.is_set() and self._enabled.is_set():
                connection.process_data_events(time_limit=self._wait_time())
                self._dispatch_ready(channel, connection)
            self._drain(channel, connection)
        finally:
            self._connection = None
            self.connected.clear()
            if connection.is_open:
                try:
                    connection.close()
                except CONNECTION_ERRORS:
                    LOGGER.debug("closing the consumer connection failed", exc_info=True)

    def _on_message(
        self,
        channel: BlockingChannel,
        _: BlockingChannel,
        method: Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        delivery = Delivery(body, properties, bool(method.redelivered), method.delivery_tag)
        reason = unfit(delivery)
        if reason is not None:
            # One message that cannot become an event is set aside alone: its neighbours
            # go on, and nothing is returned to the queue.
            LOGGER.error(
                "%s: message %s (delivery %d) %s; dead-lettering it",
                self.spec.name,
                message_id(wire_bytes(properties)) or "without an id",
                method.delivery_tag,
                reason,
            )
            channel.basic_reject(method.delivery_tag, requeue=False)
            return
        if self.filters and not self.filters.matches(body):
            channel.basic_ack(method.delivery_tag)  # matched no filter: dropped, as on AWS
            self.filtered += 1
            return
        if not self._buffer:
            self._batch_opened = time.monotonic()
        self._buffer.append(delivery)
        self._buffer_bytes += delivery.event_size

    def _batch_closed(self) -> bool:
        if not self._buffer:
            return False
        return (
            len(self._buffer) >= self.source.batch_size
            or self._buffer_bytes >= RECORD_BUDGET_BYTES
            or time.monotonic() - self._batch_opened >= self.source.maximum_batching_window
        )

    def _wait_time(self) -> float:
        if not self._buffer:
            return IDLE_POLL_SECONDS
        now = time.monotonic()
        if self._batch_closed():
            if self._idle.empty():
                return IDLE_POLL_SECONDS  # a settling batch wakes the loop when a worker frees
            # after a failure, sleep until the backoff ends instead of spinning on it
            return max(0.0, min(IDLE_POLL_SECONDS, self._resume_at - now))
        remaining = self._batch_opened + self.source.maximum_batching_window - now
        return max(0.0, min(IDLE_POLL_SECONDS, remaining))

    def _dispatch_ready(self, channel: BlockingChannel, connection: BlockingConnection) -> None:
        while self._batch_closed() and time.monotonic() >= self._resume_at:
            try:
                environment = self._idle.get_nowait()
            except queue.Empty:
                return
            if environment.spec is not self.spec:
                environment = self._replaced(environment)
            batch = _Batch(self._take_batch(), self._generation)
            with self._lock:
                self._in_flight.append(batch)
            self._pool.submit(self._invoke, environment, batch, channel, connection)

    def _take_batch(self) -> list[Delivery]:
        taken: list[Delivery] = []
        size = 0
        for delivery in self._buffer:
            if len(taken) >= self.source.batch_size:
                break
            if taken and size + delivery.event_size > RECORD_BUDGET_BYTES:
                break
            taken.append(delivery)
            size += delivery.event_size
        self._buffer = self._buffer[len(taken) :]
        self._buffer_bytes -= size
        self._batch_opened = time.monotonic()
        return taken

    def _invoke(
        self,
        environment: ExecutionEnvironment,
        batch: _Batch,
        channel: BlockingChannel,
        connection: BlockingConnection,
    ) -> None:
        began = time.perf_counter()
        event = encode_event(
            self.source.queue, batch.deliveries, self.event_source_arn, self.virtual_host
        )
        error: str | None = None
        try:
            environment.invoke(event)
        except InvocationFailed as exc:
            error = str(exc)
        except Exception as exc:  # the runtime must outlive anything a worker does
            LOGGER.exception("%s: invocation machinery failed", self.spec.name)
            environment.kill()
            error = f"Runtime.Unknown: {exc!r}"
        if error is None and time.perf_counter() - began > self.invocation_wait:
            # Lambda's poller waits 14 minutes for an MQ invocation, whatever the function's
            # timeout (up to 15): a longer one counts as failed, and its batch comes back.
            error = f"no result within the {self.invocation_wait:.0f} s an Amazon MQ mapping waits"
        report = BatchReport(
            function=self.spec.name,
            size=len(batch.deliveries),
            ok=error is None,
            error=error,
            duration_ms=(time.perf_counter() - began) * 1000,
            redelivered=sum(d.redelivered for d in batch.deliveries),
        )
        # The slot is free as soon as the invocation is over, whatever happens to the
        # connection: a callback queued on a connection that just died never runs, and a
        # slot waiting for it would stop this mapping for good.
        self._release(report, environment)
        settle = functools.partial(self._settle, channel, batch, report)
        try:
            connection.add_callback_threadsafe(settle)
        except CONNECTION_ERRORS:
            # The connection is gone: the broker already requeued the batch.
            self._forget(batch)
            if self.observer is not None:
                self.observer(report)

    def _settle(self, channel: BlockingChannel, batch: _Batch, report: BatchReport) -> None:
        """Ack or return the batch, on the consumer thread that owns the channel."""
        with self._lock:
            oldest = all(batch.first_tag <= other.first_tag for other in self._in_flight)
        self._forget(batch)
        try:
            if batch.generation != self._generation or not channel.is_open:
                return
            if report.ok:
                if oldest:
                    channel.basic_ack(batch.last_tag, multiple=True)
                else:
                    for delivery in batch.deliveries:
                        channel.basic_ack(delivery.delivery_tag)
            else:
                for delivery in batch.deliveries:
                    channel.basic_nack(delivery.delivery_tag, requeue=True)
        finally:
            if self.observer is not None:
                self.observer(report)

    def _forget(self, batch: _Batch) -> None:
        with self._lock:
            if batch in self._in_flight:
                self._in_flight.remove(batch)

    def _release(self, report: BatchReport, environment: ExecutionEnvironment) -> None:
        if report.ok:
            self.failure_backoff.reset()
        else:
            LOGGER.warning(
                "%s: batch of %d failed (%s); returning it to the queue",
                self.spec.name,
                report.size,
                report.error,
            )
            self._resume_at = time.monotonic() + self.failure_backoff.next_delay()
        self._idle.put(environment)

    def _drain(self, channel: BlockingChannel, connection: BlockingConnection) -> None:
        """On stop: no new deliveries, let in-flight batches finish and settle, return the rest."""
        try:
            channel.stop_consuming()
        except CONNECTION_ERRORS:
            return
        deadline = time.monotonic() + self.spec.timeout + 1
        while self._in_flight and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
        for delivery in self._buffer:
            channel.basic_nack(delivery.delivery_tag, requeue=True)
        self._drop_buffer()

    def _drop_buffer(self) -> None:
        self._buffer = []
        self._buffer_bytes = 0

    def _finish(self) -> None:
        self._pool.shutdown(wait=True)
        for environment in self._environments:
            environment.stop()
