"""A batch closes at the batch size, at the batching window, or before the event passes 6 MB."""

from __future__ import annotations

import time

import pytest

from local_runtime.events import MAX_PAYLOAD_BYTES
from tests.runtime.conftest import load_spec, read_records, running, wait_until

pytestmark = pytest.mark.integration


def test_a_full_batch_is_one_invocation_of_exactly_batch_size(broker, amqp_url, record_file):
    queue = broker.new_queue()
    spec = load_spec("recorder", queue, record_file, batch_size=5, maximum_batching_window=5)
    broker.declare(spec)
    for number in range(10):
        broker.publish(queue, f"message {number}".encode())

    with running(spec, amqp_url) as run:
        began = time.monotonic()
        reports = run.wait_for_reports(2, timeout=4)
        elapsed = time.monotonic() - began

    invocations = read_records(record_file, "invoke")
    assert [len(i["bodies"]) for i in invocations] == [5, 5]
    assert [b for i in invocations for b in i["bodies"]] == [f"message {n}" for n in range(10)]
    assert all(report.ok for report in reports)
    assert elapsed < 4, "full batches must not wait for the 5 s batching window"


def test_a_partial_batch_flushes_when_the_window_closes(broker, amqp_url, record_file):
    queue = broker.new_queue()
    window = 0.6
    spec = load_spec("recorder", queue, record_file, batch_size=100, maximum_batching_window=window)
    broker.declare(spec)

    with running(spec, amqp_url) as run:
        broker.publish(queue, b"warm-up")  # the first invocation also pays the cold start
        run.wait_for_reports(1)
        published = time.time()
        for number in range(3):
            broker.publish(queue, f"late {number}".encode())
            time.sleep(0.05)
        run.wait_for_reports(2)

    invocations = read_records(record_file, "invoke")
    assert invocations[1]["bodies"] == ["late 0", "late 1", "late 2"]
    waited = invocations[1]["started"] - published
    assert window - 0.05 <= waited < window + 1.0, f"flushed after {waited:.3f}s"


@pytest.mark.slow
def test_messages_over_6_mb_in_all_are_split_into_events_of_at_most_6_mb(
    broker, amqp_url, record_file
):
    queue = broker.new_queue()
    spec = load_spec("recorder", queue, record_file, batch_size=100, maximum_batching_window=1)
    broker.declare(spec)
    body_size = 2_000_000  # base64 makes it 2.67 MB in the event: two fit in 6 MB, three do not
    for number in range(5):
        broker.publish(queue, bytes([65 + number]) * body_size)

    with running(spec, amqp_url) as run:
        wait_until(lambda: sum(r.size for r in run.reports) >= 5, timeout=20)

    invocations = read_records(record_file, "invoke")
    assert [len(i["bodies"]) for i in invocations] == [2, 2, 1]
    assert all(i["event_bytes"] <= MAX_PAYLOAD_BYTES for i in invocations)
    assert invocations[0]["event_bytes"] > 5_000_000, "the first event is filled, not cut early"
    firsts = [body[0] for i in invocations for body in i["bodies"]]
    assert firsts == list("ABCDE"), "every message exactly once, in order"


@pytest.mark.slow
def test_a_message_too_big_for_any_event_goes_to_the_dead_letter_queue(
    broker, amqp_url, record_file
):
    queue = broker.new_queue()
    spec = load_spec("recorder", queue, record_file, batch_size=10, maximum_batching_window=0.1)
    broker.declare(spec)
    broker.publish(queue, b"x" * 5_000_000, message_id="too-big")  # 6.67 MB as base64
    broker.publish(queue, b"small", message_id="small")

    with running(spec, amqp_url) as run:
        run.wait_for_reports(1)
        wait_until(lambda: broker.count(f"{queue}.dlq") == 1)

    invocations = read_records(record_file, "invoke")
    assert [i["bodies"] for i in invocations] == [["small"]]
    [(_, properties, body)] = broker.get_all(f"{queue}.dlq")
    assert properties.message_id == "too-big"
    assert len(body) == 5_000_000
    assert broker.count(queue) == 0


@pytest.mark.slow
def test_headers_count_toward_the_6_mb_of_an_event(broker, amqp_url, record_file):
    queue = broker.new_queue()
    spec = load_spec("recorder", queue, record_file, batch_size=10, maximum_batching_window=0.1)
    broker.declare(spec)
    # 5.93 MB of base64 data fits; its 100 kB header, written as {"bytes": [120, ...]}, adds
    # 400 kB of JSON and takes the event past 6 MB
    broker.publish(
        queue, b"x" * 4_450_000, message_id="big-headers", headers={"note": "x" * 100_000}
    )
    broker.publish(queue, b"y" * 4_450_000, message_id="fits")

    with running(spec, amqp_url) as run:
        run.wait_for_reports(1)
        wait_until(lambda: broker.count(f"{queue}.dlq") == 1)

    [invocation] = read_records(record_file, "invoke")
    assert invocation["body_sizes"] == [4_450_000]
    assert invocation["bodies"][0].startswith("y")
    assert invocation["event_bytes"] <= MAX_PAYLOAD_BYTES
    [(_, properties, _)] = broker.get_all(f"{queue}.dlq")
    assert properties.message_id == "big-headers"
