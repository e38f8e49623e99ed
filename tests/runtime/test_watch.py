"""`start --watch`: a changed function gets fresh execution environments before its next batch."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from tests.helpers import ROOT
from tests.runtime.conftest import load_spec, read_records, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HANDLER = """
import json, os

VERSION = "{version}"


def handler(event, context):
    with open(os.environ["RECORD_FILE"], "a") as out:
        out.write(json.dumps({{"kind": "invoke", "version": VERSION, "pid": os.getpid()}}) + "\\n")
"""


def test_code_and_template_changes_replace_the_environments_before_the_next_batch(
    broker, amqp_url, tmp_path
):
    queue = broker.new_queue()
    broker.declare(load_spec("ticker", queue))
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(HANDLER.format(version="one"))
    records = tmp_path / "records.jsonl"

    def template(timeout: int) -> str:
        return json.dumps(
            {
                "Resources": {
                    "Watched": {
                        "Type": "AWS::Lambda::Function",
                        "Properties": {
                            "Code": "code",
                            "Handler": "app.handler",
                            "Runtime": "python3.11",
                            "Timeout": timeout,
                            "Environment": {"Variables": {"RECORD_FILE": str(records)}},
                        },
                    },
                    "WatchedQueue": {
                        "Type": "AWS::Lambda::EventSourceMapping",
                        "Properties": {
                            "FunctionName": {"Ref": "Watched"},
                            "EventSourceArn": "arn:aws:mq:us-east-1:000000000000:broker:b:b-1",
                            "Queues": [queue],
                            "BatchSize": 1,
                            "MaximumBatchingWindowInSeconds": 0,
                        },
                    },
                }
            }
        )

    (tmp_path / "template.json").write_text(template(5))
    log = tmp_path / "runtime.log"
    command = [sys.executable, "-m", "local_runtime", "--template", str(tmp_path / "template.json")]
    command += ["--amqp-url", amqp_url, "start", "--no-api", "--watch"]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_until(lambda: "watching the template" in log.read_text(), timeout=30)
        broker.publish(queue, b"{}")
        [first] = wait_until(lambda: read_records(records), timeout=15)

        (code / "app.py").write_text(HANDLER.format(version="two"))
        wait_until(lambda: "Watched: changed" in log.read_text(), timeout=15)
        broker.publish(queue, b"{}")
        second = wait_until(lambda: read_records(records)[1:], timeout=15)[0]

        (tmp_path / "template.json").write_text("{not json")
        wait_until(lambda: "does not read; still running the old" in log.read_text(), timeout=15)
        broker.publish(queue, b"{}")
        third = wait_until(lambda: read_records(records)[2:], timeout=15)[0]
    finally:
        process.send_signal(signal.SIGTERM)
        code_ = process.wait(30)

    assert (first["version"], second["version"], third["version"]) == ("one", "two", "two")
    assert second["pid"] != first["pid"], "a fresh execution environment ran the new code"
    assert third["pid"] == second["pid"], "a template that does not read changes nothing"
    assert code_ == 0, log.read_text()
