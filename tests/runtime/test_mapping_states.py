"""A mapping's filters and states, as AWS runs an Amazon MQ event source mapping."""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from local_runtime.backoff import Backoff
from local_runtime.mapping import DISABLED, ENABLED, EventSourceMapping
from tests.runtime.conftest import load_spec, read_records, running, wait_until

pytestmark = pytest.mark.integration


def test_messages_no_filter_matches_are_acknowledged_and_dropped(broker, amqp_url, record_file):
    queue = broker.new_queue()
    spec = load_spec("recorder", queue, record_file, batch_size=10, maximum_batching_window=0)
    pattern = json.dumps({"data": {"kind": ["order"]}})
    spec = dataclasses.replace(spec, source=dataclasses.replace(spec.source, filters=(pattern,)))
    broker.declare(spec)
    with running(spec, amqp_url) as run:
        for kind in ("order", "refund", "order", "ping"):
            broker.publish(queue, json.dumps({"kind": kind}).encode())
        broker.publish(queue, b"not json")
        wait_until(lambda: run.mapping.filtered == 3 and sum(r.size for r in run.reports) == 2)
        time.sleep(0.5)
        assert sum(r.size for r in run.reports) == 2
    bodies = [body for invoke in read_records(record_file, "invoke") for body in invoke["bodies"]]
    assert bodies == ['{"kind": "order"}', '{"kind": "order"}']
    assert broker.count(queue) == 0, "the filtered messages were acknowledged"
    assert broker.count(spec.dead_letter_queue) == 0, "and not dead-lettered"


def _mapping(spec, amqp_url: str) -> tuple[EventSourceMapping, threading.Thread]:
    mapping = EventSourceMapping(
        spec.function,
        spec.source,
        amqp_url,
        output=io.StringIO(),
        reconnect=Backoff(initial=0.05, cap=0.1),
    )
    thread = threading.Thread(target=mapping.run, daemon=True)
    thread.start()
    return mapping, thread


def _stop(mapping: EventSourceMapping, thread: threading.Thread) -> None:
    mapping.stop()
    thread.join(30)
    assert not thread.is_alive()


def test_refused_credentials_stop_the_mapping_with_awss_reason_instead_of_looping(broker, amqp_url):
    queue = broker.new_queue()
    spec = load_spec("recorder", queue)
    broker.declare(spec)
    parts = urlsplit(amqp_url)
    wrong = urlunsplit(parts._replace(netloc=f"guest:wrong-password@{parts.hostname}:{parts.port}"))
    mapping, thread = _mapping(spec, wrong)
    try:
        wait_until(lambda: mapping.state == DISABLED, timeout=15)
        attempts = mapping.connections
        time.sleep(1)
        assert mapping.connections == attempts, "a stopped mapping does not try again"
    finally:
        _stop(mapping, thread)
    assert mapping.state_reason.startswith("EVENT_SOURCE_AUTHN_ERROR: the broker refused")


def test_a_queue_that_stays_missing_stops_the_mapping_as_a_config_error(broker, amqp_url):
    spec = load_spec("recorder", broker.new_queue())  # never declared
    mapping, thread = _mapping(spec, amqp_url)
    try:
        wait_until(lambda: mapping.state == DISABLED, timeout=15)
    finally:
        _stop(mapping, thread)
    assert mapping.state_reason.startswith("ESM_CONFIG_NOT_VALID: queue ")
    assert mapping.connections == 3, "a queue missing once may come back: three tries first"


def test_a_disabled_mapping_consumes_nothing_until_it_is_enabled(broker, amqp_url, record_file):
    queue = broker.new_queue()
    spec = load_spec("recorder", queue, record_file, batch_size=1, maximum_batching_window=0)
    broker.declare(spec)
    with running(spec, amqp_url) as run:
        run.mapping.disable()
        wait_until(lambda: not run.mapping.connected.is_set())
        broker.publish(queue, b"while disabled")
        time.sleep(1)
        assert broker.count(queue) == 1 and read_records(record_file) == []
        assert (run.mapping.state, run.mapping.state_reason) == (DISABLED, "USER_INITIATED")
        run.mapping.enable()
        run.wait_for_reports(1)
        assert run.mapping.state == ENABLED
    assert [i["bodies"] for i in read_records(record_file, "invoke")] == [["while disabled"]]


def test_an_invocation_longer_than_the_pollers_wait_fails_its_batch(broker, amqp_url, record_file):
    queue = broker.new_queue()
    spec = load_spec(
        "sleeper",
        queue,
        record_file,
        timeout=10,
        environment={"SLEEP_SECONDS": "1.2", "SLEEP_ALWAYS": "1"},
        batch_size=1,
        maximum_batching_window=0,
    )
    broker.declare(spec)
    # Lambda waits 840 s for an MQ invocation even when the function may run 900: the same
    # rule, scaled down, with a function that finishes inside its timeout but past the wait.
    with running(spec, amqp_url, invocation_wait=1.0) as run:
        broker.publish(queue, b"slow")
        [report] = run.wait_for_reports(1, timeout=15)
    assert not report.ok and "an Amazon MQ mapping waits" in str(report.error)
