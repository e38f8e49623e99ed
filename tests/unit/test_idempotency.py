"""The Idempotency-Key header's syntax, the request fingerprint, and keys in flight."""

import threading
from decimal import Decimal

import pytest

from credit.domain import CreditRequest, validate_request
from credit.errors import IdempotencyKeyInUse, ValidationError
from credit.idempotency import KeysInFlight, fingerprint, parse_key
from credit.request_json import loads


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ('"8e03978e-40d5-43e8-bc93-6894a57f9324"', "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ("8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ('"with spaces and !#$"', "with spaces and !#$"),
        (r'"a \"quoted\" back\\slash"', 'a "quoted" back\\slash'),
        ("token:with/slashes*", "token:with/slashes*"),
        ('" "', " "),
    ],
)
def test_sf_strings_and_tokens_are_keys(header, key):
    assert parse_key(header) == key


@pytest.mark.parametrize(
    "header",
    [
        "",
        '""',
        '"',
        '"open',
        '"a"b"',
        '"a";param=1',
        "a b",
        "a, b",  # two header lines, joined
        '"bad \\n escape"',
        '"tab\there"',
        "caf\u00e9",
        "k" * 256,
        '"' + "k" * 256 + '"',
    ],
)
def test_anything_else_is_refused_naming_the_header(header):
    with pytest.raises(ValidationError) as caught:
        parse_key(header)
    assert "Idempotency-Key" in caught.value.problems
    assert len(caught.value.problems["Idempotency-Key"]) < 300


def test_255_characters_is_the_limit_escapes_counting_once():
    assert len(parse_key('"' + "\\\\" * 255 + '"')) == 255
    with pytest.raises(ValidationError):
        parse_key('"' + "\\\\" * 256 + '"')


def test_the_fingerprint_is_of_the_validated_request_not_its_spelling():
    spellings = [
        b'{"age": 20, "value": 100}',
        b'{"value":100.00,"age":20}',
        b'{ "age" : 20 , "value" : 1e2 }',
        b'{"age": 20, "value": 100.000e0}',
    ]
    prints = {fingerprint(validate_request(loads(raw))) for raw in spellings}
    assert len(prints) == 1
    assert fingerprint(CreditRequest(20, Decimal("100.01"))) not in prints
    assert fingerprint(CreditRequest(21, Decimal(100))) not in prints


def test_a_key_in_flight_is_refused_until_its_request_is_done():
    keys = KeysInFlight()
    with keys.hold("k"):
        with pytest.raises(IdempotencyKeyInUse), keys.hold("k"):
            pass
        with keys.hold("other"):
            pass
    with keys.hold("k"):
        pass


def test_no_key_holds_nothing():
    keys = KeysInFlight()
    with keys.hold(None), keys.hold(None):
        pass


def test_concurrent_holders_of_one_key_exactly_one_wins():
    keys = KeysInFlight()
    barrier = threading.Barrier(8)
    release = threading.Event()
    won, refused = [], []

    def contend():
        barrier.wait()
        try:
            with keys.hold("race"):
                won.append(1)
                release.wait(5)
        except IdempotencyKeyInUse:
            refused.append(1)

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for thread in threads:
        thread.start()
    while len(won) + len(refused) < 8 and len(refused) < 7:
        threading.Event().wait(0.01)
    release.set()
    for thread in threads:
        thread.join()
    assert (len(won), len(refused)) == (1, 7)
