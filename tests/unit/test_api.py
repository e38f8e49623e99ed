"""The HTTP contract of the API, with in-memory stores: statuses, bodies, and what is published."""

import json
import uuid

import pytest
from chalice.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credit.service import CreditService
from local_runtime.gateway import load_app
from tests.fakes import FakeCache, FakePublisher, FakeStore
from tests.helpers import FUNCTIONS

APP = load_app(FUNCTIONS / "api")
from chalicelib import dependencies  # noqa: E402 - importable once load_app put the API on sys.path

JSON_HEADERS = {"Content-Type": "application/json"}


@pytest.fixture
def service():
    svc = CreditService(FakeStore(), FakeCache(), FakePublisher(), ("age", "value"))
    dependencies.install(svc)
    yield svc
    dependencies.install(None)


@pytest.fixture
def client(service):
    with Client(APP) as test_client:
        yield test_client


def post(client, body, headers=JSON_HEADERS):
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.http.post("/credit-request", headers=headers, body=raw)


def test_a_valid_request_is_accepted_with_a_ticket_and_its_location(client, service):
    response = post(client, {"age": 20, "value": 100000})
    assert response.status_code == 202
    ticket = response.json_body["ticket"]
    assert response.json_body == {"ticket": ticket, "status": "PENDING"}
    assert response.headers["Location"] == f"/credit-validation?ticket={ticket}"
    bodies = {m.rule: json.loads(m.body) for m in service.publisher.published}
    assert bodies == {
        "age": {"ticket": ticket, "age": 20},
        "value": {"ticket": ticket, "value": 100000},
    }
    assert service.store.outbox == []


def test_money_keeps_its_cents_in_the_message(client, service):
    post(client, '{"age": 30, "value": 1234.56}')
    value_message = next(m for m in service.publisher.published if m.rule == "value")
    assert json.loads(value_message.body)["value"] == 1234.56


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"age": "abc", "value": 1}, "INVALID_REQUEST", "age"),
        ({"age": 0, "value": 0}, "INVALID_REQUEST", "value"),
        ({"age": 20}, "INVALID_REQUEST", "value"),
        ({"age": 20, "value": 1, "extra": 1}, "INVALID_REQUEST", "body"),
        ("{not json", "MALFORMED_JSON", None),
        ('{"age": NaN, "value": 1}', "MALFORMED_JSON", None),
        ("[" * 5000 + "]" * 5000, "MALFORMED_JSON", None),
        (b"\xff\xfe{}", "MALFORMED_JSON", None),
        ("", "MALFORMED_JSON", None),
    ],
)
def test_bad_input_is_a_400_that_names_the_problem_and_publishes_nothing(
    client, service, body, code, field
):
    response = post(client, body)
    assert response.status_code == 400
    assert response.json_body["code"] == code
    assert response.json_body["message"]
    if field:
        assert field in response.json_body["details"]
    assert service.publisher.published == [] and service.store.tickets == {}


def test_age_zero_is_valid_and_publishes_both_halves(client, service):
    assert post(client, {"age": 0, "value": 10}).status_code == 202
    assert sorted(m.rule for m in service.publisher.published) == ["age", "value"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_other_content_types_are_415(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = post(client, {"age": 20, "value": 1}, headers)
    assert response.status_code == 415
    assert response.json_body["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_json_with_a_charset_is_accepted(client):
    assert (
        post(
            client, {"age": 20, "value": 1}, {"Content-Type": "application/json; charset=utf-8"}
        ).status_code
        == 202
    )


def test_bodies_over_16_kib_are_413(client, service):
    response = post(client, json.dumps({"age": 20, "value": 1, "pad": "x" * 17000}))
    assert response.status_code == 413
    assert response.json_body["code"] == "PAYLOAD_TOO_LARGE"
    assert service.publisher.published == []


def test_mysql_down_is_503_and_nothing_is_published(client, service):
    service.store.down = True
    response = post(client, {"age": 20, "value": 1})
    assert response.status_code == 503
    assert response.json_body["code"] == "SERVICE_UNAVAILABLE"
    assert service.publisher.published == []


def test_broker_down_still_accepts_and_keeps_the_messages_in_the_outbox(client, service):
    service.publisher.down = True
    response = post(client, {"age": 20, "value": 1})
    assert response.status_code == 202
    assert len(service.store.outbox) == 2


def test_a_new_ticket_reads_pending_with_every_rule_pending(client):
    ticket = post(client, {"age": 20, "value": 1}).json_body["ticket"]
    body = client.http.get(f"/credit-validation?ticket={ticket}").json_body
    assert body["status"] == "PENDING"
    assert body["rules"] == {
        "age": {"status": "PENDING", "reason": "not evaluated yet"},
        "value": {"status": "PENDING", "reason": "not evaluated yet"},
    }
    assert body["decided_at"] is None


def test_redis_down_falls_back_to_mysql(client, service):
    ticket = post(client, {"age": 20, "value": 1}).json_body["ticket"]
    service.cache.down = True
    assert client.http.get(f"/credit-validation?ticket={ticket}").json_body["ticket"] == ticket


def test_unknown_tickets_are_404(client):
    response = client.http.get(f"/credit-validation?ticket={uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json_body["code"] == "TICKET_NOT_FOUND"


@pytest.mark.parametrize(
    "query",
    ["", "?ticket=", "?ticket=abc", "?other=1", "?ticket=6826E88B-DC6D-4C27-B480-EB529511357C"],
)
def test_missing_or_malformed_tickets_are_400(client, query):
    response = client.http.get(f"/credit-validation{query}")
    assert response.status_code == 400
    assert response.json_body["code"] == "INVALID_TICKET"


def test_health_reports_each_dependency_and_503_when_one_is_down(client, service):
    assert client.http.get("/health").status_code == 200
    service.cache.down = True
    response = client.http.get("/health")
    assert response.status_code == 503
    assert response.json_body["dependencies"]["redis"]["status"] == "DOWN"
    assert response.json_body["dependencies"]["mysql"]["status"] == "UP"


def test_the_openapi_document_describes_every_route(client):
    document = client.http.get("/openapi.json").json_body
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {"/credit-request", "/credit-validation", "/health"}
    codes = set(document["components"]["schemas"]["Error"]["properties"]["code"]["enum"])
    assert codes >= {"MALFORMED_JSON", "INVALID_REQUEST", "TICKET_NOT_FOUND", "PAYLOAD_TOO_LARGE"}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(payload=json_values | st.fixed_dictionaries({"age": json_values, "value": json_values}))
def test_any_json_body_gets_202_or_a_documented_400_never_a_5xx(client, service, payload):
    response = post(client, json.dumps(payload))
    assert response.status_code in (202, 400)
    if response.status_code == 400:
        assert response.json_body["code"] == "INVALID_REQUEST"
        assert response.json_body["details"]


@settings(
    max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(raw=st.binary(max_size=300))
def test_any_bytes_get_a_json_answer_never_a_5xx(client, raw):
    response = post(client, raw)
    assert response.status_code in (202, 400)
    assert response.json_body


def test_concurrent_requests_each_see_their_own_body():
    import threading

    from local_runtime.gateway import per_thread_request_state

    app = per_thread_request_state(load_app(FUNCTIONS / "api"))
    seen: dict[int, object] = {}
    barrier = threading.Barrier(2)

    def handle(index: int) -> None:
        app.current_request = f"request {index}"
        barrier.wait()  # both threads have now set theirs
        seen[index] = app.current_request

    threads = [threading.Thread(target=handle, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {0: "request 0", 1: "request 1"}


def test_a_finished_ticket_is_served_from_memory_once_seen(client, service):
    from credit.domain import RuleResult

    ticket = post(client, {"age": 17, "value": 1}).json_body["ticket"]
    service.store.record_results([RuleResult(ticket, "age", False, "too young")])
    service.cache.views.clear()
    decided = client.http.get(f"/credit-validation?ticket={ticket}").json_body
    assert decided["status"] == "NOT_APPROVED" and decided["rules"]["value"]["status"] == "PENDING"
    assert service.final_views.get(ticket) is None  # a rule may still report: not final yet
    service.store.record_results([RuleResult(ticket, "value", True, "fine")])
    service.cache.views.clear()
    client.http.get(f"/credit-validation?ticket={ticket}")
    service.cache.down = service.store.down = True  # no store is asked any more
    final = client.http.get(f"/credit-validation?ticket={ticket}").json_body
    assert final["rules"]["value"] == {"status": "PASSED", "reason": "fine"}
