"""A rule function's handler: a whole aws:rmq batch in, verdicts recorded, nothing crashes."""

import json
import uuid

import pytest

from credit.domain import CreditRequest, TicketStatus
from credit.errors import StoreUnavailable
from credit.messages import split_request
from tests.fakes import FakeCache, FakeStore
from tests.helpers import load_function, rmq_event


@pytest.fixture
def store():
    return FakeStore()


@pytest.fixture
def age_function(store):
    module = load_function("age_rule")
    module.FUNCTION.store, module.FUNCTION.cache = store, FakeCache()
    return module


def _ticket(store, age=20, value=100000):
    ticket = str(uuid.uuid4())
    request = CreditRequest(age, value)
    store.create_ticket(ticket, request, split_request(ticket, request, ("age", "value")))
    return ticket


def test_a_batch_records_one_verdict_per_message(store, age_function):
    young, adult = _ticket(store, age=17), _ticket(store, age=30)
    event = rmq_event(
        "rule.age",
        [json.dumps({"ticket": t, "age": a}).encode() for t, a in ((young, 17), (adult, 30))],
    )
    outcome = age_function.handler(event, None)
    assert outcome["recorded"] == 2
    assert store.results[(young, "age")].passed is False
    assert store.results[(adult, "age")].passed is True
    assert store.tickets[young][2] is TicketStatus.NOT_APPROVED
    assert store.tickets[adult][2] is TicketStatus.PENDING


def test_redelivering_the_same_message_changes_nothing(store, age_function):
    ticket = _ticket(store)
    event = rmq_event("rule.age", [json.dumps({"ticket": ticket, "age": 20}).encode()])
    age_function.handler(event, None)
    before = dict(store.results)
    age_function.handler(
        rmq_event("rule.age", [json.dumps({"ticket": ticket, "age": 10}).encode()], True), None
    )
    assert store.results == before


def test_an_invalid_field_is_a_failed_verdict_with_the_reason(store, age_function):
    ticket = _ticket(store)
    age_function.handler(
        rmq_event("rule.age", [json.dumps({"ticket": ticket, "age": "abc"}).encode()]), None
    )
    result = store.results[(ticket, "age")]
    assert not result.passed
    assert "invalid age" in result.reason and "integer" in result.reason
    assert store.tickets[ticket][2] is TicketStatus.NOT_APPROVED


def test_a_missing_field_is_a_failed_verdict(store, age_function):
    ticket = _ticket(store)
    age_function.handler(rmq_event("rule.age", [json.dumps({"ticket": ticket}).encode()]), None)
    assert store.results[(ticket, "age")].reason == "invalid message: age is missing"


@pytest.mark.parametrize(
    "body", [b"not json", b"[1,2]", b'{"age": 20}', b'{"ticket": "nope", "age": 1}', b"\xff\xfe"]
)
def test_an_undecodable_message_is_set_aside_and_the_rest_of_the_batch_still_counts(
    store, age_function, body
):
    ticket = _ticket(store)
    event = rmq_event("rule.age", [body, json.dumps({"ticket": ticket, "age": 40}).encode()])
    outcome = age_function.handler(event, None)
    assert outcome == {"recorded": 1, "rejected": 1, "decided": []}
    assert store.rejected[0].body == body and store.rejected[0].source == "rule.age"
    assert store.results[(ticket, "age")].passed


def test_a_message_for_an_unknown_ticket_is_set_aside(store, age_function):
    stranger = str(uuid.uuid4())
    outcome = age_function.handler(
        rmq_event("rule.age", [json.dumps({"ticket": stranger, "age": 40}).encode()]), None
    )
    assert outcome["rejected"] == 1
    assert store.rejected[0].reason == f"unknown ticket {stranger}"


def test_a_store_outage_fails_the_invocation_so_the_batch_is_retried(store, age_function):
    ticket = _ticket(store)
    store.down = True
    with pytest.raises(StoreUnavailable):
        age_function.handler(
            rmq_event("rule.age", [json.dumps({"ticket": ticket, "age": 40}).encode()]), None
        )


def test_both_rules_passing_approves(store, age_function):
    ticket = _ticket(store)
    value_function = load_function("value_rule")
    value_function.FUNCTION.store, value_function.FUNCTION.cache = store, FakeCache()
    age_function.handler(
        rmq_event("rule.age", [json.dumps({"ticket": ticket, "age": 20}).encode()]), None
    )
    outcome = value_function.handler(
        rmq_event("rule.value", [json.dumps({"ticket": ticket, "value": 100000}).encode()]), None
    )
    assert outcome["decided"] == [ticket]
    assert store.tickets[ticket][2] is TicketStatus.APPROVED
