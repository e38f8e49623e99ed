"""Consumers and function workers yield the CPU to the API: they run at a higher nice value."""

from __future__ import annotations

import os
import threading

import pytest

from tests.runtime.conftest import one_at_a_time, read_records, running

pytestmark = pytest.mark.integration


def _nice(native_id: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, native_id)


def _one_message_for_the_recorder(broker, record_file):
    """A recorder function with one message waiting for it."""
    queue, spec = one_at_a_time(broker, record_file)
    broker.publish(queue, b"one")
    return spec


def test_the_consumer_and_its_workers_run_below_the_caller(broker, amqp_url, record_file):
    spec = _one_message_for_the_recorder(broker, record_file)
    ours = _nice(threading.get_native_id())

    with running(spec, amqp_url, nice=5) as run:
        run.wait_for_reports(1)
        consumer = next(t for t in threading.enumerate() if t.name == "test-recorder")
        assert consumer.native_id is not None
        consumer_nice = _nice(consumer.native_id)
        workers = [e.pid for e in run.mapping.environments if e.pid is not None]
        worker_nice = [_nice(pid) for pid in workers]

    assert consumer_nice == max(ours, 5)
    assert worker_nice == [max(ours, 5)]
    assert [r["pid"] for r in read_records(record_file, "invoke")] == workers
    assert _nice(threading.get_native_id()) == ours  # the caller itself is left alone


def test_nice_zero_leaves_every_priority_alone(broker, amqp_url, record_file):
    spec = _one_message_for_the_recorder(broker, record_file)
    ours = _nice(threading.get_native_id())

    with running(spec, amqp_url) as run:
        run.wait_for_reports(1)
        workers = [e.pid for e in run.mapping.environments if e.pid is not None]
        assert [_nice(pid) for pid in workers] == [ours]
