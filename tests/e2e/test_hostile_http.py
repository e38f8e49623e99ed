"""Hostile HTTP against the running system: framing tricks are refused and run nothing hidden;
money spelled any way is refused and stores nothing, or is stored exactly and decided right."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from credit import mysql
from tests.e2e.conftest import System
from tests.faults import hostile
from tests.faults.audit import money_key
from tests.helpers import TEST_URLS

pytestmark = pytest.mark.e2e

# What the gateway and the API still get wrong, if anything: each entry is a strict expected
# failure, so a probe that starts passing fails here until its entry is removed.
FRAMING_DEFECTS: dict[str, str] = {}
MONEY_DEFECTS: dict[str, str] = {}
FRAMING = hostile.framing_probes(hostile.cycle_ages())
MONEY = hostile.money_probes()


def _known(name: str, defects: dict[str, str]) -> list[pytest.MarkDecorator]:
    reason = defects.get(name)
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


def stored(age: int, value: Decimal) -> int:
    """How many tickets MySQL holds for this age and value (as DECIMAL(15, 2) stores it)."""
    key = money_key(age, value)
    if key is None:
        return 0
    connection = mysql.connect(TEST_URLS["MYSQL_URL"])
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM tickets WHERE age = %s AND value = %s", key)
            row = cursor.fetchone()
            connection.commit()
    finally:
        connection.close()
    return int(row[0]) if row else 0


@pytest.mark.parametrize(
    "probe",
    [pytest.param(p, id=p.name, marks=_known(p.name, FRAMING_DEFECTS)) for p in FRAMING],
)
def test_a_framing_trick_is_refused_its_connection_closed_and_nothing_hidden_runs(
    system: System, probe: hostile.FramingProbe
) -> None:
    asked = (probe.age, probe.value) if probe.age and probe.value else None
    before = stored(hostile.HIDDEN_AGE, hostile.HIDDEN_VALUE), asked and stored(*asked)
    answer = hostile.exchange(system.port, probe.first, probe.then)
    problem = hostile.refusal_problem(answer)
    time.sleep(0.2)  # a hidden request that ran has committed by now
    after = stored(hostile.HIDDEN_AGE, hostile.HIDDEN_VALUE), asked and stored(*asked)
    assert (problem, after) == (None, before), answer.data[:300]


def _age_for(index: int) -> int:
    return hostile.HOSTILE_AGES[index % len(hostile.HOSTILE_AGES)]


@pytest.mark.parametrize(
    ("index", "probe"),
    [
        pytest.param(i, p, id=p.template[:60], marks=_known(p.template, MONEY_DEFECTS))
        for i, p in enumerate(MONEY)
    ],
)
def test_money_in_any_spelling_is_refused_with_nothing_stored_or_stored_exactly_and_decided(
    system: System, index: int, probe: hostile.MoneyProbe
) -> None:
    age = _age_for(index)
    named = [(age if asked is None else asked, amount) for asked, amount in probe.named]
    before = [stored(*pair) for pair in named]
    status, _, answer = system.request(
        "POST", "/credit-request", probe.render(age), {"Content-Type": "application/json"}
    )
    if status == 400:
        assert probe.verdict is not hostile.Verdict.ACCEPT, answer
        assert [stored(*pair) for pair in named] == before, "a refused request left a ticket"
        return
    assert status == 202 and probe.verdict is not hostile.Verdict.REFUSE, (status, answer)
    asked_age, amount = named[-1]
    decided = system.wait_decided(answer["ticket"])
    expected = "APPROVED" if asked_age >= 18 and amount <= 100000 else "NOT_APPROVED"
    assert decided["status"] == expected
    assert stored(asked_age, amount) == before[-1] + 1
    assert amount == amount.quantize(Decimal("0.01")), "stored exactly: at most two decimals"
