"""An outside team's SAM application, run by `credit-runtime start --template` as they would.

tests/sample_app knows nothing of the credit app or of this runtime: its own handlers, its own
queue (declared here, as its team's broker set-up would), its own parameters and schedule.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import pytest

from tests.e2e.conftest import free_port
from tests.helpers import ROOT, delete_vhost, ensure_vhost
from tests.runtime.conftest import wait_until

pytestmark = [pytest.mark.e2e]
SAMPLE = ROOT / "tests" / "sample_app"
BROKER_ARN = "arn:aws:mq:eu-west-1:123456789012:broker:shop:b-5f1c9f0e-3a43-4c0b-8f7e-0d4a2b6c9e11"


@dataclass
class SampleApp:
    process: subprocess.Popen[bytes]
    amqp_url: str
    out_file: Path
    log: Path
    port: int

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def records(self) -> list[dict[str, Any]]:
        if not self.out_file.exists():
            return []
        return [json.loads(line) for line in self.out_file.read_text().splitlines()]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "local_runtime", "--template", str(SAMPLE), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Iterator[SampleApp]:
    vhost = f"sample-app-{uuid.uuid4().hex[:8]}"
    ensure_vhost(vhost)
    amqp_url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    connection.channel().queue_declare("shop.orders", durable=True)  # the team's own set-up
    connection.close()
    folder = tmp_path_factory.mktemp("sample")
    port = free_port()
    out_file, log = folder / "out.jsonl", folder / "runtime.log"
    env = {k: v for k, v in os.environ.items() if k not in ("AMQP_URL", "MYSQL_URL", "REDIS_URL")}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local_runtime",
                "--template",
                str(SAMPLE),
                "--region",
                "eu-west-1",
                "--amqp-url",
                amqp_url,
                "--parameter-overrides",
                f"OutFile={out_file} Stage=prod",
                "--import-value",
                "shop-greeting=hello",
                "start",
                "--port",
                str(port),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=folder,
        )
    app = SampleApp(process, amqp_url, out_file, log, port)
    try:
        wait_until(lambda: "consuming shop.orders" in log.read_text(), timeout=60)
        wait_until(lambda: "API listening" in log.read_text(), timeout=60)
        yield app
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log.read_text()
        delete_vhost(vhost)


def publish(app: SampleApp, *orders: dict[str, Any]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(app.amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    for order in orders:
        channel.basic_publish("", "shop.orders", json.dumps(order).encode(), mandatory=True)
    connection.close()


def test_its_mq_function_gets_the_aws_event_with_its_own_broker_and_settings(sample):
    publish(sample, {"kind": "order", "id": "o-1"}, {"kind": "order", "id": "o-2"})
    [record] = wait_until(lambda: [r for r in sample.records() if "orders" in r], timeout=20)
    assert record["orders"] == ["o-1", "o-2"], "one batch: the window gathered both"
    assert record["source"] == BROKER_ARN, "the broker ARN its template names"
    assert record["queues"] == [f"shop.orders::{sample.amqp_url.rsplit('/', 1)[1]}"]
    assert record["arn"] == "arn:aws:lambda:eu-west-1:000000000000:function:OrdersFunction"
    assert (record["table"], record["stage"], record["discount"]) == ("orders-prod", "prod", "0")


def test_its_schedule_fires_with_eventbridges_scheduled_event(sample):
    before = len(sample.records())
    result = sample.cli("trigger", "ReportFunctionNightly")
    assert result.returncode == 0, result.stderr
    new = wait_until(lambda: sample.records()[before:], timeout=20)
    [report] = [r for r in new if r["function"] == "ReportFunction"]
    event = report["event"]
    assert (event["source"], event["detail-type"], event["detail"]) == (
        "aws.events",
        "Scheduled Event",
        {},
    )
    assert event["resources"] == [
        "arn:aws:events:eu-west-1:000000000000:rule/ReportFunctionNightly"
    ]
    assert time.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ")


def test_status_names_its_mappings_and_schedules(sample):
    result = sample.cli("status")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["mappings"]["OrdersFunctionOrders"]["connected"] is True
    assert status["schedules"]["ReportFunctionNightly"]["expression"] == "cron(30 2 * * ? *)"


def test_its_filter_drops_what_it_does_not_match(sample):
    publish(sample, {"kind": "ping", "id": "p-1"}, {"kind": "order", "id": "o-3"})
    wait_until(lambda: any("o-3" in r.get("orders", []) for r in sample.records()), timeout=20)
    assert not any("p-1" in r.get("orders", []) for r in sample.records())
    status = json.loads(sample.cli("status").stdout)
    assert status["mappings"]["OrdersFunctionOrders"]["filtered"] >= 1


def test_disable_and_enable_switch_a_mapping_of_the_running_runtime(sample):
    result = sample.cli("disable", "OrdersFunction")
    assert (result.returncode, result.stdout.strip()) == (0, "OrdersFunctionOrders: Disabled")
    publish(sample, {"kind": "order", "id": "o-while-disabled"})
    time.sleep(2)
    assert not any("o-while-disabled" in r.get("orders", []) for r in sample.records())
    status = json.loads(sample.cli("status").stdout)["mappings"]["OrdersFunctionOrders"]
    assert (status["state"], status["state_transition_reason"]) == ("Disabled", "USER_INITIATED")
    assert sample.cli("enable", "OrdersFunctionOrders").returncode == 0
    wait_until(
        lambda: any("o-while-disabled" in r.get("orders", []) for r in sample.records()),
        timeout=20,
    )


def test_its_proxy_handler_answers_through_api_gateways_rest_event(sample):
    status, body = sample.get("/hello/ada")
    assert (status, body) == (200, {"hello": "ada", "method": "GET"})
    assert sample.get("/nowhere")[0] == 404, "no route: API Gateway's answer"
    assert "[HelloFunction] START RequestId:" in sample.log.read_text()
