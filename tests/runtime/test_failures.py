"""Failures as on AWS: the whole batch comes back, poison is dead-lettered, timeouts kill."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from local_runtime.backoff import Backoff
from tests.runtime.conftest import (
    frame,
    load_spec,
    one_at_a_time,
    read_records,
    running,
    wait_until,
)

pytestmark = pytest.mark.integration


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_handler_error_returns_the_whole_batch_marked_redelivered(broker, amqp_url, record_file):
    queue = broker.new_queue()
    spec = load_spec("recorder", queue, record_file, batch_size=3, maximum_batching_window=1)
    broker.declare(spec)
    for body in (b"first", b"FAIL_ONCE", b"third"):
        broker.publish(queue, body)

    with running(spec, amqp_url) as run:
        reports = run.wait_for_reports(2)

    assert [r.ok for r in reports] == [False, True]
    assert "RuntimeError: failing the first delivery" in (reports[0].error or "")
    failed, retried = read_records(record_file, "invoke")
    assert failed["redelivered"] == [False, False, False]
    assert retried["redelivered"] == [True, True, True]
    assert sorted(retried["bodies"]) == sorted(failed["bodies"]) == ["FAIL_ONCE", "first", "third"]
    assert reports[1].redelivered == 3
    assert broker.count(queue) == 0


def test_the_delivery_limit_dead_letters_a_poison_message_and_the_queue_moves_on(
    broker, amqp_url, record_file
):
    queue = broker.new_queue()
    spec = load_spec(
        "recorder", queue, record_file, batch_size=1, maximum_batching_window=0, delivery_limit=2
    )
    broker.declare(spec)
    broker.publish(queue, b"POISON", message_id="poison")
    for number in range(3):
        broker.publish(queue, f"good {number}".encode(), message_id=f"good-{number}")

    with running(spec, amqp_url) as run:
        wait_until(lambda: broker.count(f"{queue}.dlq") == 1)
        wait_until(lambda: sum(r.ok for r in run.reports) == 3)

    invocations = read_records(record_file, "invoke")
    poison = [i for i in invocations if i["bodies"] == ["POISON"]]
    assert [i["redelivered"] for i in poison] == [[False], [True], [True]], (
        "seen once, then returned delivery_limit (2) times, then dead-lettered"
    )
    good = sorted(b for i in invocations for b in i["bodies"] if b.startswith("good"))
    assert good == ["good 0", "good 1", "good 2"]
    [(_, properties, body)] = broker.get_all(f"{queue}.dlq")
    assert (properties.message_id, body) == ("poison", b"POISON")
    assert broker.count(queue) == 0


def test_a_message_whose_timestamp_no_calendar_holds_is_dead_lettered_alone(
    broker, amqp_url, record_file
):
    """Rendering AMQP's 64-bit timestamp as AWS's date text raises OSError for 2**62 s: the
    message goes to the DLQ at once, and its neighbours and the connection carry on."""
    queue = broker.new_queue()
    spec = load_spec("recorder", queue, record_file, batch_size=10, maximum_batching_window=0.3)
    broker.declare(spec)
    broker.publish(queue, b"before", message_id="before")
    broker.publish(queue, b"far future", message_id="far-future", timestamp=2**62)
    broker.publish(queue, b"after", message_id="after")

    with running(spec, amqp_url) as run:
        wait_until(lambda: broker.count(f"{queue}.dlq") == 1)
        wait_until(lambda: sum(r.size for r in run.reports if r.ok) == 2)
        connected = run.mapping.connected.is_set()
        reports = list(run.reports)

    assert connected, "the consumer kept its connection"
    assert all(r.ok and r.redelivered == 0 for r in reports), "no batch failed or came back"
    bodies = sorted(b for i in read_records(record_file, "invoke") for b in i["bodies"])
    assert bodies == ["after", "before"]
    [(_, properties, body)] = broker.get_all(f"{queue}.dlq")
    assert (properties.message_id, body) == ("far-future", b"far future")


@pytest.mark.slow
def test_a_timeout_kills_the_worker_and_a_fresh_one_cold_starts_for_the_retry(
    broker, amqp_url, record_file
):
    queue = broker.new_queue()
    spec = load_spec("sleeper", queue, record_file)  # timeout 1 s, sleeps 30 s on a first delivery
    broker.declare(spec)
    broker.publish(queue, b"take your time")

    with running(spec, amqp_url) as run:
        reports = run.wait_for_reports(2, timeout=15)
        cold_starts = run.mapping.environments[0].cold_starts
        lines = run.lines

    assert [r.ok for r in reports] == [False, True]
    assert (reports[0].error or "").startswith("Sandbox.Timedout")
    first, retry = read_records(record_file, "start")
    assert (first["redelivered"], retry["redelivered"]) == ([False], [True])
    assert first["pid"] != retry["pid"]
    assert not pid_exists(first["pid"]), "the timed-out worker must be gone"
    assert cold_starts == 2
    assert [r["pid"] for r in read_records(record_file, "import")] == [first["pid"], retry["pid"]]
    assert sum("Init Duration:" in line for line in lines) == 2, "each worker reports its init"
    timed_out = [
        index
        for index, line in enumerate(lines)
        if re.fullmatch(
            rf"\[sleeper\] \S+Z {first['request_id']} Task timed out after 1\.00 seconds", line
        )
    ]
    assert len(timed_out) == 1
    printed = lines.index(f"[sleeper] sleeping in {first['request_id']}")
    assert printed < timed_out[0], "what the handler printed before the kill comes first"
    assert lines[timed_out[0] + 1] == f"[sleeper] END RequestId: {first['request_id']}"
    assert re.fullmatch(
        rf"\[sleeper\] REPORT RequestId: {first['request_id']}\tDuration: \d+\.\d{{2}} ms\t"
        r"Billed Duration: \d+ ms\tMemory Size: \d+ MB\tMax Memory Used: - MB"
        r"\tInit Duration: \d+\.\d{2} ms\tStatus: timeout",
        lines[timed_out[0] + 2],
    )
    # the remaining time is real: below the timeout, and falling while the handler runs
    [middle] = read_records(record_file, "middle")
    assert 500 < first["remaining_ms"] <= 1000
    assert middle["remaining_ms"] <= first["remaining_ms"] - 150


def test_a_worker_killed_while_idle_is_replaced_on_the_next_batch(broker, amqp_url, record_file):
    queue, spec = one_at_a_time(broker, record_file)

    with running(spec, amqp_url) as run:
        broker.publish(queue, b"before")
        run.wait_for_reports(1)
        environment = run.mapping.environments[0]
        old_pid = environment.pid
        assert old_pid is not None
        descriptors = len(os.listdir("/proc/self/fd"))
        os.kill(old_pid, signal.SIGKILL)
        wait_until(lambda: not environment.alive)
        broker.publish(queue, b"after")
        reports = run.wait_for_reports(2)
        assert len(os.listdir("/proc/self/fd")) == descriptors, "the dead worker's pipes closed"

    assert [r.ok for r in reports] == [True, True], "a dead idle worker must not fail a batch"
    before, after = read_records(record_file, "invoke")
    assert before["pid"] == old_pid
    assert after["pid"] != old_pid
    assert after["redelivered"] == [False]
    assert environment.cold_starts == 2


def test_a_worker_that_exits_mid_invocation_fails_the_batch_and_is_replaced(
    broker, amqp_url, record_file
):
    queue, spec = one_at_a_time(broker, record_file)
    broker.publish(queue, b"PRINT EXIT_ONCE")

    with running(spec, amqp_url) as run:
        reports = run.wait_for_reports(2)
        lines = run.lines

    assert [r.ok for r in reports] == [False, True]
    crashed, retried = read_records(record_file, "invoke")
    request_id = crashed["context"]["aws_request_id"]
    exited = f"RequestId: {request_id} Error: Runtime exited with error: exit status 3"
    assert reports[0].error == f"Runtime.ExitError: {exited}"
    # the log AWS's platform writes for a runtime that exited mid-invocation
    start, end = frame(lines, "recorder", request_id)
    assert lines[start + 1] == f"[recorder] handler output for {request_id}"
    assert end == start + 2
    assert re.fullmatch(
        rf"\[recorder\] REPORT RequestId: {request_id}\tDuration: \d+\.\d{{2}} ms\t"
        r"Billed Duration: \d+ ms\tMemory Size: 256 MB\tMax Memory Used: - MB"
        r"\tInit Duration: \d+\.\d{2} ms\tStatus: error\tError Type: Runtime\.ExitError",
        lines[start + 3],
    )
    assert lines[start + 4 : start + 6] == [f"[recorder] {exited}", "[recorder] Runtime.ExitError"]
    assert crashed["pid"] != retried["pid"]
    assert retried["redelivered"] == [True]
    assert broker.count(queue) == 0


def test_after_a_failure_the_mapping_waits_out_its_backoff_without_spinning(
    broker, amqp_url, record_file
):
    queue, spec = one_at_a_time(broker, record_file)
    broker.publish(queue, b"FAIL_ONCE")

    with running(spec, amqp_url, failure_backoff=Backoff(initial=1.0, cap=1.0, jitter=0)) as run:
        run.wait_for_reports(1)
        cpu, wall = time.process_time(), time.monotonic()
        reports = run.wait_for_reports(2)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall

    assert [r.ok for r in reports] == [False, True]
    assert wall >= 0.8, "the retry waited for the backoff"
    assert cpu < 0.1 * wall, f"{cpu:.2f}s of CPU in {wall:.2f}s: the consumer loop spun"
