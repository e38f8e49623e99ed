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


# Money is judged on the JSON number's own text: every spelling of too many decimals, too many
# digits or an exponent that hides them is refused, naming `value` and what it must be.
MONEY_ACCEPTED = [
    ("100000", "100000"),
    ("100000.00", "100000"),
    ("100.000", "100"),  # trailing zeros are not decimals
    ("0.01", "0.01"),
    ("12.30", "12.3"),
    ("1e12", "1000000000000"),
    ("1E+2", "100"),
    ("1.5e1", "15"),
    ("0.10e1", "1"),
    ("1234.5e-1", "123.45"),
    ("999999999999.99", "999999999999.99"),
    ("100" + "0" * 300 + "e-300", "100"),
]
MONEY_REFUSED = [
    ("100000.0000000000000000000000001", "at most 2 decimal places"),
    ("100000.001", "at most 2 decimal places"),
    ("1e-3", "at most 2 decimal places"),
    ("12345e-4", "at most 2 decimal places"),
    ("0.001", "at most 2 decimal places"),
    ("1e-" + "9" * 5000, "at most 2 decimal places"),
    ("1000000000000.01", "at most 1e12"),
    ("1e13", "at most 1e12"),
    ("9999999999999.99", "at most 1e12"),  # the column holds it, the contract does not
    ("1e999999999", "at most 1e12"),
    ("1e" + "9" * 5000, "at most 1e12"),
    ("1" * 5000, "at most 1e12"),
    ("0", "greater than 0"),
    ("0.00", "greater than 0"),
    ("0e5", "greater than 0"),
    ("-0", "greater than 0"),
    ("-5", "greater than 0"),
    ('"100"', "must be a number"),
    ("true", "must be a number"),
    ("null", "must be a number"),
]


@pytest.mark.parametrize(("spelling", "stored"), MONEY_ACCEPTED)
def test_money_spellings_within_the_contract_are_accepted_exactly(
    client, service, spelling, stored
):
    response = post(client, f'{{"age": 30, "value": {spelling}}}')
    assert response.status_code == 202, response.json_body
    request = service.store.tickets[response.json_body["ticket"]][0]
    assert str(request.value) == stored


@pytest.mark.parametrize(("spelling", "expected"), MONEY_REFUSED)
def test_money_spellings_outside_the_contract_are_refused_naming_value(
    client, service, spelling, expected
):
    response = post(client, f'{{"age": 30, "value": {spelling}}}')
    assert response.status_code == 400
    assert response.json_body["code"] == "INVALID_REQUEST"
    assert expected in response.json_body["details"]["value"]
    assert len(response.json_body["details"]["value"]) < 200  # a huge number is not echoed
    assert service.store.tickets == {} and service.publisher.published == []


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("20.0", "must be an integer"),
        ("2e1", "must be an integer"),
        ("true", "must be an integer"),
        ('"20"', "must be an integer"),
        ("151", "from 0 to 150"),
        ("-1", "from 0 to 150"),
        ("1" * 5000, "from 0 to 150"),
    ],
)
def test_ages_must_be_integers_in_range_whatever_the_spelling(client, spelling, expected):
    response = post(client, f'{{"age": {spelling}, "value": 1}}')
    assert response.status_code == 400
    assert expected in response.json_body["details"]["age"]


def test_minus_zero_is_the_age_zero(client, service):
    response = post(client, '{"age": -0, "value": 1}')
    assert response.status_code == 202
    assert service.store.tickets[response.json_body["ticket"]][0].age == 0


@pytest.mark.parametrize(
    ("number", "status"),
    [
        ("1e999999999", 400),
        ("1" * 16000, 400),
        ("1e" + "9" * 16000, 400),
        ("1e-" + "9" * 16000, 400),
        ("0." + "0" * 16000 + "1", 400),
        ("1" + "0" * 16000 + "e-16000", 202),  # that is 1
    ],
)
def test_huge_numbers_are_judged_quickly(client, number, status):
    import time

    raw = f'{{"age": 30, "value": {number}}}'
    assert len(raw) <= 16 * 1024
    started = time.process_time()
    response = post(client, raw)
    assert time.process_time() - started < 0.5  # linear in the body: about a millisecond
    assert response.status_code == status


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('{"age": 17, "age": 30, "value": 1}', "age"),
        ('{"age": 30, "value": 1, "value": 1}', "value"),
        ('{"age": 30, "value": 1, "x": {"a": 1, "a": 2}}', "a"),
        ('[{"age": 30, "value": 1}, {"b": 1, "b": 1}]', "b"),
    ],
)
def test_a_key_given_twice_anywhere_is_a_400_naming_it(client, service, body, key):
    response = post(client, body)
    assert response.status_code == 400
    assert response.json_body["code"] == "INVALID_REQUEST"
    assert key in response.json_body["details"]
    assert service.store.tickets == {}


# Idempotency-Key: a retry gets the first answer; another body is a 422; in progress is a 409.


def keyed(client, body, key):
    return post(client, body, {**JSON_HEADERS, "Idempotency-Key": key})


def test_a_retry_with_the_same_key_and_body_gets_the_same_ticket_and_location(client, service):
    first = keyed(client, {"age": 20, "value": 100}, '"retry-1"')
    again = keyed(client, '{ "value" : 100.00 ,"age":20 }', '"retry-1"')  # same request
    assert first.status_code == again.status_code == 202
    assert again.json_body == first.json_body
    assert again.headers["Location"] == first.headers["Location"]
    assert len(service.store.tickets) == 1
    assert len(service.publisher.published) == 2  # published once, for the first request


def test_a_quoted_key_and_the_same_bare_token_are_one_key(client, service):
    first = keyed(client, {"age": 20, "value": 100}, "retry-2")
    again = keyed(client, {"age": 20, "value": 100}, '"retry-2"')
    assert again.json_body["ticket"] == first.json_body["ticket"]


def test_the_same_key_with_another_body_is_a_422(client, service):
    keyed(client, {"age": 20, "value": 100}, '"reused"')
    response = keyed(client, {"age": 20, "value": 101}, '"reused"')
    assert response.status_code == 422
    assert response.json_body["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert "Idempotency-Key" in response.json_body["details"]
    assert len(service.store.tickets) == 1


def test_a_key_still_in_progress_in_this_process_is_a_409(client, service):
    with service.keys_in_flight.hold("busy"):
        response = keyed(client, {"age": 20, "value": 100}, '"busy"')
    assert response.status_code == 409
    assert response.json_body["code"] == "IDEMPOTENCY_KEY_IN_USE"
    assert service.store.tickets == {}
    assert keyed(client, {"age": 20, "value": 100}, '"busy"').status_code == 202


def test_a_key_another_transaction_holds_is_a_409(client, service):
    from credit.idempotency import KeyInUse

    class HeldElsewhere:
        def create_ticket(self, new):
            return KeyInUse(new.key.key)

    service._writer = HeldElsewhere()
    response = keyed(client, {"age": 20, "value": 100}, '"elsewhere"')
    assert (response.status_code, response.json_body["code"]) == (409, "IDEMPOTENCY_KEY_IN_USE")
    assert service.publisher.published == []


@pytest.mark.parametrize(
    "key",
    [
        "",
        '""',
        "a b",
        '"unterminated',
        '"a"b"',
        '"a";p=1',
        "a, b",
        '"tab\there"',
        "k" * 256,
        '"' + "k" * 256 + '"',
        "é",
    ],
)
def test_an_invalid_key_is_a_400_naming_the_header(client, service, key):
    response = keyed(client, {"age": 20, "value": 100}, key)
    assert response.status_code == 400
    assert response.json_body["code"] == "INVALID_REQUEST"
    assert "Idempotency-Key" in response.json_body["details"]
    assert service.store.tickets == {}


def test_keys_at_the_limits_are_accepted(client):
    for key in ["k" * 255, '"' + "k" * 255 + '"', '"' + '\\"' * 255 + '"', "8e03978e-40d5"]:
        assert keyed(client, {"age": 20, "value": 100}, key).status_code == 202, key


def test_an_unknown_outcome_is_a_500_naming_the_ticket_never_a_503(client, service):
    from credit.errors import OutcomeUnknown

    class Unanswered:
        def create_ticket(self, new):
            raise OutcomeUnknown("MySQL stopped answering", (new.ticket,))

    service._writer = Unanswered()
    response = post(client, {"age": 20, "value": 100})
    assert response.status_code == 500
    assert response.json_body["code"] == "OUTCOME_UNKNOWN"
    assert is_uuid(response.json_body["details"]["ticket"])
    assert service.publisher.published == []


def is_uuid(text):
    return str(uuid.UUID(text)) == text
