"""Starts the whole system: topology, schema, a mapping per function, the outbox relay, the API."""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import FrameType

import pika
import pika.exceptions

from credit import cache, mysql, settings, topology
from credit.async_publisher import PipelinedPublisher
from credit.errors import CreditError, StoreUnavailable
from credit.mysql import TicketStore
from credit.outbox import OutboxCleaner
from credit.publisher import ConfirmingPublisher, connection_parameters, describe
from credit.service import CreditService, relay_outbox
from credit.ticket_writer import BatchingTicketWriter
from local_runtime.backoff import Backoff
from local_runtime.declaration import FunctionSpec
from local_runtime.mapping import EventSourceMapping, Observer

LOGGER = logging.getLogger(__name__)
RELAY_INTERVAL_SECONDS = 1.0
PROCESS_ROLE_VARIABLE = "CREDIT_RUNTIME_PROCESS"  # "api" in the API's own process
API_START_SECONDS = 30.0
API_STOP_SECONDS = 15.0


class StartupError(RuntimeError):
    """A service the system needs is not there; the message names the URL tried."""


def rule_names(specs: Sequence[FunctionSpec]) -> tuple[str, ...]:
    """The rules a new ticket requires: every function fed by the credit-requests exchange."""
    return tuple(
        spec.event_source.routing_key
        for spec in specs
        if spec.event_source is not None and spec.event_source.exchange == topology.EXCHANGE
    )


def prepare(
    specs: Sequence[FunctionSpec],
    amqp_url: str | None = None,
    mysql_url: str | None = None,
    redis_url: str | None = None,
) -> None:
    """Apply the schema and the topology, and check Redis: one clear line per missing service."""
    try:
        mysql.migrate(mysql_url)
    except CreditError as exc:
        raise StartupError(str(exc)) from exc
    try:
        cache.TicketCache(cache.client(redis_url)).ping()
    except StoreUnavailable as exc:
        url = settings.get(settings.REDIS_URL, redis_url)
        raise StartupError(f"Redis is not reachable at {url}: {exc}") from exc
    try:
        connection = pika.BlockingConnection(connection_parameters(amqp_url))
    except (pika.exceptions.AMQPError, OSError) as exc:
        raise StartupError(f"RabbitMQ is not reachable at {describe(amqp_url)}: {exc!r}") from exc
    try:
        topology.declare(
            connection.channel(),
            [spec.event_source.rule_queue for spec in specs if spec.event_source is not None],
        )
    finally:
        connection.close()


@dataclass
class Runtime:
    """The running system; start() returns once everything is up, stop() undoes it."""

    specs: Sequence[FunctionSpec]
    amqp_url: str | None = None
    api: bool = True
    host: str = "127.0.0.1"
    port: int = 8000
    relay: bool = True
    # Serve the API from a process of its own: it then has its own GIL, and a request thread
    # never holds up the consumers (on AWS, API Gateway's Lambda is another process too).
    api_process: bool = False
    parent_pid: int | None = None  # in the API's process: stop when this process is gone
    background_nice: int = 0  # consumers and workers this far below the API's priority
    observer: Observer | None = None
    mappings: list[EventSourceMapping] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _server: object | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _api_child: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        os.environ.setdefault(settings.RULES, ",".join(rule_names(self.specs)))
        for spec in self.specs:
            if spec.event_source is None:
                continue
            mapping = EventSourceMapping(
                spec, amqp_url=self.amqp_url, observer=self.observer, nice=self.background_nice
            )
            self.mappings.append(mapping)
            self._spawn(mapping.run, f"mapping-{spec.name}")
        if self.relay:
            self._spawn(self._relay_loop, "outbox-relay")
        if self.api and self.api_process:
            self._start_api_process()
        elif self.api:
            from local_runtime import gateway

            app = gateway.load_app()
            self._install_api_service()
            server, _ = gateway.serve(app, self.host, self.port)
            self._server = server
            self.port = server.server_address[1]
        # What start-up loaded lives as long as the process: keep the collector off it, so
        # a full collection walks only what requests allocate (shorter pauses, less CPU).
        gc.freeze()

    def _start_api_process(self) -> None:
        if self.port == 0:
            with socket.socket() as probe:
                probe.bind((self.host, 0))
                self.port = probe.getsockname()[1]
        self._api_child = self._spawn_api()
        self._spawn(self._watch_api, "api-supervisor")

    def _spawn_api(self) -> subprocess.Popen[bytes]:
        """`start --api-only` in a child process; returns once it accepts connections."""
        command = [sys.executable, "-m", "local_runtime"]
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            command.append("--verbose")
        command += ["start", "--api-only", "--host", self.host, "--port", str(self.port)]
        command += ["--parent-pid", str(os.getpid())]
        if self.amqp_url:
            command += ["--amqp-url", self.amqp_url]
        child = subprocess.Popen(command, env={**os.environ, PROCESS_ROLE_VARIABLE: "api"})
        deadline = time.monotonic() + API_START_SECONDS
        while time.monotonic() < deadline:
            code = child.poll()
            if code is not None:
                raise StartupError(f"the API process exited with code {code} while starting")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return child
            except OSError:
                time.sleep(0.05)
        child.kill()
        raise StartupError(f"the API process did not listen on port {self.port} in time")

    def _watch_api(self) -> None:
        """Start the API process again if it dies; nothing else may take the system down."""
        backoff = Backoff(initial=0.5, cap=5.0)
        while not self._stop.wait(0.5):
            child = self._api_child
            code = child.poll() if child is not None else None
            if code is None:
                continue
            LOGGER.error("the API process exited with code %s; starting it again", code)
            while not self._stop.is_set():
                try:
                    self._api_child = self._spawn_api()
                    backoff.reset()
                    break
                except (StartupError, OSError) as exc:
                    delay = backoff.next_delay()
                    LOGGER.error("%s; retrying in %.1fs", exc, delay)
                    self._stop.wait(delay)

    def _stop_api_process(self) -> None:
        child, self._api_child = self._api_child, None
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(API_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            LOGGER.warning("the API process ignored SIGTERM; killing it")
            child.kill()
            child.wait()

    def _install_api_service(self) -> None:
        """Wire the API for a long-running process: confirms pipelined across requests on
        one connection, and the outbox cleared in batches (on Lambda the app wires itself
        with the synchronous publisher)."""
        from chalicelib import dependencies

        store = TicketStore()
        cleaner = OutboxCleaner(store)
        # The ticket and its messages are committed to the outbox before publishing, so the
        # request need not wait for the broker: the relay sends whatever is not confirmed.
        publisher = PipelinedPublisher(self.amqp_url, on_confirmed=cleaner.confirmed, wait=False)
        views = cache.TicketCache(cache.client())
        writer = BatchingTicketWriter(store, views)
        self._closers.extend([publisher.close, cleaner.close, writer.close])
        dependencies.install(
            CreditService(
                store=store,
                cache=views,
                publisher=publisher,
                rules=settings.get_list(settings.RULES),
                clear_outbox=False,
                writer=writer,
            )
        )

    def _spawn(self, target: object, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _relay_loop(self) -> None:
        store, publisher = TicketStore(), ConfirmingPublisher(self.amqp_url)
        backoff = Backoff(initial=0.5, cap=2.0)
        delay = RELAY_INTERVAL_SECONDS
        while not self._stop.wait(delay):
            try:
                while relay_outbox(store, publisher, grace=timedelta(seconds=2)):
                    pass
                store.purge_idempotency_keys()
                backoff.reset()
                delay = RELAY_INTERVAL_SECONDS
            except StoreUnavailable as exc:
                delay = backoff.next_delay()
                LOGGER.warning("outbox relay: %s; retrying in %.1fs", exc, delay)
        publisher.close()

    def stop(self) -> None:
        """Stop taking requests, let in-flight batches finish or return them, stop workers."""
        self._stop.set()
        self._stop_api_process()
        if self._server is not None:
            self._server.shutdown()  # type: ignore[attr-defined]
            self._server.server_close()  # type: ignore[attr-defined]
        for mapping in self.mappings:
            mapping.stop()
        for thread in self._threads:
            thread.join(timeout=60)
        for close in self._closers:
            close()

    def run_until_signalled(self) -> None:
        """start(), then block until SIGINT or SIGTERM, then stop() cleanly."""
        received = threading.Event()

        def on_signal(signum: int, _: FrameType | None) -> None:
            LOGGER.info("received %s, shutting down", signal.Signals(signum).name)
            received.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        self.start()
        while not received.wait(0.5):
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                LOGGER.warning("the runtime that started this process is gone; stopping")
                break
        self.stop()
