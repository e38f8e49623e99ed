"""The running system over HTTP: the README's examples, every error path, PENDING first."""

import json
import time
import uuid

import pytest

from tests.e2e.conftest import System
from tests.helpers import TEST_VHOST, delete_vhost

pytestmark = pytest.mark.e2e


def test_readme_example_is_approved(system):
    status, headers, body = system.post({"age": 20, "value": 100000})
    assert status == 202 and body["status"] == "PENDING"
    assert headers["Location"] == f"/credit-validation?ticket={body['ticket']}"
    decided = system.wait_decided(body["ticket"])
    assert decided["status"] == "APPROVED"
    assert {rule: v["status"] for rule, v in decided["rules"].items()} == {
        "age": "PASSED",
        "value": "PASSED",
    }
    assert decided["decided_at"] >= decided["created_at"]


def test_readme_counter_example_is_not_approved_with_both_rules_failed(system):
    ticket = system.post({"age": 17, "value": 500000})[2]["ticket"]
    decided = system.wait_decided(ticket)
    deadline = time.monotonic() + 10
    # The first FAILED decides at once; the other rule's verdict lands after the decision.
    while time.monotonic() < deadline:
        if all(v["status"] == "FAILED" for v in decided["rules"].values()):
            break
        time.sleep(0.01)
        decided = system.ticket(ticket)
    assert decided["status"] == "NOT_APPROVED"
    assert decided["rules"]["age"] == {
        "status": "FAILED",
        "reason": "age 17 is below the minimum 18",
    }
    assert decided["rules"]["value"] == {
        "status": "FAILED",
        "reason": "value 500000 is above the maximum 100000",
    }


@pytest.fixture(scope="module")
def age_only_system(tmp_path_factory, services_ready):
    running = System(vhost=f"{TEST_VHOST}-age-only-{uuid.uuid4().hex[:8]}")
    running.start(tmp_path_factory.mktemp("age-only") / "runtime.log", "AgeRule")
    yield running
    assert running.stop() == 0
    delete_vhost(running.vhost)


def test_a_ticket_is_pending_until_every_rule_has_run(age_only_system):
    status, _, body = age_only_system.post({"age": 30, "value": 10})
    assert (status, body["status"]) == (202, "PENDING")
    deadline = time.monotonic() + 20
    view = age_only_system.ticket(body["ticket"])
    while view["rules"]["age"]["status"] == "PENDING" and time.monotonic() < deadline:
        time.sleep(0.05)
        view = age_only_system.ticket(body["ticket"])
    assert view["rules"]["age"]["status"] == "PASSED"
    assert view["rules"]["value"] == {"status": "PENDING", "reason": "not evaluated yet"}
    assert (view["status"], view["decided_at"]) == ("PENDING", None)


def test_unknown_ticket_is_404(system):
    status, _, body = system.request("GET", f"/credit-validation?ticket={uuid.uuid4()}")
    assert (status, body["code"]) == (404, "TICKET_NOT_FOUND")


@pytest.mark.parametrize("query", ["", "?ticket=not-a-uuid"])
def test_missing_or_malformed_ticket_is_400(system, query):
    status, _, body = system.request("GET", f"/credit-validation{query}")
    assert (status, body["code"]) == (400, "INVALID_TICKET")


@pytest.mark.parametrize(
    ("raw", "headers", "status", "code"),
    [
        (
            b'{"age": "abc", "value": 1}',
            {"Content-Type": "application/json"},
            400,
            "INVALID_REQUEST",
        ),
        (b'{"age": 20', {"Content-Type": "application/json"}, 400, "MALFORMED_JSON"),
        (b'{"age": 20, "value": 1}', {"Content-Type": "text/plain"}, 415, "UNSUPPORTED_MEDIA_TYPE"),
        (
            json.dumps({"age": 20, "value": 1, "x": "y" * 20000}).encode(),
            {"Content-Type": "application/json"},
            413,
            "PAYLOAD_TOO_LARGE",
        ),
    ],
)
def test_bad_requests_get_a_clear_json_error(system, raw, headers, status, code):
    got_status, got_headers, body = system.request("POST", "/credit-request", raw, headers)
    assert (got_status, body["code"]) == (status, code)
    assert got_headers["Content-Type"] == "application/json"
    assert body["message"]


def test_invalid_input_publishes_nothing(system):
    channel = system.channel()
    before = channel.queue_declare("rule.value", passive=True).method.message_count
    system.post({"age": 0, "value": -1})
    system.post({"age": "abc", "value": 100})
    after = channel.queue_declare("rule.value", passive=True).method.message_count
    channel.connection.close()
    assert after <= before


def test_health_reports_every_dependency(system):
    status, _, body = system.request("GET", "/health")
    assert status == 200
    assert set(body["dependencies"]) == {"mysql", "redis", "broker"}


def test_the_server_serves_its_openapi_document(system):
    status, _, body = system.request("GET", "/openapi.json")
    assert status == 200 and "/credit-request" in body["paths"]
