"""FilterCriteria on Amazon MQ mappings: EventBridge's rule syntax, matched on `data`."""

from __future__ import annotations

import json

import pytest

from local_runtime.filters import FilterError, Filters

ORDER = {
    "kind": "order",
    "id": "o-17",
    "total": 120.5,
    "items": 3,
    "region": "eu-west-1",
    "tags": ["new", "priority"],
    "customer": {"tier": "GOLD", "country": "DE"},
    "coupon": None,
    "note": "",
}


def matches(pattern: dict, body: object = ORDER) -> bool:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Filters.parse([json.dumps(pattern)]).matches(data)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"data": {"kind": ["order"]}}, True),
        ({"data": {"kind": ["refund"]}}, False),
        ({"data": {"kind": ["refund", "order"]}}, True),  # a list's values OR
        ({"data": {"kind": ["order"], "items": [3]}}, True),  # fields AND
        ({"data": {"kind": ["order"], "items": [4]}}, False),
        ({"data": {"items": ["3"]}}, False),  # a string never equals a number
        ({"data": {"customer": {"tier": ["GOLD"]}}}, True),  # nested
        ({"data": {"tags": ["priority"]}}, True),  # any element of an array
        ({"data": {"coupon": [None]}}, True),  # null
        ({"data": {"note": [""]}}, True),  # empty
        ({"data": {"id": [{"prefix": "o-"}]}}, True),
        ({"data": {"region": [{"suffix": "-1"}]}}, True),
        ({"data": {"customer": {"tier": [{"equals-ignore-case": "gold"}]}}}, True),
        ({"data": {"total": [{"numeric": [">", 100]}]}}, True),
        ({"data": {"total": [{"numeric": [">", 100, "<=", 120]}]}}, False),
        ({"data": {"items": [{"numeric": ["=", 3]}]}}, True),
        ({"data": {"coupon": [{"exists": True}]}}, True),
        ({"data": {"missing": [{"exists": False}]}}, True),
        ({"data": {"missing": [{"exists": True}]}}, False),
        ({"data": {"kind": [{"anything-but": "refund"}]}}, True),
        ({"data": {"kind": [{"anything-but": ["order", "refund"]}]}}, False),
        ({"data": {"region": [{"anything-but": {"prefix": "eu-"}}]}}, False),
        ({"data": {"$or": [{"kind": ["refund"]}, {"items": [3]}]}}, True),
        ({"data": {"$or": [{"kind": ["refund"]}, {"items": [4]}]}}, False),
    ],
)
def test_each_rule_matches_as_lambda_documents_it(pattern, expected):
    assert matches(pattern) is expected


def test_a_body_that_is_not_a_json_object_is_matched_as_its_text():
    assert matches({"data": [{"prefix": "ABC"}]}, b"ABC:AAAA")
    assert not matches({"data": [{"prefix": "XYZ"}]}, b"ABC:AAAA")
    assert not matches({"data": {"kind": ["order"]}}, b"ABC:AAAA")
    assert matches({"data": ["[1, 2]"]}, b"[1, 2]"), "a JSON array is not an object: its text"


def test_any_one_of_several_filters_lets_a_message_through():
    filters = Filters.parse(
        [json.dumps({"data": {"kind": ["refund"]}}), json.dumps({"data": {"items": [3]}})]
    )
    assert filters.matches(json.dumps(ORDER).encode())
    assert not filters.matches(json.dumps({"kind": "refund2"}).encode())


def test_no_filters_let_everything_through():
    assert Filters.parse([]).matches(b"anything")


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ({"basicProperties": {"messageId": ["x"]}}, "filter on data only"),
        ({"data": {"kind": "order"}}, "must hold a list"),
        ({"data": {"$or": [{"kind": ["x"]}]}}, "at least two"),
    ],
)
def test_patterns_lambda_refuses_are_refused(pattern, problem):
    with pytest.raises(FilterError, match=problem):
        Filters.parse([json.dumps(pattern)])
