"""The command line, run as users run it: `python -m local_runtime ...` in a subprocess."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pika
import pytest

from tests.helpers import ROOT
from tests.runtime import amqp_wire as wire
from tests.runtime.conftest import FUNCTIONS_DIR, load_spec, read_records, wait_until
from tests.runtime.test_events import SAMPLE, SAMPLE_PATH, SAMPLE_RECORD, key_paths


def cli(
    *args: str, functions_dir: Path = FUNCTIONS_DIR, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local_runtime", "--functions-dir", str(functions_dir), *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def test_help_names_every_command():
    result = cli("--help")
    assert result.returncode == 0
    for command in ("start", "list", "invoke", "generate-event"):
        assert command in result.stdout


def test_list_shows_each_function_with_its_source():
    result = cli("list")
    assert result.returncode == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert sorted(lines) == ["env_a", "env_b", "noop", "recorder", "sleeper"]
    assert "test.recorder <- local-runtime.tests[test.recorder]" in lines["recorder"]
    assert "batch=10" in lines["recorder"] and "timeout=5s" in lines["recorder"]


def test_invoke_runs_a_handler_once_with_an_event_file():
    result = cli("invoke", "recorder", "-e", str(SAMPLE_PATH))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"messages": 1}
    log = result.stderr.splitlines()
    assert any(line.startswith("[recorder] START RequestId: ") for line in log)
    assert any(
        line.startswith("[recorder] REPORT RequestId: ") and "Init Duration" in line for line in log
    )


def test_invoke_reads_the_event_from_stdin_and_reports_a_handler_error():
    event = json.loads(json.dumps(SAMPLE))
    [record] = event["rmqMessagesByQueue"]["test::/"]
    record["data"] = base64.b64encode(b"POISON").decode()
    result = cli("invoke", "recorder", "-e", "-", stdin=json.dumps(event))
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "poison message")
    assert error["stackTrace"]


def test_invoke_of_an_unknown_function_names_it():
    result = cli("invoke", "nobody", "-e", str(SAMPLE_PATH))
    assert result.returncode == 2
    assert "no function named nobody" in result.stderr


def test_a_bad_declaration_stops_the_cli_with_file_and_field(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "function.json").write_text(
        json.dumps({"name": "broken", "handler": "h.h", "timeout": 900})
    )
    result = cli("list", functions_dir=tmp_path)
    assert result.returncode == 2
    assert f"{folder / 'function.json'}: timeout: must be from 1 to 840" in result.stderr
    assert "Traceback" not in result.stderr


def test_generate_event_prints_an_aws_shaped_event():
    result = cli(
        "generate-event",
        "--queue",
        "rule.age",
        "--body",
        '{"age": 20}',
        "--header",
        "attempt=3",
        "--header",
        "who=me",
        "--message-id",
        "m-1",
        "--redelivered",
    )
    assert result.returncode == 0
    event = json.loads(result.stdout)
    [(key, [record])] = event["rmqMessagesByQueue"].items()
    assert key == "rule.age::/"
    headers = SAMPLE_RECORD["basicProperties"]["headers"]
    shaped_record = {**record, "basicProperties": {**record["basicProperties"], "headers": headers}}
    shaped = {**event, "rmqMessagesByQueue": {"test::/": [shaped_record]}}
    assert key_paths(shaped) == key_paths(SAMPLE), "the sample's keys, in the sample's order"
    assert base64.b64decode(record["data"]) == b'{"age": 20}'
    assert record["redelivered"] is True
    assert record["basicProperties"]["headers"] == {"attempt": 3, "who": {"bytes": [109, 101]}}
    assert record["basicProperties"]["messageId"] == "m-1"
    assert record["basicProperties"]["bodySize"] == 11


@pytest.mark.integration
@pytest.mark.slow
def test_sigterm_finishes_the_batch_in_flight_returns_the_rest_and_exits_0(
    broker, amqp_url, tmp_path
):
    queue = broker.new_queue()
    records = tmp_path / "records.jsonl"
    functions = tmp_path / "functions"
    shutil.copytree(FUNCTIONS_DIR / "sleeper", functions / "sleeper")
    declared = json.loads((functions / "sleeper" / "function.json").read_text())
    declared["timeout"] = 10
    declared["environment"] = {
        "RECORD_FILE": str(records),
        "SLEEP_SECONDS": "1.5",
        "SLEEP_ALWAYS": "1",
    }
    declared["event_source"].update(
        queue=queue, routing_key=queue, batch_size=1, maximum_batching_window=0
    )
    (functions / "sleeper" / "function.json").write_text(json.dumps(declared))
    log = tmp_path / "runtime.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local_runtime",
                "--functions-dir",
                str(functions),
                "start",
                "--no-api",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ},
        )
    try:
        wait_until(lambda: "consuming" in log.read_text(), timeout=30)
        broker.publish(queue, b"in flight")
        broker.publish(queue, b"waiting")
        wait_until(lambda: read_records(records, "start"), timeout=10)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = process.wait(timeout=30)
        took = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert code == 0, log.read_text()
    [start] = read_records(records, "start")
    assert base64.b64decode(start["data"][0]) == b"in flight"
    assert [r["request_id"] for r in read_records(records, "end")] == [start["request_id"]], (
        "the batch in flight ran to its end"
    )
    assert broker.count(queue) == 1, "the batch not yet started went back to the queue"
    [(_, _, body)] = broker.get_all(queue)
    assert body == b"waiting"
    assert took < 10
    assert "stopped cleanly" in log.read_text()


@pytest.mark.integration
def test_redrive_moves_what_it_can_and_names_each_message_it_left(broker, amqp_url, tmp_path):
    queue = broker.new_queue()
    functions = tmp_path / "functions"
    shutil.copytree(FUNCTIONS_DIR / "recorder", functions / "recorder")
    declared = json.loads((functions / "recorder" / "function.json").read_text())
    declared["event_source"].update(queue=queue, routing_key=queue)
    (functions / "recorder" / "function.json").write_text(json.dumps(declared))
    broker.declare(load_spec("recorder", queue))
    poison = wire.with_headers(b"p-1", (b"n", wire.nested(1000)))
    broker.publish_raw(f"{queue}.dlq", b"poison", poison, exchange="")
    broker.channel.basic_publish("", f"{queue}.dlq", b"good", pika.BasicProperties(message_id="g"))

    result = cli("redrive", "recorder", "--amqp-url", amqp_url, functions_dir=functions)

    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        f"moved 1 message(s) from {queue}.dlq to {queue}",
        f"left in {queue}.dlq: message 1 (message id p-1): the runtime would set it aside "
        "again: it cannot be turned into an event: the headers nest tables and arrays deeper "
        "than 200 levels",
    ]
    assert [body for _, _, body in broker.get_all(queue)] == [b"good"]
    assert [body for _, _, body in broker.get_all(f"{queue}.dlq")] == [b"poison"]
