"""Requests before background work: the runtime's consumers and rule workers yield the CPU.

On AWS, API Gateway's function and the functions an event source mapping invokes run on
separate machines. Here they share a few cores, and a consumer that competes with a request
on equal terms only makes the request wait: its messages are not going anywhere. At a higher
nice value, consumers and workers use what the API leaves, and gather larger batches while
they wait, which makes each message cheaper. Nice values only order work that competes for a
busy CPU; an idle one runs everything at once.
"""

from __future__ import annotations

import logging
import os
import threading

LOGGER = logging.getLogger(__name__)
BACKGROUND_NICE = 10  # the `start` command's default; 0 leaves every priority alone


def lower_thread(nice: int) -> None:
    """Run the calling thread (and threads it starts) `nice` steps below normal priority."""
    if nice > 0:
        _lower(threading.get_native_id(), nice, "thread")


def lower_process(pid: int, nice: int) -> None:
    """Run process `pid` `nice` steps below normal priority."""
    if nice > 0:
        _lower(pid, nice, "process")


def _lower(target: int, nice: int, kind: str) -> None:
    try:
        # Linux takes a thread id here, so one thread can be lowered without its process.
        os.setpriority(os.PRIO_PROCESS, target, max(nice, os.getpriority(os.PRIO_PROCESS, target)))
    except OSError as exc:  # another platform, or a sandbox that forbids it: run as is
        LOGGER.debug("could not lower the priority of %s %d: %s", kind, target, exc)
