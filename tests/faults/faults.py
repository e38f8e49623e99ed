"""The faults themselves: what each scenario breaks, when, and how it is put back."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.faults.load import LoadGenerator
from tests.faults.stack import Stack

LOGGER = logging.getLogger(__name__)
FUNCTIONS = ("AgeRule", "ValueRule")
BROKER_DOWN_SECONDS = 1.0
STORE_DOWN_SECONDS = 1.0
REPLACEMENT_SECONDS = 30.0
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


@dataclass
class Injection:
    """What a scenario's fault routine works with."""

    stack: Stack
    load: LoadGenerator
    faults: int
    pause_seconds: float
    log: FaultLog


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
