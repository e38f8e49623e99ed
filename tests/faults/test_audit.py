"""The fault suite's auditor counts each kind of broken ticket, and only broken ones."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from tests.faults.audit import (
    STORED_REFUSED,
    WRONG_DECISION,
    WRONG_REQUEST,
    WRONG_VERDICT,
    DecisionWatch,
    Row,
    audit,
    consumer_connections,
    money_key,
)
from tests.faults.load import UNKNOWN, Accepted, Attempt

RULES = ("age", "value")


def sent(ticket: str, age: int = 30, value: str = "5000") -> Accepted:
    return Accepted(ticket, age, Decimal(value), 0.0)


def row(
    age: int = 30,
    value: str = "5000",
    status: str = "APPROVED",
    verdicts: dict[str, list[bool]] | None = None,
) -> Row:
    given = verdicts or {"age": [age >= 18], "value": [Decimal(value) <= 100000]}
    return Row(age, Decimal(value), status, RULES, given)


def test_a_run_where_every_ticket_is_right_counts_nothing_against_it():
    accepted = [sent("a"), sent("b", age=16), sent("c", value="100000.01")]
    rows = {
        "a": row(),
        "b": row(age=16, status="NOT_APPROVED"),
        "c": row(value="100000.01", status="NOT_APPROVED"),
    }
    result = audit(accepted, rows, changed=[])
    assert (result.accepted, result.decided, result.failures) == (3, 3, 0)


def test_missing_and_pending_tickets_are_lost_and_stuck():
    rows = {"stuck": row(status="PENDING", verdicts={"age": [True]})}
    result = audit([sent("lost"), sent("stuck")], rows, changed=[])
    assert (result.lost, result.stuck, result.decided) == (1, 1, 0)


def test_a_changed_decision_or_a_status_its_verdicts_do_not_give_is_double_counted():
    rows = {"changed": row(), "early": row(status="APPROVED", verdicts={"age": [True]})}
    result = audit([sent("changed"), sent("early")], rows, changed=["changed"])
    assert result.double == 2


def test_a_decision_or_verdict_the_rules_do_not_give_or_a_swapped_request_is_wrong():
    rows = {
        "decision": row(16, status="APPROVED", verdicts={"age": [False], "value": [True]}),
        "verdict": row(16, status="NOT_APPROVED", verdicts={"age": [True], "value": [False]}),
        "swapped": row(age=40),
    }
    accepted = [sent("decision", age=16), sent("verdict", age=16), sent("swapped", age=41)]
    result = audit(accepted, rows, changed=[])
    assert result.wrong_kinds == {WRONG_DECISION: 1, WRONG_VERDICT: 1, WRONG_REQUEST: 1}


class FakeConnection:
    """Answers `SELECT id, status, decided_at FROM tickets` with rows set by the test."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, datetime | None]] = []

    def cursor(self) -> FakeConnection:
        return self

    def __enter__(self) -> FakeConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, query: str) -> None:
        assert query.startswith("SELECT id, status, decided_at")

    def fetchall(self) -> list[tuple[str, str, datetime | None]]:
        return self.rows

    def close(self) -> None:
        return None


def test_the_watch_flags_a_decision_that_changes_between_two_reads():
    conn = FakeConnection()
    watch = DecisionWatch(lambda: conn)  # type: ignore[arg-type, return-value]
    conn.rows = [("a", "APPROVED", datetime(2026, 1, 1)), ("b", "PENDING", None)]
    assert watch.poll()
    conn.rows = [
        ("a", "APPROVED", datetime(2026, 1, 2)),
        ("b", "NOT_APPROVED", datetime(2026, 1, 2)),
    ]
    assert watch.poll()
    assert set(watch.changed) == {"a"}
    assert watch.statuses == {"a": "APPROVED", "b": "NOT_APPROVED"}


def test_a_ticket_stored_for_a_request_answered_503_is_a_lie_even_when_a_retry_got_a_202():
    accepted = [sent("retried")]
    rows = {"retried": row(), "behind-503": row()}
    attempts = [Attempt(30, Decimal(5000), "HTTP 503"), Attempt(30, Decimal(5000), "HTTP 202")]
    result = audit(accepted, rows, changed=[], attempts=attempts)
    assert (result.stored_refused, result.stored_unsent) == (1, 0)
    assert any(kind.startswith(STORED_REFUSED) for kind in result.samples)


def test_a_ticket_stored_for_a_request_whose_answer_never_came_is_no_lie():
    attempts = [Attempt(30, Decimal(5000), UNKNOWN), Attempt(30, Decimal(5000), "HTTP 202")]
    result = audit([sent("retried")], {"retried": row(), "timed-out": row()}, [], attempts)
    assert (result.stored_refused, result.stored_unsent, result.unaccepted_stored) == (0, 0, 1)


def test_a_ticket_no_client_asked_for_is_a_hidden_request_that_ran():
    rows = {"a": row(), "hidden": row(age=150, value="4242.42")}
    result = audit([sent("a")], rows, [], [Attempt(30, Decimal(5000), "HTTP 202")])
    assert (result.stored_unsent, result.stored_refused) == (1, 0)


def test_a_request_is_matched_to_its_row_as_mysql_rounds_it():
    attempts = [Attempt(95, Decimal("100000.005"), "HTTP 400")]
    result = audit([], {"rounded": row(age=95, value="100000.01")}, [], attempts)
    assert result.stored_refused == 1
    assert money_key(95, Decimal("1e400")) is None


def test_without_attempts_the_audit_does_not_judge_unaccepted_tickets():
    result = audit([], {"a": row()}, [])
    assert (result.unaccepted_stored, result.stored_refused, result.stored_unsent) == (1, 0, 0)


def test_consumer_connections_are_counted_per_function_from_the_runtime_log():
    lines = [
        "2026-01-01 00:00:00,000 INFO local_runtime.mapping: age_rule: consuming rule.age at x",
        "2026-01-01 00:00:01,000 WARNING local_runtime.mapping: age_rule: broker unreachable",
        "2026-01-01 00:00:02,000 INFO local_runtime.mapping: age_rule: consuming rule.age at x",
        "2026-01-01 00:00:02,000 INFO local_runtime.mapping: value_rule: consuming rule.value",
        "[age_rule] consuming rule.age is what a handler printed",
    ]
    assert consumer_connections(lines) == {"age_rule": 2, "value_rule": 1}
