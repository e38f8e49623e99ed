"""The scenarios of the fault suite, each with a full and a quick (CI) size."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from tests.faults import faults
from tests.faults.faults import Injection


@dataclass(frozen=True)
class Size:
    """How much load and how many faults: `rate` tickets/s (0: as fast as the clients go)."""

    tickets: int
    rate: float
    faults: int = 0
    pause_seconds: float = 0.0
    poison: int = 0
    oversized: int = 0
    large: int = 0


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    inject: Callable[[Injection], None]
    full: Size
    quick: Size
    duplicates: bool = False

    def size(self, quick: bool, tickets: int | None = None) -> Size:
        """The size to run: quick or full, with the ticket count overridden if given."""
        chosen = self.quick if quick else self.full
        return chosen if tickets is None else replace(chosen, tickets=tickets)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "kill-worker",
            "kill -9 a rule worker during the run; the runtime replaces it, the batch comes back",
            faults.kill_workers,
            full=Size(tickets=5000, rate=100, faults=20),
            quick=Size(tickets=400, rate=50, faults=3),
        ),
        Scenario(
            "kill-broker",
            "kill -9 the broker during the run, start it again each time",
            faults.kill_broker,
            full=Size(tickets=3000, rate=40, faults=5),
            quick=Size(tickets=400, rate=40, faults=1),
        ),
        Scenario(
            "pause-broker",
            "SIGSTOP the broker, then SIGCONT",
            faults.pause_broker,
            full=Size(tickets=2000, rate=40, faults=1, pause_seconds=30),
            quick=Size(tickets=400, rate=50, faults=1, pause_seconds=5),
        ),
        Scenario(
            "restart-stores",
            "kill -9 / stop and restart Redis and MySQL during the run",
            faults.restart_stores,
            full=Size(tickets=3000, rate=60, faults=4),
            quick=Size(tickets=400, rate=50, faults=2),
        ),
        Scenario(
            "duplicates",
            "every rule message delivered twice (identical copies, published 0-2 s later)",
            faults.no_fault,
            full=Size(tickets=3000, rate=150),
            quick=Size(tickets=400, rate=80),
            duplicates=True,
        ),
        Scenario(
            "poison",
            "poison messages (malformed, wrong types, unknown tickets, > 6 MB, not UTF-8)",
            faults.no_fault,
            full=Size(tickets=1000, rate=60, poison=100, oversized=2, large=1),
            quick=Size(tickets=200, rate=50, poison=20, oversized=1),
        ),
    )
}
