"""The fault suite's short version: quick scenarios lose, strand and miscount no ticket."""

from __future__ import annotations

import pytest

from tests.faults import runner
from tests.faults.report import details, table
from tests.faults.scenarios import SCENARIOS
from tests.support.services import PrivateMariaDB, PrivateRabbitMQ, PrivateRedis

# A worker crash mid-batch (redelivery), both stores restarted (503s, Redis emptied), poison.
QUICK_SCENARIOS = ("kill-worker", "restart-stores", "poison")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (
            PrivateRabbitMQ.available() and PrivateRedis.available() and PrivateMariaDB.available()
        ),
        reason="RabbitMQ, Redis or MariaDB is not installed",
    ),
]


@pytest.mark.parametrize("name", QUICK_SCENARIOS)
def test_no_accepted_ticket_is_lost_stuck_double_counted_or_wrong(name, tmp_path):
    scenario = SCENARIOS[name]
    result = runner.run(scenario, scenario.size(quick=True), tmp_path / name)
    summary = f"\n{table([result])}\n{details([result])}"
    audit = result.audit
    assert audit.accepted == scenario.quick.tickets, summary
    assert (audit.lost, audit.stuck, audit.double, audit.wrong) == (0, 0, 0, 0), summary
    assert not result.problems, summary
