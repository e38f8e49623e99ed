"""The faults themselves: what each scenario breaks, when, and how it is put back."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import pika

from tests.faults import headers, hostile
from tests.faults.load import LoadGenerator
from tests.faults.stack import Stack

LOGGER = logging.getLogger(__name__)
FUNCTIONS = ("AgeRule", "ValueRule")
BROKER_DOWN_SECONDS = 1.0
STORE_DOWN_SECONDS = 1.0
REPLACEMENT_SECONDS = 30.0
PROBE_THREADS = 8
BUSY_WAIT_SECONDS = 5.0  # how long to wait for a worker to be mid-batch before killing it


@dataclass
class FaultLog:
    """When each fault happened; recovery is measured from the end of the last one."""

    entries: list[tuple[float, float, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @contextmanager
    def fault(self, what: str) -> Iterator[None]:
        began = time.monotonic()
        LOGGER.info("fault: %s", what)
        try:
            yield
        finally:
            self.entries.append((began, time.monotonic(), what))

    @property
    def last_end(self) -> float | None:
        return max((end for _, end, _ in self.entries), default=None)


@dataclass(frozen=True)
class Size:
    """How much load and how many faults: `rate` tickets/s (0: as fast as the clients go).

    `faults` counts rounds of hostile requests too; `connections` and `slow` size the crowd
    held against the API, `header_poison` the messages with poison in their properties."""

    tickets: int
    rate: float
    faults: int = 0
    pause_seconds: float = 0.0
    poison: int = 0
    oversized: int = 0
    large: int = 0
    connections: int = 0
    slow: int = 0
    header_poison: int = 0


@dataclass
class Injection:
    """What a scenario's fault routine works with, and where hostile clients report."""

    stack: Stack
    load: LoadGenerator
    size: Size
    log: FaultLog
    tally: hostile.ProbeTally = field(default_factory=hostile.ProbeTally)
    header_poison: headers.HeaderPoisonLog | None = None

    @property
    def faults(self) -> int:
        return self.size.faults

    @property
    def pause_seconds(self) -> float:
        return self.size.pause_seconds


def at_share(injection: Injection, index: int) -> None:
    """Wait until the load is at the index-th of `faults + 1` equal steps."""
    injection.load.wait_progress((index + 1) / (injection.faults + 1))


def kill_workers(injection: Injection) -> None:
    """kill -9 rule workers, alternating functions; each must be replaced by a fresh one."""
    killed: set[int] = set()
    replaced = busy = 0
    for index in range(injection.faults):
        at_share(injection, index)
        function = FUNCTIONS[index % len(FUNCTIONS)]
        pid = injection.stack.wait_worker(function, exclude=killed, timeout=REPLACEMENT_SECONDS)
        if pid is None:
            injection.log.problems.append(f"no live {function} worker to kill (fault {index + 1})")
            continue
        mid_batch = injection.stack.wait_busy(function, timeout=BUSY_WAIT_SECONDS)
        with injection.log.fault(f"kill -9 {function} worker {pid}"):
            os.kill(pid, signal.SIGKILL)
        killed.add(pid)
        busy += mid_batch
        if injection.stack.wait_worker(function, exclude=killed, timeout=REPLACEMENT_SECONDS):
            replaced += 1
    injection.log.notes.append(
        f"workers killed {len(killed)} ({busy} right after their log showed a batch START), "
        f"replaced {replaced}"
    )
    if replaced < len(killed):
        injection.log.problems.append(f"{len(killed) - replaced} killed worker(s) not replaced")


def kill_broker(injection: Injection) -> None:
    """kill -9 every process of the broker, then start it again on the same port and data."""
    broker = injection.stack.rabbitmq
    for index in range(injection.faults):
        at_share(injection, index)
        with injection.log.fault(f"kill -9 broker #{index + 1}"):
            broker.kill()
            time.sleep(BROKER_DOWN_SECONDS)
            broker.start()
        injection.log.notes.append(f"broker restart #{index + 1}: {broker.last_start_seconds:.1f}s")


def pause_broker(injection: Injection) -> None:
    """SIGSTOP every process of the broker, wait, SIGCONT."""
    at_share(injection, 0)
    with injection.log.fault(f"SIGSTOP broker {injection.pause_seconds:g}s"):
        injection.stack.rabbitmq.pause()
        try:
            time.sleep(injection.pause_seconds)
        finally:
            injection.stack.rabbitmq.resume()


STORE_FAULTS = (
    ("redis", "kill"),
    ("mysql", "kill"),
    ("redis", "stop"),
    ("mysql", "stop"),
)


def restart_stores(injection: Injection) -> None:
    """Restart Redis and MySQL in turn: kill -9 first, a graceful stop the second time."""
    for index in range(injection.faults):
        store, how = STORE_FAULTS[index % len(STORE_FAULTS)]
        server = injection.stack.redis if store == "redis" else injection.stack.mariadb
        at_share(injection, index)
        with injection.log.fault(f"{how} + restart {store}"):
            if how == "kill":
                server.kill()
            else:
                server.stop()
            time.sleep(STORE_DOWN_SECONDS)
            server.start()
        injection.log.notes.append(
            f"{store} {how}+restart: up again in {server.last_start_seconds:.1f}s"
        )


def no_fault(injection: Injection) -> None:
    """The scenario's trouble is in the messages it adds, not in the servers."""


def stall_mysql(injection: Injection) -> None:
    """FLUSH TABLES WITH READ LOCK held longer than a request waits: MySQL stalls, not dies."""
    for index in range(injection.faults):
        at_share(injection, index)
        connection = injection.stack.mysql(timeout=injection.pause_seconds + 60)
        try:
            with (
                injection.log.fault(f"MySQL read lock {injection.pause_seconds:g}s #{index + 1}"),
                connection.cursor() as cursor,
            ):
                cursor.execute("FLUSH TABLES WITH READ LOCK")
                time.sleep(injection.pause_seconds)
                cursor.execute("UNLOCK TABLES")
        finally:
            connection.close()


MEMORY_ALARM_WATERMARK = "0.000001"  # of the machine's memory: the broker is over it at once
NORMAL_WATERMARK = "0.4"  # RabbitMQ's default


def memory_alarm(injection: Injection) -> None:
    """Set the broker's memory watermark below its use (publishers block), then back."""
    broker = injection.stack
    for index in range(injection.faults):
        at_share(injection, index)
        with injection.log.fault(f"memory alarm {injection.pause_seconds:g}s #{index + 1}"):
            broker.rabbitmqctl("set_vm_memory_high_watermark", MEMORY_ALARM_WATERMARK)
            try:
                time.sleep(injection.pause_seconds)
            finally:
                broker.rabbitmqctl("set_vm_memory_high_watermark", NORMAL_WATERMARK)
    alarms = broker.broker_log().count("memory resource limit alarm set")
    injection.log.notes.append(f"broker log: memory alarm set {alarms} time(s)")
    if alarms < injection.faults:
        injection.log.problems.append(f"the memory alarm went off {alarms} of {injection.faults}")


def flush_redis(injection: Injection) -> None:
    """FLUSHALL on the private Redis: every cached view and whatever else it held, gone."""
    for index in range(injection.faults):
        at_share(injection, index)
        with injection.log.fault(f"FLUSHALL redis #{index + 1}"):
            client = injection.stack.redis.client(timeout=5)
            try:
                client.flushall()
            finally:
                client.close()


Item = TypeVar("Item")


def _in_parallel(items: Sequence[Item], send: Callable[[Item], None]) -> None:
    with ThreadPoolExecutor(PROBE_THREADS, thread_name_prefix="hostile") as pool:
        for _ in pool.map(send, items):
            pass


def framing_attacks(injection: Injection) -> None:
    """Every framing and smuggling probe, one round per fault, spread over the load."""
    ages = hostile.cycle_ages()
    port, tally = injection.stack.port, injection.tally
    for index in range(injection.faults):
        at_share(injection, index)
        probes = hostile.framing_probes(ages)
        with injection.log.fault(f"framing probes x{len(probes)} #{index + 1}"):
            _in_parallel(probes, lambda probe: hostile.run_framing(port, probe, tally))
    injection.log.notes.append(f"framing probes sent {tally.sent}")


def money_spellings(injection: Injection) -> None:
    """Every odd spelling of money (and duplicate keys), one round per fault."""
    ages = hostile.cycle_ages()
    port, tally = injection.stack.port, injection.tally
    for index in range(injection.faults):
        at_share(injection, index)
        probes = [(probe, next(ages)) for probe in hostile.money_probes()]
        with injection.log.fault(f"money spellings x{len(probes)} #{index + 1}"):
            _in_parallel(probes, lambda item: hostile.run_money(port, item[0], item[1], tally))
    accepted = len(tally.ledger.accepted)
    injection.log.notes.append(f"money spellings sent {tally.sent}, {accepted} answered 202")


def crowd(injection: Injection) -> None:
    """Idle connections and byte-a-second clients held open while the good traffic runs."""
    size = injection.size
    injection.load.wait_progress(0.05)
    api = injection.stack.api_pid()
    held = hostile.Crowd(injection.stack.port, size.connections, size.slow, api)
    with injection.log.fault(f"{size.connections} idle + {size.slow} slow connections"):
        held.open()
        injection.load.wait_progress(1.0)
        report = held.close()
    injection.log.notes.append(report.describe())
    if report.max_threads > hostile.MAX_API_THREADS:
        injection.log.problems.append(
            f"the API ran {report.max_threads} threads for {report.idle_opened} idle and "
            f"{report.slow} slow connections (bound {hostile.MAX_API_THREADS}): "
            "a thread per connection, held for as long as the client likes"
        )
    if api is None or report.max_threads == 0:
        injection.log.problems.append("the API process was not found to count its threads")


def header_poison(injection: Injection) -> None:
    """Messages whose properties or headers are poison, published among the live traffic."""
    broker = injection.stack.rabbitmq

    def connect() -> pika.BlockingConnection:
        return pika.BlockingConnection(broker.connection_parameters(timeout=10))

    with injection.log.fault(f"{injection.size.header_poison} header poison messages"):
        injection.header_poison = headers.publish_all(
            connect, injection.size.header_poison, injection.load.wait_progress
        )
    injection.log.notes.append(injection.header_poison.describe())
