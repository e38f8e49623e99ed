"""Hostile and careless input over HTTP against the running system: money in every spelling,
keys given twice, and every Idempotency-Key case, concurrent retries included."""

import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from credit import mysql
from tests.helpers import TEST_URLS
from tests.unit.test_api import MONEY_ACCEPTED, MONEY_REFUSED

pytestmark = pytest.mark.e2e


def unique_value() -> str:
    """A value no other request of any run sends, so its tickets can be counted."""
    return f"{random.randint(1, 10**9)}.{random.randint(1, 99):02d}"


def tickets_with(age: int, value: str) -> list[str]:
    conn = mysql.connect(TEST_URLS["MYSQL_URL"])
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT id FROM tickets WHERE age = %s AND value = %s", (age, value))
            return [row[0] for row in cursor.fetchall()]
    finally:
        conn.close()


@pytest.mark.parametrize(("spelling", "stored"), MONEY_ACCEPTED)
def test_money_within_the_contract_is_stored_exactly(system, spelling, stored):
    status, _, body = system.post(f'{{"age": 41, "value": {spelling}}}')
    assert status == 202, body
    decided = system.wait_decided(body["ticket"])
    value_rule = decided["rules"]["value"]["reason"]
    assert value_rule.startswith(f"value {stored} ")  # what the value rule was given


@pytest.mark.parametrize(("spelling", "expected"), MONEY_REFUSED)
def test_money_outside_the_contract_is_a_400_naming_value(system, spelling, expected):
    status, _, body = system.post(f'{{"age": 30, "value": {spelling}}}')
    assert (status, body["code"]) == (400, "INVALID_REQUEST")
    assert expected in body["details"]["value"]


def test_money_rounded_past_its_decimals_is_refused_and_stores_nothing(system):
    # 31 significant digits: rounded to Decimal's 28, this used to be stored as `value`.
    value = unique_value()
    status, _, body = system.post(f'{{"age": 30, "value": {value}{"0" * 20}1}}')
    assert status == 400 and "at most 2 decimal places" in body["details"]["value"]
    assert tickets_with(30, value) == []


def test_a_key_given_twice_is_a_400_naming_it(system):
    value = unique_value()
    status, _, body = system.post(f'{{"age": 17, "age": 30, "value": {value}}}')
    assert (status, body["code"]) == (400, "INVALID_REQUEST") and "age" in body["details"]
    assert tickets_with(30, value) == []


def keyed(system, body, key):
    return system.post(body, {"Idempotency-Key": key})


def test_a_retry_with_the_same_key_and_body_is_answered_as_the_first(system):
    key, value = f'"{uuid.uuid4()}"', unique_value()
    first = keyed(system, f'{{"age": 30, "value": {value}}}', key)
    again = keyed(system, f'{{ "value" : {value}0 , "age" : 30 }}', key)  # the same request
    assert first[0] == again[0] == 202
    assert again[2] == first[2]
    assert again[1]["Location"] == first[1]["Location"]
    assert tickets_with(30, value) == [first[2]["ticket"]]


def test_the_same_key_with_another_body_is_a_422(system):
    key, value = f'"{uuid.uuid4()}"', unique_value()
    assert keyed(system, f'{{"age": 30, "value": {value}}}', key)[0] == 202
    status, _, body = keyed(system, f'{{"age": 31, "value": {value}}}', key)
    assert (status, body["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert tickets_with(31, value) == []


@pytest.mark.parametrize("key", ["", '""', "a b", '"open', "k" * 256, '"a";x=1'])
def test_an_invalid_key_is_a_400_naming_the_header(system, key):
    status, _, body = keyed(system, {"age": 30, "value": 10}, key)
    assert (status, body["code"]) == (400, "INVALID_REQUEST")
    assert "Idempotency-Key" in body["details"]


def test_concurrent_retries_with_one_key_create_exactly_one_ticket(system):
    key, value = f'"{uuid.uuid4()}"', unique_value()
    barrier = threading.Barrier(16)

    def send(_):
        barrier.wait()
        return keyed(system, f'{{"age": 30, "value": {value}}}', key)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, range(16)))
    statuses = sorted({status for status, _, _ in answers})
    assert set(statuses) <= {202, 409}, statuses
    tickets = {body["ticket"] for status, _, body in answers if status == 202}
    in_use = [body for status, _, body in answers if status == 409]
    assert all(body["code"] == "IDEMPOTENCY_KEY_IN_USE" for body in in_use)
    stored = tickets_with(30, value)
    assert len(stored) == 1 and tickets <= set(stored)
    # Once the first is answered, every retry gets its ticket.
    assert keyed(system, f'{{"age": 30, "value": {value}}}', key)[2]["ticket"] == stored[0]
