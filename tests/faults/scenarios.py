"""The scenarios of the fault suite, each with a full and a quick (CI) size."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from tests.faults import faults
from tests.faults.faults import Injection, Size

__all__ = ["SCENARIOS", "Scenario", "Size"]


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    inject: Callable[[Injection], None]
    full: Size
    quick: Size
    duplicates: bool = False
    breaks_broker: bool = False  # its consumers reconnect on purpose

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
            breaks_broker=True,
        ),
        Scenario(
            "pause-broker",
            "SIGSTOP the broker, then SIGCONT",
            faults.pause_broker,
            full=Size(tickets=2000, rate=40, faults=1, pause_seconds=30),
            quick=Size(tickets=400, rate=50, faults=1, pause_seconds=5),
            breaks_broker=True,
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
        Scenario(
            "http-framing",
            "smuggling (CL+TE, hidden request), bad chunk sizes and Content-Lengths, obs-fold, "
            "bare CR, NUL, invalid targets",
            faults.framing_attacks,
            full=Size(tickets=2000, rate=60, faults=10),
            quick=Size(tickets=300, rate=40, faults=1),
        ),
        Scenario(
            "crowd",
            "well over 1,000 idle connections and byte-a-second clients held during the load",
            faults.crowd,
            full=Size(tickets=2000, rate=60, connections=1500, slow=50),
            quick=Size(tickets=400, rate=40, connections=1100, slow=10),
        ),
        Scenario(
            "money",
            "money spelled every way: over two decimals, exponents, too many digits, "
            "duplicate keys",
            faults.money_spellings,
            full=Size(tickets=2000, rate=60, faults=5),
            quick=Size(tickets=300, rate=40, faults=1),
        ),
        Scenario(
            "header-poison",
            "poison in message properties and headers (nesting 1,000 deep, timestamps past "
            "2**63, NaN, unknown types, invalid UTF-8) published straight to the rule queues",
            faults.header_poison,
            full=Size(tickets=1000, rate=50, header_poison=18),
            quick=Size(tickets=200, rate=40, header_poison=9),
        ),
        Scenario(
            "stall-mysql",
            "FLUSH TABLES WITH READ LOCK held longer than a request waits, twice",
            faults.stall_mysql,
            full=Size(tickets=2000, rate=40, faults=2, pause_seconds=15),
            quick=Size(tickets=400, rate=40, faults=1, pause_seconds=12),
        ),
        Scenario(
            "memory-alarm",
            "the broker's memory alarm set (publishers blocked), then cleared",
            faults.memory_alarm,
            full=Size(tickets=2000, rate=40, faults=2, pause_seconds=15),
            quick=Size(tickets=400, rate=40, faults=1, pause_seconds=5),
        ),
        Scenario(
            "flush-redis",
            "FLUSHALL on Redis during the run",
            faults.flush_redis,
            full=Size(tickets=3000, rate=80, faults=5),
            quick=Size(tickets=400, rate=50, faults=2),
        ),
    )
}
