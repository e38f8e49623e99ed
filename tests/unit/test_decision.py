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


@pytest.mark.parametrize(
    ("results", "version", "final"),
    [
        ({}, 0, False),
        ({"age": (True, "ok")}, 1, False),
        ({"value": (False, "too much")}, 1, False),  # decided, but age has yet to report
        ({"age": (False, "young"), "value": (False, "too much")}, 2, True),
        ({"age": (True, "ok"), "value": (True, "ok")}, 2, True),
    ],
)
def test_a_view_counts_its_verdicts_and_is_final_once_decided_with_all_of_them(
    results, version, final
):
    from datetime import UTC, datetime

    from credit.domain import TicketView

    required = ["age", "value"]
    status = decide(required, {rule: passed for rule, (passed, _) in results.items()})
    view = TicketView(new_ticket_id(), status, rule_statuses(required, results), datetime.now(UTC))
    assert (view.version, view.final) == (version, final)
