"""The decision: any failure rejects at once, all required passes approve, else pending."""

import pytest

from credit.domain import (
    RuleStatus,
    TicketStatus,
    decide,
    is_ticket_id,
    new_ticket_id,
    rule_statuses,
)


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ({}, TicketStatus.PENDING),
        ({"age": True}, TicketStatus.PENDING),
        ({"age": True, "value": True}, TicketStatus.APPROVED),
        ({"age": False}, TicketStatus.NOT_APPROVED),
        ({"value": False, "age": True}, TicketStatus.NOT_APPROVED),
        ({"age": False, "value": False}, TicketStatus.NOT_APPROVED),
    ],
)
def test_decide(results, expected):
    assert decide(["age", "value"], results) is expected


def test_a_rule_added_later_does_not_block_tickets_that_never_required_it():
    assert (
        decide(["age", "value"], {"age": True, "value": True, "ml": True}) is TicketStatus.APPROVED
    )
    assert decide(["age", "value", "ml"], {"age": True, "value": True}) is TicketStatus.PENDING


def test_rules_not_evaluated_yet_show_as_pending():
    statuses = rule_statuses(["age", "value"], {"age": (True, "ok")})
    assert statuses == {
        "age": (RuleStatus.PASSED, "ok"),
        "value": (RuleStatus.PENDING, "not evaluated yet"),
    }


def test_ticket_ids_are_random_uuid4():
    ids = {new_ticket_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_ticket_id(t) and t[14] == "4" for t in ids)


@pytest.mark.parametrize(
    "candidate", ["", "abc", "6826E88B-DC6D-4C27-B480-EB529511357C", None, 5, "{" + "0" * 34 + "}"]
)
def test_only_canonical_uuids_are_ticket_ids(candidate):
    assert not is_ticket_id(candidate)
