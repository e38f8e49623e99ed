"""The command line, run as users run it: `python -m local_runtime ...` in a subprocess."""

from __future__ import annotations

import base64
import json
import os
import re
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
    *args: str, template: Path = FUNCTIONS_DIR, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local_runtime", "--template", str(template), *args],
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
    for command in ("start", "list", "invoke", "generate-event", "redrive", "status", "trigger"):
        assert command in result.stdout


def test_list_shows_each_function_with_its_triggers(tmp_path):
    template = tmp_path / "template.yaml"
    template.write_text(
        re.sub(
            r"Code: (\w+)",
            rf"Code: {FUNCTIONS_DIR}/\1",
            (FUNCTIONS_DIR / "template.yaml").read_text(),
        )
        + """
  RecorderQueue:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: !Ref Recorder
      EventSourceArn: arn:aws:mq:us-east-1:000000000000:broker:tests:b-tests
      Queues: [test.recorder]
      BatchSize: 10
"""
    )
    result = cli("list", template=template)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    names = [line.split()[0] for line in lines if not line.startswith(" ")]
    assert names == ["EnvA", "EnvB", "Noop", "Recorder", "Sleeper", "Ticker", "Misbehave"]
    recorder = lines.index(next(line for line in lines if line.startswith("Recorder ")))
    assert "timeout=5s" in lines[recorder]
    assert lines[recorder + 1].split() == [
        "mq",
        "test.recorder",
        "batch=10",
        "window=0.5s",
        "concurrency=1",
    ]


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
    assert "no function named 'nobody'" in result.stderr


def test_a_bad_template_stops_the_cli_naming_file_resource_and_property(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "template.yaml").write_text(
        "Resources:\n  Broken:\n    Type: AWS::Lambda::Function\n"
        "    Properties: {Code: src, Handler: h.h, Runtime: python3.11, Timeout: 901}\n"
    )
    result = cli("list", template=tmp_path)
    assert result.returncode == 2
    assert f"{tmp_path / 'template.yaml'}: Broken: Timeout: must be 1 to 900" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_template_is_one_clear_line(tmp_path):
    result = cli("list", template=tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: {tmp_path}: no template.yaml or template.yml or template.json in this folder"
    )


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
    sleeper = {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "FunctionName": "sleeper",
            "Code": str(FUNCTIONS_DIR / "sleeper"),
            "Handler": "handler.handler",
            "Runtime": "python3.11",
            "Timeout": 10,
            "Environment": {
                "Variables": {
                    "RECORD_FILE": str(records),
                    "SLEEP_SECONDS": "1.5",
                    "SLEEP_ALWAYS": "1",
                }
            },
        },
    }
    mapping = {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Properties": {
            "FunctionName": {"Ref": "Sleeper"},
            "EventSourceArn": "arn:aws:mq:us-east-1:000000000000:broker:tests:b-tests",
            "Queues": [queue],
            "BatchSize": 1,
            "MaximumBatchingWindowInSeconds": 0,
        },
    }
    declared = load_spec("sleeper", queue)
    broker.declare(declared)
    template = tmp_path / "template.json"
    template.write_text(json.dumps({"Resources": {"Sleeper": sleeper, "SleeperQueue": mapping}}))
    log = tmp_path / "runtime.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local_runtime",
                "--template",
                str(template),
                "--amqp-url",
                amqp_url,
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
    template = tmp_path / "template.json"
    template.write_text(
        json.dumps(
            {
                "Resources": {
                    "Recorder": {
                        "Type": "AWS::Lambda::Function",
                        "Properties": {
                            "Code": str(FUNCTIONS_DIR / "recorder"),
                            "Handler": "handler.handler",
                            "Runtime": "python3.11",
                        },
                    },
                    "RecorderQueue": {
                        "Type": "AWS::Lambda::EventSourceMapping",
                        "Properties": {
                            "FunctionName": {"Ref": "Recorder"},
                            "EventSourceArn": "arn:aws:mq:us-east-1:000000000000:broker:b:b-1",
                            "Queues": [queue],
                        },
                    },
                }
            }
        )
    )
    broker.declare(load_spec("recorder", queue))
    poison = wire.with_headers(b"p-1", (b"n", wire.nested(1000)))
    broker.publish_raw(f"{queue}.dlq", b"poison", poison, exchange="")
    broker.channel.basic_publish("", f"{queue}.dlq", b"good", pika.BasicProperties(message_id="g"))

    result = cli("--amqp-url", amqp_url, "redrive", "Recorder", template=template)

    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        f"moved 1 message(s) from {queue}.dlq to {queue}",
        f"left in {queue}.dlq: message 1 (message id p-1): the runtime would set it aside "
        "again: it cannot be turned into an event: the headers nest tables and arrays deeper "
        "than 200 levels",
    ]
    assert [body for _, _, body in broker.get_all(queue)] == [b"good"]
    assert [body for _, _, body in broker.get_all(f"{queue}.dlq")] == [b"poison"]


def test_a_template_importing_another_stacks_output_needs_its_value_on_the_command_line():
    sample = ROOT / "tests" / "sample_app"
    refused = cli("list", template=sample)
    assert refused.returncode == 2
    assert "the export 'shop-greeting' has no local value" in refused.stderr
    assert "--import-value shop-greeting=VALUE" in refused.stderr
    bad = cli("--import-value", "shop-greeting", "list", template=sample)
    assert bad.returncode == 2 and "takes EXPORT=VALUE" in bad.stderr
    listed = cli("--import-value", "shop-greeting=hi", "list", template=sample)
    assert listed.returncode == 0, listed.stderr
    assert "HelloFunction" in listed.stdout


def test_generate_event_for_a_function_takes_its_queue_and_broker_from_the_template():
    sample = ROOT / "tests" / "sample_app"
    given = ("--import-value", "shop-greeting=hi", "generate-event")
    result = cli(
        *given, "--function", "OrdersFunction", "--body", '{"kind": "order"}', template=sample
    )
    assert result.returncode == 0, result.stderr
    event = json.loads(result.stdout)
    assert list(event["rmqMessagesByQueue"]) == ["shop.orders::/"]
    assert event["eventSourceArn"] == (
        "arn:aws:mq:eu-west-1:123456789012:broker:shop:b-5f1c9f0e-3a43-4c0b-8f7e-0d4a2b6c9e11"
    )
    none = cli(*given, "--function", "HelloFunction", template=sample)
    assert none.returncode == 2 and "HelloFunction has no MQ event" in none.stderr
