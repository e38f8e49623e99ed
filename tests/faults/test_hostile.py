"""The hostile clients judge answers and spellings right, with no server involved."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.faults import hostile
from tests.faults.hostile import Exchange, Verdict

REFUSED = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
ACCEPTED = (
    b"HTTP/1.1 202 Accepted\r\nContent-Length: 70\r\n\r\n"
    b'{"ticket": "6826e88b-dc6d-4c27-b480-eb529511357c", "status": "PENDING"}'
)


def test_a_refusal_that_closes_the_connection_is_what_a_bad_request_must_get():
    assert hostile.refusal_problem(Exchange(REFUSED, closed=True)) is None


@pytest.mark.parametrize(
    ("exchange", "problem"),
    [
        (Exchange(REFUSED, closed=False), "answered 400 but left the connection open"),
        (Exchange(REFUSED + ACCEPTED, closed=True), "2 answers [400, 202]"),
        (Exchange(ACCEPTED, closed=True), "answered 202"),
        (Exchange(b"", closed=True), "no answer, connection closed"),
    ],
)
def test_anything_else_is_named(exchange, problem):
    assert problem in (hostile.refusal_problem(exchange) or "")


def test_the_ticket_of_a_202_is_read_from_the_raw_answer():
    assert Exchange(ACCEPTED, True).ticket() == "6826e88b-dc6d-4c27-b480-eb529511357c"
    assert Exchange(REFUSED, True).ticket() is None


@pytest.mark.parametrize(
    ("spelling", "verdict"),
    [
        ("100000.0000000000000000000000001", Verdict.REFUSE),
        ("1.00001e2", Verdict.REFUSE),
        ("1e13", Verdict.REFUSE),
        ("NaN", Verdict.REFUSE),
        ("1_000", Verdict.REFUSE),
        ("1e5", Verdict.EITHER),
        ("100000.000", Verdict.EITHER),
        ("100000.00", Verdict.ACCEPT),
        ("1000000000000", Verdict.ACCEPT),
    ],
)
def test_money_is_judged_on_its_exact_amount(spelling, verdict):
    probes = {p.template: p for p in hostile.money_probes()}
    probe = probes['{"age": {age}, "value": ' + spelling + "}"]
    assert probe.verdict is verdict


def test_a_duplicate_key_names_both_values_the_last_one_last():
    probe = hostile.DUPLICATE_KEYS[0]
    assert [value for _, value in probe.named] == [Decimal(100), Decimal(200000)]
    assert probe.render(95) == b'{"age": 95, "value": 100, "value": 200000}'


def test_every_smuggling_probe_hides_a_whole_request_behind_an_empty_chunked_body():
    probes = hostile.framing_probes(hostile.cycle_ages())
    smuggling = [p for p in probes if hostile.HIDDEN_REQUEST in p.first]
    assert len(smuggling) >= 4
    assert all(b"0\r\n\r\n" + hostile.HIDDEN_REQUEST in p.first for p in smuggling)


def test_a_lenient_chunk_size_still_names_the_length_of_its_chunk():
    ages = hostile.cycle_ages()
    for _ in range(3):  # past the first rounds, ages have three digits and bodies grow by one
        probes = {p.name: p for p in hostile.framing_probes(ages)}
    for name in ("chunk size 0x prefix", "chunk size with _"):
        chunks = probes[name].first.partition(b"\r\n\r\n")[2]
        size, _, rest = chunks.partition(b"\r\n")
        assert int(size, 16) == len(rest.split(b"\r\n")[0]), name  # int() is the lenient parser
