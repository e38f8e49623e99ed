"""EventBridge schedules: each function invoked on its rate or cron with the scheduled event."""

from __future__ import annotations

import io
import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from declarations.model import Schedule
from declarations.reader import read
from local_runtime import chalice_app
from local_runtime.environment import ExecutionEnvironment, Site, lambda_environment
from local_runtime.scheduler import ScheduledFunction, Scheduler, scheduled_event
from tests.helpers import FUNCTIONS
from tests.runtime.conftest import load_function, read_records, wait_until

SITE = Site(region="eu-west-1", account="123456789012")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
        self.lock = threading.Lock()

    def __call__(self) -> datetime:
        with self.lock:
            return self.now

    def advance(self, **delta: float) -> None:
        with self.lock:
            self.now += timedelta(**delta)


def test_the_scheduled_event_is_eventbridges():
    schedule = Schedule("Nightly", "Fn", "rate(1 day)", rule_name="nightly-rule")
    moment = datetime(2026, 12, 4, 3, 0, 5, tzinfo=UTC)
    event = scheduled_event(schedule, SITE, moment)
    assert list(event) == [
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    ]
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert (event["account"], event["region"], event["time"]) == (
        "123456789012",
        "eu-west-1",
        "2026-12-04T03:00:05Z",
    )
    assert event["resources"] == ["arn:aws:events:eu-west-1:123456789012:rule/nightly-rule"]
    with_input = Schedule("N", "Fn", "rate(1 day)", rule_name="n", input='{"report": true}')
    assert scheduled_event(with_input, SITE, moment) == {"report": True}


@pytest.fixture
def recorder(tmp_path):
    function = load_function("ticker")
    records = tmp_path / "records.jsonl"
    environment = {**function.environment, "RECORD_FILE": str(records)}
    return replace(function, environment=environment), records


def test_a_rate_fires_on_its_period_from_the_start_and_not_before(recorder):
    function, records = recorder
    clock = Clock()
    schedule = Schedule("Every", function.logical_id, "rate(5 minutes)", rule_name="every")
    target = ScheduledFunction(
        schedule, ExecutionEnvironment(function, output=io.StringIO(), site=SITE)
    )
    scheduler = Scheduler([target], SITE, clock=clock)
    scheduler.start()
    try:
        clock.advance(minutes=4, seconds=59)
        threading.Event().wait(1.5)
        assert read_records(records, "invoke") == [], "nothing before the first period ends"
        clock.advance(seconds=1)
        [first] = wait_until(lambda: read_records(records, "invoke"), timeout=15)
        assert first["event"]["time"] == "2026-12-04T12:05:00Z"
        clock.advance(minutes=5)
        invocations = wait_until(
            lambda: len(read_records(records, "invoke")) == 2 and read_records(records, "invoke"),
            timeout=15,
        )
        assert invocations[1]["event"]["time"] == "2026-12-04T12:10:00Z"
    finally:
        scheduler.stop()
    assert target.invocations == 2 and target.failures == 0


def test_a_failed_scheduled_invocation_is_retried_as_an_asynchronous_invocation(recorder):
    function, _ = recorder
    clock = Clock()
    schedule = Schedule(
        "Poison",
        function.logical_id,
        "rate(1 day)",
        rule_name="p",
        input=json.dumps({"fail": True}),
    )
    target = ScheduledFunction(
        schedule, ExecutionEnvironment(function, output=io.StringIO(), site=SITE)
    )
    scheduler = Scheduler([target], SITE, clock=clock)
    scheduler.start()
    try:
        scheduler.trigger("Poison")
        wait_until(lambda: target.failures == 1, timeout=15)
        clock.advance(seconds=59)
        threading.Event().wait(1.5)
        assert target.failures == 1, "the retry waits a minute"
        clock.advance(seconds=1)
        wait_until(lambda: target.failures == 2, timeout=15)
        clock.advance(minutes=2)
        wait_until(lambda: target.failures == 3, timeout=15)
        clock.advance(minutes=10)
        threading.Event().wait(1.5)
        assert target.failures == 3, "two retries, then the event is dropped"
    finally:
        scheduler.stop()


def test_an_unknown_schedule_cannot_be_triggered_and_says_which_exist(recorder):
    function, _ = recorder
    schedule = Schedule("Known", function.logical_id, "rate(1 day)", rule_name="k")
    target = ScheduledFunction(schedule, ExecutionEnvironment(function, output=io.StringIO()))
    with pytest.raises(KeyError, match="known: Known"):
        Scheduler([target], SITE).trigger("Other")


def test_the_credit_apps_schedules_are_found_in_its_chalice_code():
    api = FUNCTIONS / "api"
    function = read(FUNCTIONS.parent).function("CreditApi")
    found = chalice_app.probe(api, "app.app", lambda_environment(function, SITE))
    assert found.is_chalice
    assert [(s.name, s.handler, s.expression) for s in found.schedules] == [
        ("relay", "app.relay", "rate(1 minute)")
    ]


def test_a_plain_handler_is_no_chalice_app():
    function = load_function("ticker")
    found = chalice_app.probe(
        function.code_dir, function.handler, lambda_environment(function, SITE)
    )
    assert (found.is_chalice, found.schedules) == (False, ())
