"""The table the suite prints: one row per scenario, Jepsen-style counts, then the details."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from tests.faults.runner import Result

COLUMNS = (
    ("scenario", 15),
    ("accepted", 8),
    ("decided", 8),
    ("lost", 5),
    ("stuck", 5),
    ("double", 6),
    ("wrong", 5),
    ("recover s", 9),
    ("result", 6),
)


def _row(result: Result) -> tuple[str, ...]:
    audit = result.audit
    recover = "-" if result.recover_seconds is None else f"{result.recover_seconds:.1f}"
    return (
        result.scenario,
        str(audit.accepted),
        str(audit.decided),
        str(audit.lost),
        str(audit.stuck),
        str(audit.double),
        str(audit.wrong),
        recover,
        "PASS" if result.passed else "FAIL",
    )


def table(results: Sequence[Result]) -> str:
    """A fixed-width table; `recover s` runs from the end of the last fault to all decided."""
    header = " ".join(
        name.rjust(width) if i else name.ljust(width) for i, (name, width) in enumerate(COLUMNS)
    )
    lines = [header, "-" * len(header)]
    for result in results:
        cells = _row(result)
        lines.append(
            " ".join(
                cell.rjust(width) if i else cell.ljust(width)
                for i, (cell, (_, width)) in enumerate(zip(cells, COLUMNS, strict=True))
            )
        )
    return "\n".join(lines)


def details(results: Sequence[Result]) -> str:
    """Per scenario: the faults injected, what the clients saw, problems and sample tickets."""
    return "\n".join(line for result in results for line in _details(result))


def _details(result: Result) -> list[str]:
    lines = [f"{result.scenario} ({result.size.tickets} tickets, logs in {result.workdir}):"]
    if result.log.entries:
        kinds = Counter(re.sub(r"\s+#?\d+$", "", what) for _, _, what in result.log.entries)
        lines.append("  faults: " + "; ".join(f"{kind} x{n}" for kind, n in kinds.items()))
    lines.extend(f"  {line}" for line in [*result.log.notes, *result.details])
    if result.audit.wrong:
        kinds_text = ", ".join(f"{k}: {n}" for k, n in result.audit.wrong_kinds.items())
        lines.append(f"  wrong {result.audit.wrong} ({kinds_text})")
    lines.extend(f"  PROBLEM: {problem}" for problem in result.problems)
    for kind, tickets in result.audit.samples.items():
        lines.extend(f"  {kind}: {ticket}" for ticket in tickets)
    return lines
