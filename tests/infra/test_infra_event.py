"""The event a deployed rule function receives (AWS's aws:rmq sample with our message) works."""

from __future__ import annotations

import base64
import copy
import importlib
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from credit.messages import decode_rule_body
from credit.rmq_event import records
from tests.infra.conftest import ROOT

FUNCTIONS_DIR = ROOT / "functions"

SAMPLE = Path(__file__).resolve().parent / "events" / "aws-rmq-sample.json"
TASK_ROOT_MODULES = ("rule", "handler")


def aws_event(body: dict[str, Any], queue: str = "rule.age") -> dict[str, Any]:
    """AWS's own sample event, carrying our message on our queue, as the mapping delivers it."""
    event = json.loads(SAMPLE.read_text())
    [message] = next(iter(event["rmqMessagesByQueue"].values()))
    message = copy.deepcopy(message)
    message["data"] = base64.b64encode(json.dumps(body).encode()).decode()
    message["basicProperties"]["contentType"] = "application/json"
    message["basicProperties"]["messageId"] = f"{body['ticket']}:age"
    event["rmqMessagesByQueue"] = {f"{queue}::/": [message]}
    return event


@pytest.fixture
def age_function() -> Any:
    """Import functions/age_rule as Lambda does: its folder is the task root on sys.path."""
    saved = {name: sys.modules.pop(name) for name in TASK_ROOT_MODULES if name in sys.modules}
    sys.path.insert(0, str(FUNCTIONS_DIR / "age_rule"))
    try:
        yield importlib.import_module("rule"), importlib.import_module("handler")
    finally:
        sys.path.remove(str(FUNCTIONS_DIR / "age_rule"))
        for name in TASK_ROOT_MODULES:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


class RecordingStore:
    """Stands in for MySQL: keeps the results the handler records."""

    def __init__(self) -> None:
        self.results: list[Any] = []
        self.rejected: list[Any] = []

    def record_results(self, results: Any, rejected: Any = ()) -> tuple[list[Any], list[Any]]:
        self.results += results
        self.rejected += rejected
        return [], []

    def set_aside(self, rejected: Any) -> None:
        self.rejected += rejected


class NoCache:
    def put_quietly(self, views: Any) -> bool:
        return True


def test_the_sample_event_is_the_shape_aws_documents():
    event = json.loads(SAMPLE.read_text())

    assert event["eventSource"] == "aws:rmq"
    assert event["eventSourceArn"].startswith("arn:aws:mq:")
    assert all("::" in key for key in event["rmqMessagesByQueue"])


def test_our_message_in_the_aws_event_parses_into_the_record_the_rule_reads(age_function):
    rule, _ = age_function
    ticket = str(uuid.uuid4())

    [record] = records(aws_event({"ticket": ticket, "age": 20}))
    parsed_ticket, payload = decode_rule_body(record.body)
    verdict = rule.judge(payload["age"])

    assert record.queue == "rule.age"
    assert record.message_id == f"{ticket}:age"
    assert record.redelivered is False
    assert (parsed_ticket, payload["age"]) == (ticket, 20)
    assert verdict.passed is True


def test_the_real_handler_records_a_verdict_for_the_aws_event(age_function):
    _, handler = age_function
    store = RecordingStore()
    handler.FUNCTION.store, handler.FUNCTION.cache = store, NoCache()
    ticket = str(uuid.uuid4())

    outcome = handler.handler(aws_event({"ticket": ticket, "age": 17}), None)

    assert outcome["recorded"] == 1 and outcome["rejected"] == 0
    [result] = store.results
    assert (result.ticket, result.rule, result.passed) == (ticket, "age", False)
